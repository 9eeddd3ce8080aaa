"""The small-scale channel of a drop's own TR 38.901 clusters (``channels.clusters``): the same drop as
``drop_clients``, unit mean power, chunks that join without a seam, Doppler correlation from the
clients' speed, spatial correlation from the clusters' angles, and its place in ``FadingChannel``."""

import copy
import math
import pickle
from copy import deepcopy

import pytest
import torch

from channels import ClusterFading, FadingChannel, ReceiveArray, cluster_drop, drop_clients
from channels._sionna import import_sionna
from channels.clusters import omni_panel
from channels.scenarios import DropGains


def _drop(seed: int = 0, clients: int = 8, **options):
    return cluster_drop("umi", clients, torch.Generator().manual_seed(seed), **options)


def _share(h: torch.Tensor) -> torch.Tensor:
    """``[K]``: the top eigenvalue's share of each client's spatial covariance over the time steps."""
    covariance = torch.einsum("ktn,ktm->knm", h, h.conj()) / h.shape[1]
    eigenvalues = torch.linalg.eigvalsh(covariance)
    return eigenvalues[:, -1] / eigenvalues.sum(-1)


def test_the_drop_is_drop_clients_and_the_same_seed_gives_the_same_responses():
    drop, fading = _drop(3, num_antennas=2)
    plain = drop_clients("umi", 8, torch.Generator().manual_seed(3))
    for field in ("positions_m", "coupling_loss_db", "indoor", "los", "shadowing_db"):
        assert torch.equal(getattr(drop, field), getattr(plain, field)), field
    steps = torch.arange(5)
    again = _drop(3, num_antennas=2)[1]
    assert torch.equal(fading(torch.arange(8), steps), again(torch.arange(8), steps))
    other = _drop(4, num_antennas=2)[1]
    assert not torch.equal(fading(torch.arange(8), steps), other(torch.arange(8), steps))
    # rows follow the indices asked for
    h = fading(torch.arange(8), steps, torch.complex128)
    assert torch.equal(fading(torch.tensor([5, 1]), steps, torch.complex128), h[[5, 1]])


def test_the_drop_is_the_one_drop_clients_made_before_the_clusters_existed():
    # seed 3's drop of 3 UMi clients as drop_clients drew it before channel.name: scenario (7b5cc98):
    # the rays are drawn after the drop, and the clients' speed changes no draw of it
    drop, _ = _drop(3, clients=3)
    assert drop.coupling_loss_db.tolist() == pytest.approx([122.613225, 104.226194, 94.436667], abs=1e-5)
    assert drop.distance_2d_m.tolist() == pytest.approx([48.2119, 89.2625, 81.5283], abs=1e-3)
    moving, _ = _drop(3, clients=3, speed_mps=20.0)
    assert torch.equal(moving.coupling_loss_db, drop.coupling_loss_db)


def test_the_uplink_is_the_transpose_of_the_downlink_view_sionna_computes():
    # reciprocity: the uplink view (the client transmits, the panel receives, the client's end moving)
    # of the same rays, with the polarisation matrix transposed, is the same channel to rounding
    _, fading = _drop(11, clients=6, num_antennas=4, step_s=0.01)
    downlink = fading(torch.arange(6), torch.arange(3), torch.complex128)  # [K, T, N]
    tr38901 = import_sionna("sionna.phy.channel.tr38901")

    def swap(x):
        return x.permute(0, 2, 1, *range(3, x.dim()))

    rays, top = copy.copy(fading._rays), fading._topology
    up = copy.copy(rays)
    up.aod, up.zod, up.aoa, up.zoa = swap(rays.aoa), swap(rays.zoa), swap(rays.aod), swap(rays.zod)
    up.powers, up.delays, up.xpr = swap(rays.powers), swap(rays.delays), swap(rays.xpr)
    for name in ("cluster_sort_indices", "strongest_cluster_indices"):
        if getattr(rays, name) is not None:
            setattr(up, name, swap(getattr(rays, name)))
    up.phases = swap(rays.phases)[..., [0, 2, 1, 3]]  # the 2 x 2 polarisation matrix transposed
    topology = tr38901.Topology(
        velocities=top.velocities,
        moving_end="tx",
        los_aoa=swap(top.los_aod),
        los_aod=swap(top.los_aoa),
        los_zoa=swap(top.los_zod),
        los_zod=swap(top.los_zoa),
        los=swap(top.los),
        distance_3d=swap(top.distance_3d),
        tx_orientations=top.rx_orientations,
        rx_orientations=top.tx_orientations,
    )
    generator = tr38901.ChannelCoefficientsGenerator(
        fading.carrier_frequency_hz,
        omni_panel(fading.carrier_frequency_hz),
        omni_panel(fading.carrier_frequency_hz, 4),
        True,
        precision="double",
        device="cpu",
    )
    times = torch.arange(3, dtype=torch.float64) * 0.01
    h, _ = generator._step_11(up.phases, topology, swap(fading._k_factor), up, times, swap(fading._c_ds))
    uplink = h.sum(3)[0, :, 0, :, 0, :].permute(0, 2, 1)  # [K, T, N]
    assert torch.allclose(uplink, downlink, rtol=0, atol=1e-12)


def test_each_antennas_mean_power_over_the_rounds_is_one():
    # the clusters' powers sum to 1 (LOS: K / (K + 1) + 1 / (K + 1)); over rounds the rays' Doppler
    # phases decorrelate, so every client's time average tends to 1 (the drop's coupling loss is the
    # mean received power, counted by the channel's path_loss)
    _, fading = _drop(1, clients=16, num_antennas=2, step_s=1.0)
    power = fading(torch.arange(16), torch.arange(400), torch.complex128).abs().square().mean((1, 2))
    assert abs(float(power.mean()) - 1) < 0.05, power
    assert float((power - 1).abs().max()) < 0.3, power


def test_chunks_join_without_a_seam_and_a_static_client_keeps_its_channel():
    _, fading = _drop(2, num_antennas=3, step_s=0.05)
    whole = fading(torch.arange(8), torch.arange(12), torch.complex128)
    fading.chunk, fading._chunks = 5, {}  # steps 5..9 and 10..11 now start later in Sionna's time
    pieces = fading(torch.arange(8), torch.arange(12), torch.complex128)
    assert torch.allclose(pieces, whole, rtol=0, atol=1e-12)
    late = fading(torch.arange(8), torch.tensor([11, 3]), torch.complex128)  # any order, two chunks
    assert torch.allclose(late, whole[:, [11, 3]], rtol=0, atol=1e-12)
    _, still = _drop(2, num_antennas=3, speed_mps=0.0)
    h = still(torch.arange(8), torch.arange(4), torch.complex128)
    assert torch.equal(h, h[:, :1].expand_as(h))


def test_the_clients_speed_sets_how_fast_their_channel_decorrelates():
    # Doppler f_D = v / lambda = 0.833 / 0.0857 = 9.7 Hz at 3 km/h and 3.5 GHz: 1 ms apart, the rounds'
    # channels are nearly the same (Clarke's J0(2 pi f_D tau) = 0.998); 0.3 s apart (f_D tau = 2.9),
    # nearly independent (non-line-of-sight clients outdoors, so no fixed LOS ray keeps them correlated)
    def lag_one(step_s: float) -> torch.Tensor:
        _, fading = _drop(0, clients=16, step_s=step_s, los=False, indoor=False)
        h = fading(torch.arange(16), torch.arange(200), torch.complex128)[..., 0]
        return (h[:, :-1] * h[:, 1:].conj()).sum(1).abs() / h.abs().square().sum(1)

    assert float(lag_one(1e-3).min()) > 0.97
    assert float(lag_one(0.3).mean()) < 0.3
    # exactly: the Doppler phases turn with v t, so twice the speed at half the step is the same channel
    slow = _drop(0, clients=4, num_antennas=2, step_s=0.2)[1](
        torch.arange(4), torch.arange(6), torch.complex128
    )
    fast = _drop(0, clients=4, num_antennas=2, step_s=0.1, speed_mps=2 * 3 / 3.6)[1]
    assert torch.allclose(fast(torch.arange(4), torch.arange(6), torch.complex128), slow, rtol=0, atol=1e-12)
    assert torch.allclose(_drop(0, clients=4)[1].speed_mps, torch.full((4,), 3 / 3.6, dtype=torch.float64))


def test_the_antennas_correlation_comes_from_the_clusters_angles():
    # a client in line of sight outdoors arrives from a narrow spread of angles: its 8 antennas' covariance
    # is nearly rank one; non-line-of-sight clients spread wider. Independent antennas (64 samples of
    # 8) give a top share near 0.2.
    los = torch.cat(
        [
            _share(
                _drop(s, num_antennas=8, step_s=0.5, los=True, indoor=False)[1](
                    torch.arange(8), torch.arange(64), torch.complex128
                )
            )
            for s in range(2)
        ]
    )
    nlos = torch.cat(
        [
            _share(
                _drop(s, num_antennas=8, step_s=0.5, los=False, indoor=False)[1](
                    torch.arange(8), torch.arange(64), torch.complex128
                )
            )
            for s in range(2)
        ]
    )
    white = torch.randn(16, 64, 8, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    assert float(los.mean()) > 0.75 and float(los.mean()) > float(nlos.mean()) + 0.25
    assert float(nlos.mean()) > float(_share(white).mean()) + 0.1


def test_the_channel_samples_one_time_per_round_and_keeps_each_clients_large_scale_gain():
    drop, fading = _drop(5, clients=6, num_antennas=4, step_s=0.1)
    beta = torch.linspace(0.5, 3.0, 6, dtype=torch.float64)
    channel = FadingChannel(
        fading,
        path_loss=DropGains(beta),
        antennas=ReceiveArray(4, "eigen"),
        coherence_blocks=2,
        generator=torch.Generator().manual_seed(0),
    )
    first = channel.realize(6, 100, dtype=torch.complex128)
    assert torch.equal(channel.realize(6, 100, dtype=torch.complex128).gains, first.gains)  # same round
    some = channel.realize(None, 100, dtype=torch.complex128, clients=[4, 1])
    vectors = fading(torch.arange(6), torch.tensor([0, 1]), torch.complex128) * beta.sqrt()[:, None, None]
    # the eigen beamformer: m the principal eigenvector of sum_k h_k h_k^H of each coherence block
    assert first.gains.shape == (6, 2, 1)
    for block in range(2):
        h = vectors[:, block]  # [K, N]
        _, eigenvectors = torch.linalg.eigh(h.T @ h.conj())
        m = eigenvectors[:, -1]
        expected = (h @ m.conj()).abs()
        assert torch.allclose(first.gains[:, block, 0].abs(), expected, rtol=1e-9, atol=1e-12)
    assert some.gains.shape == (2, 2, 1)
    channel.time_step = 3  # round 3: coherence blocks at steps 6 and 7
    later = channel.realize(6, 100, dtype=torch.complex128)
    assert not torch.allclose(later.gains, first.gains)
    alone = FadingChannel(
        fading, path_loss=DropGains(beta), antennas=ReceiveArray(4, "matched"), coherence_blocks=2
    )
    alone.time_step = 3
    matched = alone.realize(6, 100, dtype=torch.complex128).gains[..., 0]
    h = fading(torch.arange(6), torch.tensor([6, 7]), torch.complex128) * beta.sqrt()[:, None, None]
    unit = h / torch.linalg.vector_norm(h, dim=-1, keepdim=True)
    m = unit.sum(0)
    m = m / torch.linalg.vector_norm(m, dim=-1, keepdim=True)  # [C, N]
    expected = (m.conj()[None] * h).sum(-1)
    assert torch.allclose(matched, expected, rtol=1e-10, atol=1e-12)


def test_a_round_across_two_chunks_computes_each_once_and_a_too_large_drop_is_refused(monkeypatch):
    _, fading = _drop(7, clients=3, step_s=0.1)
    fading.chunk, fading._chunks = 4, {}
    calls = []
    original = ClusterFading._chunk

    def counted(self, index):
        if index not in self._chunks:
            calls.append(index)
        return original(self, index)

    monkeypatch.setattr(ClusterFading, "_chunk", counted)
    for _ in range(3):  # a round's realizations, its two coherence blocks at steps 3 and 4
        fading(torch.arange(3), torch.tensor([3, 4]))
    assert calls == [0, 1]
    monkeypatch.setattr("channels.clusters.PER_STEP_LIMIT", 100)
    with pytest.raises(ValueError, match="num_clients x num_antennas = 3 x 1"):
        _drop(7, clients=3)


def test_a_copy_gives_the_same_responses():
    _, fading = _drop(6, clients=3, num_antennas=2)
    before = fading(torch.arange(3), torch.arange(3))
    for copied in (pickle.loads(pickle.dumps(fading)), deepcopy(fading)):
        assert torch.equal(copied(torch.arange(3), torch.arange(3)), before)


def test_refusals_name_the_argument():
    _, fading = _drop(0, clients=3, num_antennas=2)
    with pytest.raises(ValueError, match="antennas"):
        FadingChannel(fading)  # one antenna asked of a two-antenna drop
    with pytest.raises(ValueError, match="correlation"):
        FadingChannel(fading, antennas=ReceiveArray(2, correlation=0.5))
    with pytest.raises(ValueError, match="steps"):
        fading(torch.arange(3), torch.tensor([-1]))
    with pytest.raises(IndexError, match="clients"):
        fading(torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="speed_mps"):
        cluster_drop("umi", 2, torch.Generator(), speed_mps=math.inf)
    with pytest.raises(ValueError, match="step_s"):
        cluster_drop("umi", 2, torch.Generator(), step_s=0.0)
    with pytest.raises(ValueError, match="speed_mps"):
        cluster_drop("umi", 2, torch.Generator(), speed_mps=True)
    with pytest.raises(ValueError, match="time_step"):
        FadingChannel(fading, antennas=ReceiveArray(2)).time_step = -1
    with pytest.raises(TypeError, match="time_step"):
        FadingChannel(fading, antennas=ReceiveArray(2)).time_step = 1.5
    assert isinstance(fading, ClusterFading)
    channel = FadingChannel(fading, antennas=ReceiveArray(2))
    assert channel.num_clients == 3  # the drop's, before any realization (no path_loss needed)
    with pytest.raises(ValueError, match="num_clients = 2"):
        channel.realize(2)
    assert channel.realize(None, clients=[2]).gains.shape == (1, 1, 1)
