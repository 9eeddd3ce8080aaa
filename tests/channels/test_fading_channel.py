"""FadingChannel and the power-control policies (the physics of docs/physics.md)."""

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from channels import AWGNChannel
from channels.fading import RayleighFading, TDLFading
from channels.fading_channel import ChannelState, FadingChannel, SignalBlocks
from channels.noise import ComplexNoise, from_symbols
from channels.power_control import ImperfectCSI, PerfectInversion, TruncatedInversion

F64, C128 = torch.float64, torch.complex128


def _state(gains, csi=None):
    gains = torch.as_tensor(gains, dtype=C128).reshape(len(gains), 1, -1)
    csi = gains if csi is None else torch.as_tensor(csi, dtype=C128).reshape(gains.shape)
    return ChannelState(gains, csi, symbols_per_block=1)


def _signals(generator, num_clients=6, dim=40):
    return torch.randn(num_clients, dim, generator=generator, dtype=F64)


@pytest.mark.parametrize("policy", [PerfectInversion(), TruncatedInversion(0.0), ImperfectCSI(0.0)])
def test_every_policy_reduces_to_awgn_when_all_gains_are_one(generator, policy):
    s = _signals(generator)
    awgn = AWGNChannel(1.0, generator=torch.Generator().manual_seed(9))(s, 3.0)
    faded = FadingChannel(policy=policy, noise_var=1.0, generator=torch.Generator().manual_seed(9))(
        s, 3.0, state=_state([1.0] * 6)
    )
    assert_close(faded.estimate, awgn.estimate)
    assert_close(faded.energy_used, awgn.energy_used)
    assert_close(faded.noise_var, awgn.noise_var)


def test_perfect_inversion_aligns_any_complex_gains_exactly(generator):
    s = _signals(generator)
    gains = torch.complex(
        torch.randn(6, generator=generator, dtype=F64), torch.randn(6, generator=generator, dtype=F64)
    )
    out = FadingChannel(noise_var=0.0)(s, 2.0, state=_state(gains))
    assert_close(out.estimate, s.mean(0))
    # the weakest |h| / ||s|| client spends its whole budget
    norms = torch.linalg.vector_norm(s, dim=1)
    eta = float((math.sqrt(2.0) * gains.abs() / norms).min())
    assert_close(out.energy_used, eta**2 * norms**2 / gains.abs() ** 2)
    assert_close(out.energy_used.max(), torch.tensor(2.0, dtype=F64))


def test_perfect_inversion_noise_variance_and_unbiasedness_under_fading(generator):
    s = _signals(generator, num_clients=4, dim=20000)
    gains = torch.tensor([0.3 + 0.4j, 1.0, -2.0j, 0.7], dtype=C128)
    channel = FadingChannel(noise_var=0.5, generator=generator)
    out = channel(s, 8.0, state=_state(gains))
    error = out.estimate - s.mean(0)
    expected = 0.5 / (float(out.scale) ** 2 * 4**2)
    n = error.numel()
    assert float(out.noise_var) == pytest.approx(expected)
    assert abs(float(error.var()) - expected) < 5 * expected * math.sqrt(2 / (n - 1))
    assert abs(float(error.mean())) < 5 * math.sqrt(expected / n)


def test_truncated_inversion_silences_deep_fades_and_averages_the_rest(generator):
    s = _signals(generator, num_clients=3)
    out = FadingChannel(policy=TruncatedInversion(0.25), noise_var=0.0)(s, 1.0, state=_state([0.1, 1.0, 2.0]))
    assert out.active.tolist() == [False, True, True]
    assert_close(out.estimate, s[1:].mean(0))  # normalised by K_active = 2
    assert float(out.energy_used[0]) == 0.0


def test_truncated_inversion_noise_is_normalised_by_the_active_count(generator):
    s = _signals(generator, num_clients=3)
    out = FadingChannel(policy=TruncatedInversion(0.25), noise_var=1.0, generator=generator)(
        s, 1.0, state=_state([0.1, 1.0, 2.0])
    )
    assert float(out.noise_var) == pytest.approx(1.0 / (float(out.scale) ** 2 * 2**2))


def test_participation_under_rayleigh_fading_is_exp_minus_threshold_over_mean_gain():
    threshold, trials = 0.7, 4000
    channel = FadingChannel(
        RayleighFading(), TruncatedInversion(threshold), generator=torch.Generator().manual_seed(0)
    )
    active = torch.stack(
        [(channel.realize(num_clients=8).csi.abs().square() >= threshold).reshape(-1) for _ in range(trials)]
    )
    p, n = math.exp(-threshold), active.numel()
    assert abs(float(active.double().mean()) - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_imperfect_csi_misaligns_the_estimate(generator):
    """A known CSI error rotates and scales each client's contribution by h / h_hat."""
    s = _signals(generator, num_clients=2, dim=4)
    gains = torch.tensor([1.0, 1.0], dtype=C128)
    csi = torch.tensor([1.0, 1j], dtype=C128)  # client 1 believes h = j
    out = FadingChannel(policy=ImperfectCSI(0.1), noise_var=0.0)(s, 1.0, state=_state(gains, csi))
    # client 1's symbols arrive multiplied by h / h_hat = -j: (I, Q) -> (Q, -I)
    rotated = s[1].reshape(-1, 2).flip(1) * torch.tensor([1.0, -1.0], dtype=F64)
    assert_close(out.estimate, (s[0] + rotated.reshape(-1)) / 2)


def test_imperfect_csi_error_has_the_given_variance():
    policy = ImperfectCSI(error_var=0.3)
    gains = torch.ones(50000, 1, 1, dtype=C128)
    error = policy.estimate_csi(gains, torch.Generator().manual_seed(2)) - gains
    n = error.numel()
    assert abs(float(error.abs().square().mean()) - 0.3) < 5 * 0.3 / math.sqrt(n)


def test_broadband_state_maps_symbols_onto_subcarriers_and_coherence_blocks():
    gains = torch.arange(2 * 3 * 4, dtype=F64).reshape(2, 3, 4).to(C128) + 1
    state = ChannelState(gains, gains, symbols_per_block=5)
    g, _ = state.at(symbol_offset=3, num_symbols=9)  # symbols 3..11
    j = torch.arange(3, 12)
    assert torch.equal(g, gains[:, (j // 5).clamp(max=2), j % 4])


def test_coherence_blocks_draw_independent_gains():
    channel = FadingChannel(RayleighFading(), coherence_blocks=3, generator=torch.Generator().manual_seed(0))
    state = channel.realize(num_clients=4, channel_uses=60)
    assert state.gains.shape == (4, 3, 1) and state.symbols_per_block == 10
    assert not torch.equal(state.gains[:, 0], state.gains[:, 1])


def test_same_seed_same_gains_and_noise(generator):
    s = _signals(generator)
    runs = [
        FadingChannel(RayleighFading(), generator=torch.Generator().manual_seed(4))(s, 1.0).estimate
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


def test_state_with_the_wrong_number_of_clients_is_rejected(generator):
    with pytest.raises(ValueError, match="clients"):
        FadingChannel()(_signals(generator, num_clients=3), 1.0, state=_state([1.0, 1.0]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: TruncatedInversion(-1.0),
        lambda: ImperfectCSI(-0.1),
        lambda: TruncatedInversion(math.nan),
        lambda: FadingChannel(coherence_blocks=0),
    ],
)
def test_bad_policy_arguments_are_rejected(make):
    with pytest.raises(ValueError, match="threshold|error_var|coherence_blocks"):
        make()


@settings(max_examples=60, deadline=None)
@given(
    num_clients=st.integers(1, 6),
    dim=st.integers(1, 9),
    seed=st.integers(0, 2**31),
    policy=st.sampled_from(
        [PerfectInversion(), TruncatedInversion(0.5), ImperfectCSI(0.2), ImperfectCSI(0.5, 0.3)]
    ),
    budget_scale=st.floats(1e-6, 1e6),
    zero_client=st.booleans(),
)
def test_no_client_ever_exceeds_its_budget(num_clients, dim, seed, policy, budget_scale, zero_client):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(num_clients, dim, generator=g, dtype=F64) * torch.rand(
        num_clients, 1, generator=g, dtype=F64
    )
    if zero_client:
        s[0] = 0
    budgets = budget_scale * torch.rand(num_clients, generator=g, dtype=F64)
    channel = FadingChannel(RayleighFading(), policy, noise_var=1.0, generator=g)
    out = channel(s, budgets, state=channel.realize(num_clients, dim, dtype=C128))
    assert bool((out.energy_used <= budgets * (1 + 1e-9)).all())
    assert bool(torch.isfinite(out.estimate).all())


# ---------------------------------------------------------------------------------------------------------
# a round's blocks in one call (FadingChannel.transmit) against one call per block (forward)


def _round(generator, num_clients=5, dims=(7, 30, 1, 12), dtype=F64):
    return [
        [torch.randn(d, generator=generator, dtype=dtype) * (b + 1) for b, d in enumerate(dims)]
        for _ in range(num_clients)
    ]


def _block_by_block(channel, client_blocks, energy, state, seed):
    """What the channel gives sending the round's blocks one call each, one after another."""
    generator, offset, outs = torch.Generator().manual_seed(seed), 0, []
    for b in range(len(client_blocks[0])):
        signals = torch.stack([blocks[b] for blocks in client_blocks])
        outs.append(channel(signals, energy[:, b], state=state, symbol_offset=offset, generator=generator))
        offset += (signals.shape[1] + 1) // 2
    return outs


def _channels():
    return {
        "awgn": AWGNChannel(noise_var=0.5),
        "rayleigh_truncated": FadingChannel(RayleighFading(), TruncatedInversion(0.3), noise_var=0.5),
        "imperfect_csi": FadingChannel(RayleighFading(), ImperfectCSI(0.2, threshold=0.1), noise_var=0.5),
        "tdl_coherence": FadingChannel(
            TDLFading("C", 300e-9, num_subcarriers=8),
            TruncatedInversion(0.2),
            noise_var=0.5,
            coherence_blocks=3,
        ),
    }


@pytest.mark.parametrize("name", list(_channels()))
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_one_call_for_all_blocks_has_the_physics_of_one_call_per_block(name, dtype, generator):
    """The fused pass keeps the per-block physics: the same scales, energies, activity and effective
    noise variances as one call per block, and the same estimates but for the noise, which is one
    draw for the whole pass (to float rounding: the fused pass sums and scales in another order)."""
    channel = _channels()[name]
    client_blocks = _round(generator, dtype=dtype)
    energy = torch.rand(5, 4, generator=generator, dtype=F64) * 10
    energy[1, 2] = 0.0  # a client silent in one block
    cdtype = torch.complex128 if dtype == F64 else torch.complex64
    dims = [b.numel() for b in client_blocks[0]]
    state = channel.realize(5, sum(dims), torch.Generator().manual_seed(3), cdtype)
    out = channel.transmit(
        SignalBlocks(client_blocks), energy, state=state, generator=torch.Generator().manual_seed(7)
    )
    expected = _block_by_block(channel, client_blocks, energy, state, seed=7)
    quiet = copy.deepcopy(channel)
    quiet.noise_var = 0.0  # the same channel state and policy, no noise
    clean = quiet.transmit(SignalBlocks(client_blocks), energy, state=state)
    clean_expected = _block_by_block(quiet, client_blocks, energy, state, seed=7)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    for b, block in enumerate(expected):
        assert_close(out.energy_used[:, b], block.energy_used, **tol)
        assert_close(out.noise_var[b], block.noise_var, **tol)
        assert_close(out.scale[b], block.scale, **tol)
        assert torch.equal(out.active[:, b], block.active)
        assert_close(clean.estimates[b], clean_expected[b].estimate, **tol)
    assert not out.active[1, 2] and out.energy_used[1, 2] == 0
    if name == "awgn":  # the noise is one draw of CN(0, 2 noise_var) per symbol over the pass, in order
        symbols = [(d + 1) // 2 for d in dims]
        z = ComplexNoise()(torch.zeros(sum(symbols), dtype=cdtype), 0.5, torch.Generator().manual_seed(7))
        start = 0
        for b, d in enumerate(dims):
            heard = int(out.active[:, b].sum())
            noise = from_symbols(z[start : start + symbols[b]], d) / (out.scale[b] * heard)
            assert_close(out.estimates[b] - clean.estimates[b], noise, **tol)
            start += symbols[b]


@pytest.mark.parametrize("name", list(_channels()))
def test_packing_one_client_at_a_time_gives_the_packed_result(name, generator):
    """Large rounds are packed client by client (no second copy of every signal): the same result
    to float rounding (another order of the sum over clients), the same noise."""
    channel = _channels()[name]
    client_blocks = _round(generator, num_clients=6)
    energy = torch.rand(6, 4, generator=generator, dtype=F64) * 10
    state = channel.realize(6, 50, torch.Generator().manual_seed(3), torch.complex128)
    packed, streamed = SignalBlocks(client_blocks), SignalBlocks(client_blocks, pack_limit=0)
    assert packed.packed is not None and streamed.packed is None
    assert_close(streamed.norms(), packed.norms())
    a = channel.transmit(packed, energy, state=state, generator=torch.Generator().manual_seed(7))
    b = channel.transmit(streamed, energy, state=state, generator=torch.Generator().manual_seed(7))
    for x, y in zip(a.estimates, b.estimates, strict=True):
        assert_close(x, y)
    for field in ("energy_used", "noise_var", "scale"):
        assert_close(getattr(a, field), getattr(b, field))
    assert torch.equal(a.active, b.active)


def test_transmit_rejects_budgets_of_the_wrong_shape_or_sign(generator):
    blocks = SignalBlocks(_round(generator))
    with pytest.raises(ValueError, match=r"energy must have shape \[5, 4\]"):
        AWGNChannel(1.0).transmit(blocks, torch.ones(5))
    with pytest.raises(ValueError, match="energy must be >= 0 and not NaN"):
        AWGNChannel(1.0).transmit(blocks, torch.full((5, 4), float("nan")))
    with pytest.raises(ValueError, match="lengths of client 0's"):
        SignalBlocks([[torch.ones(3)], [torch.ones(4)]])


def test_signals_viewed_from_the_middle_of_a_tensor_are_accepted():
    """A [K, d] view starting at an odd element cannot be viewed as complex without a copy."""
    flat = torch.arange(9, dtype=F64)
    out = FadingChannel(noise_var=0.0)(flat[1:9].view(2, 4), 10.0)
    assert_close(out.estimate, torch.tensor([3.0, 4.0, 5.0, 6.0], dtype=F64))


def test_blocks_of_other_lengths_than_client_0s_are_refused_even_when_the_totals_match():
    with pytest.raises(ValueError, match=r"client 1 has one of shape \(1,\)"):
        SignalBlocks([[torch.ones(3), torch.ones(1)], [torch.ones(1), torch.ones(3)]])


def test_each_estimate_comes_back_in_its_blocks_dtype_computed_in_the_widest():
    blocks = SignalBlocks([[torch.ones(2), torch.ones(2, dtype=F64)]] * 2)
    out = FadingChannel(noise_var=0.0).transmit(blocks, torch.ones(2, 2))
    assert blocks.dtype == F64 and [e.dtype for e in out.estimates] == [torch.float32, F64]


# ---------------------------------------------------------------------------------------------------------
# ChannelState: any clients' rows, and each client's channel quality


def test_channel_state_takes_clients_by_index_in_the_order_given():
    gains = torch.arange(1, 5 * 2 * 3 + 1, dtype=F64).reshape(5, 2, 3).to(C128)
    state = ChannelState(gains, 2 * gains, symbols_per_block=7)
    for index in ([3, 0, 4], torch.tensor([3, 0, 4]), (3, 0, 4)):
        picked = state.clients(index)
        assert torch.equal(picked.gains, gains[[3, 0, 4]]) and torch.equal(picked.csi, 2 * gains[[3, 0, 4]])
        assert picked.symbols_per_block == 7
    assert torch.equal(state.clients(torch.tensor([False, True, False, True, False])).gains, gains[[1, 3]])
    assert torch.equal(state.clients(slice(1, 3)).gains, gains[1:3])
    assert state.clients([]).gains.shape == (0, 2, 3)
    assert torch.equal(state.clients([2, 2]).gains, gains[[2, 2]])  # a client twice: its row twice


@pytest.mark.parametrize(
    "index, error",
    [
        ([5], IndexError),
        ([-1], IndexError),
        ([0.5], TypeError),
        ([[0, 1]], TypeError),
        ([True, False], ValueError),
    ],
)
def test_channel_state_refuses_bad_client_indices(index, error):
    state = ChannelState(torch.ones(5, 1, 1, dtype=C128), torch.ones(5, 1, 1, dtype=C128), 1)
    with pytest.raises(error, match="index|indices"):
        state.clients(index)


def test_channel_quality_is_the_mean_power_gain_over_coherence_blocks_and_subcarriers():
    channel = FadingChannel(
        TDLFading("C", 300e-9, num_subcarriers=8),
        coherence_blocks=3,
        generator=torch.Generator().manual_seed(0),
    )
    state = channel.realize(num_clients=4, channel_uses=60, dtype=torch.complex64)
    quality = state.quality()
    assert quality.dtype == F64 and quality.shape == (4,)
    expected = state.gains.to(C128).abs().square().mean(dim=(1, 2))
    assert_close(quality, expected, rtol=1e-6, atol=0)
    assert torch.equal(state.clients([2, 0]).quality(), quality[[2, 0]])  # ranks the clients


def test_channel_quality_of_rayleigh_fading_averages_to_the_large_scale_gain():
    """E|h|^2 = beta_k: over many rounds the quality of client k averages to its path-loss gain."""
    from channels.fading import PathLoss

    channel = FadingChannel(
        RayleighFading(), path_loss=PathLoss(), generator=torch.Generator().manual_seed(1)
    )
    rounds = 4000
    qualities = torch.stack([channel.realize(num_clients=3).quality() for _ in range(rounds)])
    beta = channel.large_scale.double()
    # |h|^2 / beta is exponential with mean 1 and standard deviation 1
    assert bool(((qualities.mean(0) / beta - 1).abs() < 5 / math.sqrt(rounds)).all())


# ------------------------------------------------ large-scale gains: drawn once for the run's clients
def _path_loss_channel(fading=None, seed=1):
    from channels.fading import PathLoss

    return FadingChannel(fading, path_loss=PathLoss("umi_los"), generator=torch.Generator().manual_seed(seed))


def test_realize_of_some_clients_gives_each_its_own_path_loss():
    """A round of clients 5, 2, 7 of 8: each keeps the large-scale gain drawn for it at the first
    realization (without fading, |h_k|^2 is exactly that gain), and nothing is drawn again."""
    channel = _path_loss_channel()
    everyone = channel.realize(8, dtype=C128)
    beta = channel.large_scale.clone()
    assert_close(everyone.quality(), beta.double(), rtol=1e-12, atol=0)
    some = channel.realize(8, dtype=C128, clients=[5, 2, 7])
    assert torch.equal(channel.large_scale, beta)
    assert_close(some.quality(), beta.double()[[5, 2, 7]], rtol=1e-12, atol=0)
    again = channel.realize(None, dtype=C128, clients=torch.tensor([1, 6]))  # None: the run's K
    assert_close(again.quality(), beta.double()[[1, 6]], rtol=1e-12, atol=0)


def test_realize_with_another_client_count_is_refused_instead_of_drawing_new_path_loss():
    """The bug of issue 27: a pass of 3 participants called realize(3) and got a fresh draw of 3
    path losses (participant j took row j of it) instead of its own; now it is refused."""
    channel = _path_loss_channel(RayleighFading())
    channel.realize(8)
    beta = channel.large_scale.clone()
    with pytest.raises(ValueError, match=r"num_clients = 3, but .* drawn for 8 clients.*clients="):
        channel.realize(3)
    assert torch.equal(channel.large_scale, beta)
    with pytest.raises(ValueError, match="has not drawn its clients' large-scale gains"):
        _path_loss_channel().realize(None, clients=[0, 1])


@pytest.mark.parametrize(
    ("clients", "error", "match"),
    [
        ([], ValueError, "clients is empty"),
        ([1, 1], ValueError, "distinct"),
        ([0, 8], ValueError, r"in 0\.\.7"),
        ([-1], ValueError, "client indices"),
        ([0.5], TypeError, "client indices"),
        ([[0, 1]], TypeError, "1-D"),
        ("ab", TypeError, "client indices"),
    ],
)
def test_realize_refuses_bad_client_indices(clients, error, match):
    with pytest.raises(error, match=match):
        _path_loss_channel().realize(8, clients=clients)


def test_realize_without_path_loss_accepts_any_participants():
    """Nothing is kept per client without a path-loss model: realizing some clients draws their
    fading alone, as realizing that many clients does (the same random numbers)."""
    a = FadingChannel(RayleighFading(), generator=torch.Generator().manual_seed(3))
    b = FadingChannel(RayleighFading(), generator=torch.Generator().manual_seed(3))
    some, plain = a.realize(None, 10, clients=[4, 9, 2]), b.realize(3, 10)
    assert torch.equal(some.gains, plain.gains) and a.num_clients is None


# ------------------------------------------------------ budgets and signals beyond float32's range
def test_a_positive_budget_that_underflows_float32_is_refused_not_taken_as_none():
    """energy 1e-300 became 0 in float32: no client heard, a zero estimate, and no word."""
    signals = torch.ones(2, 4)
    with pytest.raises(
        ValueError, match=r"energy holds positive budgets that underflow to 0 in torch.float32"
    ):
        AWGNChannel(1.0, generator=torch.Generator().manual_seed(0))(signals, 1e-300)
    out = AWGNChannel(1.0, generator=torch.Generator().manual_seed(0))(signals, 0.0)  # 0 stays legal
    assert not bool(out.active.any()) and torch.equal(out.estimate, torch.zeros(4))


def test_signals_whose_over_the_air_sum_overflows_float32_are_refused():
    """Entries near float32's maximum: the clients' sum overflowed into a NaN estimate with an
    infinite noise variance; now the call names the signals."""
    signals = torch.tensor([[3e38, 1.0], [3e38, 1.0]])
    with pytest.raises(ValueError, match=r"signals are too large for torch.float32: block 0"):
        AWGNChannel(1.0, generator=torch.Generator().manual_seed(0))(signals, 100.0)
    wide = AWGNChannel(0.0)(signals.double(), 100.0)  # in float64 the sum fits
    assert_close(wide.estimate, signals.double()[0], rtol=1e-12, atol=0)
