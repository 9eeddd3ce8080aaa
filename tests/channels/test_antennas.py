"""Many receive antennas: channel vectors, receive beamformers and over-the-air aggregation through
the effective gains m^H h_k (docs/physics.md, "Many receive antennas")."""

import math

import pytest
import torch
from torch.testing import assert_close

from channels.antennas import ReceiveArray, exponential_correlation
from channels.beamforming import (
    effective_gains,
    eigen_beamformer,
    matched_beamformer,
    maxmin_beamformer,
    min_power,
)
from channels.fading import PathLoss, RayleighFading, RicianFading, TDLFading
from channels.fading_channel import ChannelState, FadingChannel, SignalBlocks
from channels.power_control import ImperfectCSI, PerfectInversion, TruncatedInversion

F64, C128 = torch.float64, torch.complex128


def _crandn(generator, *shape):
    """CN(0, 1) entries, complex128."""
    pair = torch.randn(*shape, 2, generator=generator, dtype=F64) / math.sqrt(2)
    return torch.view_as_complex(pair)


# ------------------------------------------------------------------------------ the noise after combining
def test_beamformed_noise_variance_matches_the_derived_formula(generator):
    """The full N-antenna receiver, y = sum_k h_k x_k + z (z ~ CN(0, 2 noise_var I_N)), combined as
    m^H y / (eta K), has per-entry error variance noise_var / (eta K)^2 with eta = min_k sqrt(E) |g_k| /
    ||u_k||, g_k = m^H h_k; the channel (which works on g_k alone) reports and realises the same."""
    num_clients, num_antennas, symbols, trials, noise_var, energy = 4, 8, 500, 40, 0.7, 50.0
    array = ReceiveArray(num_antennas, "eigen", correlation=0.3)
    h = array.draw(RayleighFading(), num_clients, generator, C128)[:, 0]  # [K, N]
    m = array.design(h)
    assert_close(torch.linalg.vector_norm(m), torch.tensor(1.0, dtype=F64))
    g = effective_gains(m, h)  # [K]
    u = _crandn(generator, num_clients, symbols)  # each client's complex symbols
    eta = (math.sqrt(energy) * g.abs() / torch.linalg.vector_norm(u, dim=1)).min()
    formula = noise_var / float(eta * num_clients) ** 2
    x = eta * u / g[:, None]  # channel inversion of the effective gain
    assert_close(torch.linalg.vector_norm(x, dim=1).square().max(), torch.tensor(energy, dtype=F64))
    errors = []
    for _ in range(trials):
        z = math.sqrt(noise_var) * (_crandn(generator, num_antennas, symbols) * math.sqrt(2))  # CN(0, 2 nv)
        y = h.T @ x + z  # [N, S]: every antenna
        estimate = (m.conj() @ y) / (eta * num_clients)
        errors.append(estimate - u.mean(0))
    error = torch.cat(errors)
    for part in (error.real, error.imag):
        assert abs(float(part.var()) / formula - 1) < 0.05
    assert abs(float(error.real.mean())) < 5 * math.sqrt(formula / error.numel())

    # the channel on the effective gains: same reported variance, same empirical one
    signals = torch.view_as_real(u).reshape(num_clients, -1)  # I/Q interleaved, real [K, 2S]
    state = ChannelState(g.reshape(-1, 1, 1), g.reshape(-1, 1, 1), 1)
    channel = FadingChannel(noise_var=noise_var, generator=torch.Generator().manual_seed(3))
    outs = [channel(signals, energy, state=state) for _ in range(trials)]
    assert_close(outs[0].noise_var, torch.tensor(formula, dtype=F64))
    channel_error = torch.cat([out.estimate - signals.mean(0) for out in outs])
    assert abs(float(channel_error.var()) / formula - 1) < 0.05


# ------------------------------------------------------------------------------ Gamma(N, 1) array gain
def test_matched_filter_gain_of_one_client_over_rayleigh_is_gamma_n():
    """One client, i.i.d. Rayleigh, matched filter m = h / ||h||: |m^H h|^2 = ||h||^2 ~ Gamma(N, 1)
    (KS test over 4000 independent coherence blocks, each with its own beamformer)."""
    stats = pytest.importorskip("scipy.stats")
    num_antennas, draws = 8, 4000
    channel = FadingChannel(
        RayleighFading(),
        coherence_blocks=draws,
        generator=torch.Generator().manual_seed(5),
        antennas=ReceiveArray(num_antennas, "matched"),
    )
    state = channel.realize(1, channel_uses=2 * draws, dtype=C128)
    power = state.gains.abs().square().flatten()  # [draws]
    assert power.shape == (draws,)
    assert abs(float(power.mean()) / num_antennas - 1) < 0.05  # the array gain: E|g|^2 = N
    result = stats.kstest(power.numpy(), stats.gamma(num_antennas).cdf)
    assert result.pvalue > 1e-3, result
    # and exactly ||h||^2, draw by draw
    h = ReceiveArray(num_antennas).draw(RayleighFading(), 50, torch.Generator().manual_seed(6), C128)
    m = matched_beamformer(h)  # [50, 1, N]: one client per draw
    assert_close(min_power(m, h), torch.linalg.vector_norm(h, dim=(1, 2)).square())


# ------------------------------------------------------------------------------ the max-min beamformer
def test_maxmin_is_never_worse_than_matched_or_eigen(generator):
    for num_clients, num_antennas in [(2, 2), (3, 4), (6, 4), (5, 16), (16, 8)]:
        h = _crandn(generator, 4, num_clients, num_antennas)
        gain_db = torch.rand(4, num_clients, 1, generator=generator, dtype=F64) * 40 - 20  # path loss
        h = h * 10 ** (gain_db / 20)
        best = maxmin_beamformer(h)
        assert_close(torch.linalg.vector_norm(best, dim=-1), torch.ones(4, dtype=F64))
        value = min_power(best, h)
        assert bool((value >= min_power(matched_beamformer(h), h)).all())
        assert bool((value >= min_power(eigen_beamformer(h), h)).all())


def test_maxmin_is_the_matched_filter_for_one_client(generator):
    h = _crandn(generator, 5, 1, 6)
    assert_close(maxmin_beamformer(h), matched_beamformer(h))
    assert_close(min_power(maxmin_beamformer(h), h), torch.linalg.vector_norm(h, dim=(1, 2)).square())


def _fine_search(h: torch.Tensor, steps: int = 400) -> float:
    """max over m in span(h_1, h_2), ||m|| = 1, of min_k |m^H h_k|^2, by a grid over
    m = cos(a) q_1 + sin(a) e^{j b} q_2 (q: an orthonormal basis of the span; the common phase of m
    does not matter)."""
    q, _ = torch.linalg.qr(h.T)  # [N, 2]
    a = torch.linspace(0, math.pi / 2, steps, dtype=F64)
    b = torch.linspace(0, 2 * math.pi, 2 * steps, dtype=F64)
    first = torch.cos(a)[:, None, None] * q[:, 0]
    second = (torch.sin(a)[:, None] * torch.exp(1j * b)[None, :])[..., None] * q[:, 1]
    m = first + second  # [steps, 2 steps, N]
    return float(effective_gains(m, h[:, None, None, :].movedim(0, -2)).abs().square().amin(-1).max())


def test_maxmin_reaches_the_two_client_optimum_within_one_percent(generator):
    """For K = 2 the optimum lies in span(h_1, h_2); a fine search there is (nearly) optimal."""
    for num_antennas in (2, 4, 16):
        for scale in (1.0, 0.3, 0.05):
            h = _crandn(generator, 2, num_antennas) * torch.tensor([[1.0], [scale]], dtype=F64)
            found = float(min_power(maxmin_beamformer(h), h))
            optimum = _fine_search(h)
            assert found >= 0.99 * optimum, (num_antennas, scale, found, optimum)
            assert found <= 1.01 * optimum  # nothing better outside the span (the grid's own error)


# ------------------------------------------------------------------------------ channel vectors
def test_correlated_rayleigh_has_the_exponential_covariance():
    rho, num_antennas, draws = 0.7, 4, 20000
    h = ReceiveArray(num_antennas, correlation=rho).draw(
        RayleighFading(), draws, torch.Generator().manual_seed(7), C128
    )[:, 0]
    covariance = h.T @ h.conj() / draws  # E[h h^H]
    lag = torch.arange(num_antennas)[:, None] - torch.arange(num_antennas)[None, :]
    assert_close(covariance, (rho ** lag.abs().to(F64)).to(C128), atol=0.03, rtol=0)
    factor = exponential_correlation(num_antennas, 0.9)
    assert_close(factor @ factor.T, 0.9 ** lag.abs().to(F64))


def test_rician_and_tdl_vectors_keep_unit_power_per_antenna():
    generator = torch.Generator().manual_seed(8)
    h = ReceiveArray(4, correlation=0.5).draw(RicianFading(3.0), 20000, generator, C128)
    assert h.shape == (20000, 1, 4)
    assert_close(h.abs().square().mean(0), torch.ones(1, 4, dtype=F64), atol=0.03, rtol=0)
    tdl = ReceiveArray(4).draw(TDLFading("A", num_subcarriers=6), 5, generator, C128)
    assert tdl.shape == (5, 6, 4)


# ------------------------------------------------------------------------------ inside FadingChannel
def _channels(antennas, policy, seed=0):
    return FadingChannel(
        RayleighFading(),
        policy,
        noise_var=0.5,
        path_loss=PathLoss("umi_nlos"),
        coherence_blocks=2,
        generator=torch.Generator().manual_seed(seed),
        antennas=antennas,
    )


@pytest.mark.parametrize("policy", [PerfectInversion(), TruncatedInversion(0.3), ImperfectCSI(0.1, 0.2)])
def test_one_antenna_is_the_single_antenna_channel_bit_for_bit(generator, policy):
    plain = _channels(None, policy)
    one = _channels(ReceiveArray(1, "maxmin", correlation=0.5), policy)
    blocks = SignalBlocks([[torch.randn(30, generator=generator), torch.randn(7, generator=generator)]] * 3)
    energy = torch.full((3, 2), 20.0)
    for _ in range(2):  # the path loss is drawn on the first round, kept on the second
        a, b = plain.realize(3, 37), one.realize(3, 37)
        assert torch.equal(a.gains, b.gains) and torch.equal(a.csi, b.csi)
        out_a = plain.transmit(blocks, energy, state=a)
        out_b = one.transmit(blocks, energy, state=b)
        for x, y in zip(out_a.estimates, out_b.estimates):
            assert torch.equal(x, y)
        for name in ("energy_used", "noise_var", "active", "scale"):
            assert torch.equal(getattr(out_a, name), getattr(out_b, name))
    assert torch.equal(plain.generator.get_state(), one.generator.get_state())


def test_the_server_designs_from_the_estimates_and_clients_invert_them():
    """Imperfect CSI per antenna: h_hat = h + e; m from h_hat; gains m^H h, csi m^H h_hat (the
    misalignment is m^H e); the draws in this order from the channel's generator."""
    array = ReceiveArray(6, "eigen")
    policy = ImperfectCSI(0.2)
    channel = FadingChannel(
        RayleighFading(), policy, generator=torch.Generator().manual_seed(4), antennas=array
    )
    state = channel.realize(5, 100, dtype=C128)
    generator = torch.Generator().manual_seed(4)
    h = array.draw(RayleighFading(), 5, generator, C128)[:, 0]  # [K, N]
    h_hat = policy.estimate_csi(h, generator)
    m = eigen_beamformer(h_hat)
    assert_close(state.gains.flatten(), effective_gains(m, h))
    assert_close(state.csi.flatten(), effective_gains(m, h_hat))
    assert_close((state.csi - state.gains).flatten(), effective_gains(m, h_hat - h))
    assert_close(state.quality(), effective_gains(m, h).abs().square())  # what sampling ranks


def test_truncation_compares_the_combined_gain_with_the_threshold():
    channel = FadingChannel(
        RayleighFading(),
        noise_var=0.0,
        generator=torch.Generator().manual_seed(2),
        antennas=ReceiveArray(8, "matched"),
    )
    state = channel.realize(8, 4, dtype=C128)
    power = state.gains.abs().square().flatten()
    channel.policy = TruncatedInversion(float(power.median()))  # the beamformer is designed before
    signals = torch.randn(8, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    out = channel(signals, 10.0, state=state)
    heard = power >= float(power.median())
    assert 0 < int(heard.sum()) < 8
    assert torch.equal(out.active, heard)
    assert_close(out.estimate, signals[heard].mean(0))  # noiseless: the mean of those heard


# ------------------------------------------------------------------------------ configuration
TINY = ["data.name=digits", "model.name=linear", "clients.num_clients=3", "rounds=2"]


@pytest.mark.parametrize(
    "setting, key",
    [
        ("channel.rx_antennas=0", "channel.rx_antennas"),
        ("channel.rx_antennas=-3", "channel.rx_antennas"),
        ("channel.beamformer=zeroforcing", "channel.beamformer"),
        ("channel.correlation=1.0", "channel.correlation"),
        ("channel.correlation=-0.1", "channel.correlation"),
    ],
)
def test_bad_antenna_settings_exit_2_naming_the_key(tmp_path, capsys, setting, key):
    from federated.cli import main

    out = str(tmp_path / "r")
    assert main(["run", *TINY, "channel.name=rayleigh", setting, "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_a_run_with_many_antennas(tmp_path):
    from federated.cli import main
    from federated.components import build_channel
    from federated.config import ChannelConfig

    channel = build_channel(
        ChannelConfig(name="rayleigh", rx_antennas=4, beamformer="maxmin", correlation=0.5),
        seed=0,
        device=torch.device("cpu"),
    )
    assert channel.antennas is not None and channel.antennas.num_antennas == 4
    assert (channel.antennas.beamformer, channel.antennas.correlation) == ("maxmin", 0.5)
    assert build_channel(ChannelConfig(name="rayleigh"), 0, torch.device("cpu")).antennas is None
    settings = ["channel.name=rician", "channel.rx_antennas=4", "channel.beamformer=eigen"]
    assert main(["run", *TINY, *settings, "--out", str(tmp_path / "r"), "--quiet"]) == 0


def test_the_matched_beamformer_weighs_every_clients_direction_equally(generator):
    """m = sum_k h_k/||h_k|| normalised: for clients on orthogonal channels of any strengths, each
    gets |m^H h_k|^2 = ||h_k||^2 / K (the strong ones do not pull m towards them), and ||m|| = 1."""
    from channels.beamforming import matched_beamformer

    num_antennas, num_clients = 6, 4
    basis, _ = torch.linalg.qr(torch.randn(num_antennas, num_antennas, dtype=C128, generator=generator))
    strengths = torch.tensor([0.1, 1.0, 3.0, 30.0], dtype=torch.float64)
    channels = basis[:num_clients] * strengths[:, None]  # [K, N], orthogonal rows
    m = matched_beamformer(channels)
    assert_close(torch.linalg.vector_norm(m), torch.tensor(1.0, dtype=torch.float64), rtol=1e-12, atol=0)
    gains = (channels @ m.conj()).abs().square()
    assert_close(gains, strengths.square() / num_clients, rtol=1e-10, atol=0)
