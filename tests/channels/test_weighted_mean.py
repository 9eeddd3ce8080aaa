"""The weighted over-the-air mean (``FadingChannel(..., weights=...)``): client k pre-scales by w_k, the
server divides by eta * sum_{A_j} w_k. Exact checks over noiseless channels, statistical checks of
the estimate's mean and variance, the energy rule, the all-reduce over processes, bad weights."""

import math

import pytest
import torch
from _collective import transmit_split
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from channels import AWGNChannel
from channels.fading import RayleighFading, TDLFading
from channels.fading_channel import ChannelState, FadingChannel, SignalBlocks
from channels.power_control import ImperfectCSI, PerfectInversion, TruncatedInversion

F64, C128 = torch.float64, torch.complex128
EXACT = {"rtol": 1e-12, "atol": 1e-12}
WEIGHTS = torch.tensor([1.0, 2.5, 0.5, 4.0, 1.5], dtype=F64)


def _state(gains, csi=None):
    """A one-coherence-block state from ``[K]`` or ``[K, N]`` gains (subcarrier n: symbols j % N == n)."""
    gains = torch.as_tensor(gains, dtype=C128).reshape(len(gains), 1, -1)
    csi = gains if csi is None else torch.as_tensor(csi, dtype=C128).reshape(gains.shape)
    return ChannelState(gains, csi, symbols_per_block=1)


def _round(generator, num_clients=5, dims=(7, 30, 1, 12), dtype=F64):
    return [
        [torch.randn(d, generator=generator, dtype=dtype) * (b + 1) for b, d in enumerate(dims)]
        for _ in range(num_clients)
    ]


def _weighted_mean(signals, weights):
    """sum_k w_k s_k / sum_k w_k over the rows of ``signals`` ``[K, d]``."""
    return (weights[:, None] * signals).sum(0) / weights.sum()


def _channel(name, noise_var=0.5):
    return {
        "awgn": lambda: AWGNChannel(noise_var=noise_var),
        "rayleigh_truncated": lambda: FadingChannel(
            RayleighFading(), TruncatedInversion(0.6), noise_var=noise_var
        ),
        "rayleigh_inversion": lambda: FadingChannel(
            RayleighFading(), PerfectInversion(), noise_var=noise_var
        ),
        "tdl_truncated": lambda: FadingChannel(
            TDLFading("C", 300e-9, num_subcarriers=8), TruncatedInversion(0.4), noise_var=noise_var
        ),
    }[name]()


# ---------------------------------------------------------------------------------------------------------
# (a) all weights 1: the unweighted channel, bit for bit


@pytest.mark.parametrize("name", ["awgn", "rayleigh_truncated", "tdl_truncated"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("pack_limit", [1 << 24, 0])
def test_unit_weights_give_the_unweighted_result_bit_for_bit(name, dtype, pack_limit, generator):
    channel = _channel(name)
    client_blocks = _round(generator, dtype=dtype)
    energy = torch.rand(5, 4, generator=generator, dtype=F64) * 10
    energy[1, 2] = 0.0  # a client silent in one block
    cdtype = C128 if dtype == F64 else torch.complex64
    state = channel.realize(5, 50, torch.Generator().manual_seed(3), cdtype)
    if name != "awgn":  # truncation leaves someone out somewhere: the counts are not all K
        assert not bool(channel.policy.transmits(state.csi).all())
    plain = channel.transmit(
        SignalBlocks(client_blocks, pack_limit),
        energy,
        state=state,
        generator=torch.Generator().manual_seed(7),
    )
    for weights in (torch.ones(5, dtype=F64), [1.0] * 5, torch.ones(5, dtype=torch.float32)):
        weighted = channel.transmit(
            SignalBlocks(client_blocks, pack_limit),
            energy,
            state=state,
            generator=torch.Generator().manual_seed(7),
            weights=weights,
        )
        for x, y in zip(plain.estimates, weighted.estimates, strict=True):
            assert torch.equal(x, y) and x.dtype == y.dtype
        for field in ("energy_used", "noise_var", "active", "scale"):
            assert torch.equal(getattr(plain, field), getattr(weighted, field)), field


@pytest.mark.parametrize("name", ["awgn", "rayleigh_truncated"])
def test_unit_weights_on_one_block_are_bit_identical(name, generator):
    channel = _channel(name)
    signals = torch.randn(6, 41, generator=generator, dtype=F64)
    state = channel.realize(6, 41, torch.Generator().manual_seed(5), C128)
    plain = channel(signals, 3.0, state=state, generator=torch.Generator().manual_seed(1))
    weighted = channel(signals, 3.0, state=state, generator=torch.Generator().manual_seed(1), weights=[1] * 6)
    for field in ("estimate", "energy_used", "noise_var", "active", "scale"):
        assert torch.equal(getattr(plain, field), getattr(weighted, field)), field


# ---------------------------------------------------------------------------------------------------------
# (b) noiseless: the weighted mean exactly, renormalised over the clients heard


def test_noiseless_awgn_gives_the_weighted_mean(generator):
    signals = torch.randn(5, 33, generator=generator, dtype=F64)
    out = AWGNChannel(noise_var=0.0)(signals, 2.0, weights=WEIGHTS)
    assert_close(out.estimate, _weighted_mean(signals, WEIGHTS), **EXACT)
    assert out.active.all() and float(out.noise_var) == 0.0


def test_noiseless_perfect_inversion_of_complex_gains_gives_the_weighted_mean(generator):
    signals = torch.randn(5, 20, generator=generator, dtype=F64)
    gains = torch.complex(
        torch.randn(5, generator=generator, dtype=F64), torch.randn(5, generator=generator, dtype=F64)
    )
    out = FadingChannel(noise_var=0.0)(signals, 2.0, state=_state(gains), weights=WEIGHTS)
    assert_close(out.estimate, _weighted_mean(signals, WEIGHTS), **EXACT)


def test_truncation_renormalises_the_weights_over_the_clients_heard(generator):
    signals = torch.randn(5, 16, generator=generator, dtype=F64)
    gains = [0.1, 1.0, 2.0, 0.3j, -1.5]  # |h|^2 < 0.25: clients 0 and 3 silent
    out = FadingChannel(policy=TruncatedInversion(0.25), noise_var=0.0)(
        signals, 1.0, state=_state(gains), weights=WEIGHTS
    )
    heard = torch.tensor([False, True, True, False, True])
    assert out.active.tolist() == heard.tolist()
    assert_close(out.estimate, _weighted_mean(signals[heard], WEIGHTS[heard]), **EXACT)
    assert float(out.energy_used[0]) == 0.0 and float(out.energy_used[3]) == 0.0


def test_a_zero_budget_renormalises_the_weights_too(generator):
    signals = torch.randn(5, 8, generator=generator, dtype=F64)
    energy = torch.tensor([1.0, 0.0, 2.0, 3.0, 0.0], dtype=F64)
    out = AWGNChannel(noise_var=0.0)(signals, energy, weights=WEIGHTS)
    heard = energy > 0
    assert_close(out.estimate, _weighted_mean(signals[heard], WEIGHTS[heard]), **EXACT)


def test_per_symbol_truncation_renormalises_symbol_by_symbol(generator):
    """Over subcarriers, each symbol j has its own heard set A_j: entry i (symbol i // 2, subcarrier
    (i // 2) % N) is sum_{A_j} w_k s_ki / sum_{A_j} w_k, and 0 where nobody is heard."""
    num_clients, num_carriers, dim = 5, 4, 23
    signals = torch.randn(num_clients, dim, generator=generator, dtype=F64)
    magnitude = torch.tensor(
        [
            [1.0, 0.1, 1.0, 0.2],
            [0.3, 1.2, 1.0, 0.1],
            [2.0, 0.9, 0.1, 0.2],
            [0.1, 0.2, 0.7, 0.1],
            [1.0, 1.0, 0.6, 0.1],
        ],
        dtype=F64,
    )
    phase = torch.rand(num_clients, num_carriers, generator=generator, dtype=F64) * 2 * math.pi
    gains = torch.polar(magnitude, phase)
    out = FadingChannel(policy=TruncatedInversion(0.25), noise_var=0.0)(
        signals, 3.0, state=_state(gains), weights=WEIGHTS
    )
    carrier = (torch.arange(dim) // 2) % num_carriers
    heard = (magnitude.square() >= 0.25)[:, carrier]  # [K, d]
    total = (heard * WEIGHTS[:, None]).sum(0)
    expected = torch.where(
        total > 0, (heard * WEIGHTS[:, None] * signals).sum(0) / total.clamp(min=1e-300), 0.0
    )
    assert bool((total == 0).any()) and len(set(total.tolist())) > 2  # heard sets differ, one is empty
    assert_close(out.estimate, expected, **EXACT)


def test_every_block_of_a_round_gets_the_weighted_mean(generator):
    client_blocks = _round(generator)
    energy = torch.rand(5, 4, generator=generator, dtype=F64) * 10
    energy[2, 1] = 0.0
    channel = _channel("rayleigh_truncated", noise_var=0.0)
    state = channel.realize(5, 50, torch.Generator().manual_seed(3), C128)
    out = channel.transmit(SignalBlocks(client_blocks), energy, state=state, weights=WEIGHTS)
    for b, estimate in enumerate(out.estimates):
        heard = out.active[:, b]
        signals = torch.stack([c[b] for c in client_blocks])
        # one gain per client for the whole round (flat fading, one coherence block): A_j = A_b
        expected = (
            _weighted_mean(signals[heard], WEIGHTS[heard]) if heard.any() else torch.zeros_like(estimate)
        )
        assert_close(estimate, expected, **EXACT)


# ---------------------------------------------------------------------------------------------------------
# (c) statistical: the estimate's mean is the weighted mean, its variance the reported noise_var


@pytest.mark.parametrize("name", ["awgn", "rayleigh_inversion"])
def test_estimate_mean_and_variance_over_2000_noise_draws(name):
    """Fixed signals and channel, n = 2000 draws of the noise. Per entry i: the sample mean is within
    5 standard errors sqrt(noise_var / n) of the weighted mean; the sample variance is within 5
    standard errors noise_var * sqrt(2 / (n - 1)) (Gaussian) of the reported noise_var, which is
    noise_var / (eta W)^2, eta = min_k sqrt(E_k) |h_k| / (w_k ||s_k||) and W = sum_k w_k."""
    n, sigma2 = 2000, 0.5
    g = torch.Generator().manual_seed(11)
    signals = (
        torch.randn(5, 13, generator=g, dtype=F64)
        * torch.tensor([0.5, 1.0, 2.0, 0.3, 1.2], dtype=F64)[:, None]
    )
    energy = torch.tensor([4.0, 1.0, 2.0, 8.0, 3.0], dtype=F64)
    channel = _channel(name, noise_var=sigma2)
    channel.generator = torch.Generator().manual_seed(12 if name == "awgn" else 14)
    state = channel.realize(5, 13, torch.Generator().manual_seed(13), C128)
    outs = [channel(signals, energy, state=state, weights=WEIGHTS) for _ in range(n)]
    estimates = torch.stack([o.estimate for o in outs])  # [n, d]
    reported = torch.stack([o.noise_var for o in outs])
    assert bool((reported == reported[0]).all())  # the same channel every draw: the same variance
    h = state.gains[:, 0, 0].abs()
    eta = float((energy.sqrt() * h / (WEIGHTS * torch.linalg.vector_norm(signals, dim=1))).min())
    expected = sigma2 / (eta * float(WEIGHTS.sum())) ** 2
    assert float(reported[0]) == pytest.approx(expected, rel=1e-12)
    assert float(outs[0].scale) == pytest.approx(eta, rel=1e-12)

    mean_error = estimates.mean(0) - _weighted_mean(signals, WEIGHTS)
    assert bool((mean_error.abs() < 5 * math.sqrt(expected / n)).all()), mean_error / math.sqrt(expected / n)
    variance = estimates.var(0)  # unbiased, per entry
    standard_error = expected * math.sqrt(2 / (n - 1))
    assert bool(((variance - expected).abs() < 5 * standard_error).all()), (
        variance - expected
    ) / standard_error


def test_weights_change_the_noise_as_derived(generator):
    """noise_var / (eta W)^2 with eta W invariant to a common factor on the weights."""
    signals = torch.randn(5, 10, generator=generator, dtype=F64)
    channel = AWGNChannel(noise_var=2.0, generator=generator)
    one = channel(signals, 5.0, weights=WEIGHTS)
    scaled = channel(signals, 5.0, weights=1000 * WEIGHTS)
    assert_close(one.noise_var, scaled.noise_var, rtol=1e-12, atol=0)
    assert_close(one.energy_used, scaled.energy_used, rtol=1e-12, atol=0)  # no transmitted signal changes
    assert_close(scaled.scale * 1000, one.scale, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------------------
# (d) energy: every client within its budget, the tightest weighted one exactly at it


def test_the_tightest_weighted_client_spends_exactly_its_budget(generator):
    signals = torch.randn(5, 30, generator=generator, dtype=F64)
    signals[0] *= 0.01  # the smallest signal ...
    weights = torch.tensor([500.0, 1.0, 1.0, 1.0, 1.0], dtype=F64)  # ... made the largest need by its weight
    gains = torch.tensor([1.0, 0.8j, -1.3, 0.5 + 0.5j, 2.0], dtype=C128)
    budgets = torch.tensor([3.0, 1.0, 2.0, 4.0, 0.5], dtype=F64)
    out = FadingChannel(noise_var=1.0, generator=generator)(
        signals, budgets, state=_state(gains), weights=weights
    )
    norms = torch.linalg.vector_norm(signals, dim=1)
    ratio = budgets.sqrt() * gains.abs() / (weights * norms)
    tightest, eta = int(ratio.argmin()), float(ratio.min())
    unweighted_tightest = int((budgets.sqrt() * gains.abs() / norms).argmin())
    assert tightest == 0 != unweighted_tightest  # the weights moved the constraint
    assert bool((out.energy_used <= budgets * (1 + 1e-9)).all())
    assert_close(out.energy_used[tightest], budgets[tightest], rtol=1e-12, atol=0)
    assert_close(out.energy_used, eta**2 * weights**2 * norms**2 / gains.abs() ** 2, rtol=1e-12, atol=0)
    assert_close(out.scale, torch.tensor(eta, dtype=F64), rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(
    num_clients=st.integers(1, 6),
    dim=st.integers(1, 9),
    seed=st.integers(0, 2**31),
    policy=st.sampled_from(
        [PerfectInversion(), TruncatedInversion(0.5), ImperfectCSI(0.2), ImperfectCSI(0.5, 0.3)]
    ),
    log_weight_spread=st.floats(0.0, 12.0),
)
def test_no_client_ever_exceeds_its_budget_whatever_the_weights(
    num_clients, dim, seed, policy, log_weight_spread
):
    g = torch.Generator().manual_seed(seed)
    signals = torch.randn(num_clients, dim, generator=g, dtype=F64)
    budgets = 10 * torch.rand(num_clients, generator=g, dtype=F64)
    weights = torch.exp(log_weight_spread * (torch.rand(num_clients, generator=g, dtype=F64) - 0.5))
    channel = FadingChannel(RayleighFading(), policy, noise_var=1.0, generator=g)
    out = channel(signals, budgets, state=channel.realize(num_clients, dim, dtype=C128), weights=weights)
    assert bool((out.energy_used <= budgets * (1 + 1e-9)).all())
    heard = out.energy_used > 0
    if heard.any() and torch.isfinite(out.scale):  # the tightest client heard meets its budget
        assert bool(((out.energy_used - budgets).abs() <= 1e-9 * budgets)[heard].any())
    assert bool(torch.isfinite(out.estimate).all())


# ---------------------------------------------------------------------------------------------------------
# clients split over processes: the weight sums are all-reduced like the counts


def test_weights_split_over_processes_give_the_one_process_result(generator):
    client_blocks = _round(generator, num_clients=5)
    energy = torch.rand(5, 4, generator=generator, dtype=F64) * 10
    channel = _channel("rayleigh_truncated")
    state = channel.realize(5, 50, torch.Generator().manual_seed(3), C128)
    whole = channel.transmit(
        SignalBlocks(client_blocks),
        energy,
        state=state,
        generator=torch.Generator().manual_seed(7),
        weights=WEIGHTS,
    )
    shares = [slice(0, 2), slice(2, 5)]
    results = transmit_split(channel, client_blocks, energy, state, shares, 7, {"weights": WEIGHTS})
    for out in results:
        for x, y in zip(out.estimates, whole.estimates, strict=True):
            assert_close(x, y, rtol=1e-12, atol=1e-12)
        assert_close(out.noise_var, whole.noise_var, rtol=1e-12, atol=0)
        assert_close(out.scale, whole.scale, rtol=0, atol=0)
    assert_close(torch.cat([r.energy_used for r in results]), whole.energy_used, rtol=0, atol=0)
    assert torch.equal(torch.cat([r.active for r in results]), whole.active)


# ---------------------------------------------------------------------------------------------------------
# bad weights


@pytest.mark.parametrize(
    "weights, error",
    [
        (torch.ones(4), ValueError),
        (torch.ones(5, 1), ValueError),
        (torch.tensor(1.0), ValueError),
        ([1.0, 1.0, 0.0, 1.0, 1.0], ValueError),
        ([1.0, -2.0, 1.0, 1.0, 1.0], ValueError),
        ([1.0, math.nan, 1.0, 1.0, 1.0], ValueError),
        ([1.0, math.inf, 1.0, 1.0, 1.0], ValueError),
        (torch.ones(5, dtype=torch.complex64), TypeError),
        (torch.ones(5, dtype=torch.bool), TypeError),
        (["a"] * 5, TypeError),
        ([None] * 5, TypeError),
    ],
)
def test_bad_weights_are_refused_naming_them(weights, error, generator):
    signals = torch.randn(5, 4, generator=generator)
    with pytest.raises(error, match="weights"):
        AWGNChannel(noise_var=1.0)(signals, 1.0, weights=weights)
    with pytest.raises(error, match="weights"):
        AWGNChannel(noise_var=1.0).transmit(SignalBlocks(signals), torch.ones(5, 1), weights=weights)


@pytest.mark.parametrize("scale", [2.0**-1070, 2.0**-40, 2.0**30, 2.0**1000])
def test_weights_scaled_by_a_power_of_two_give_the_same_bits(scale, generator):
    """Only the weights' ratios matter (the mean is self-normalised); the channel brings the largest
    weight into [1, 2) by a power of two, which is exact: weights of any finite scale, 1e-320 as
    1e308, give the very bits of the same weights near 1 (they gave a NaN estimate before), with the
    common scale reported in the units of the weights given."""
    signals = torch.randn(5, 30, generator=generator)  # float32: the work dtype whose range matters
    noise = {"noise_var": 1.0}

    def send(weights):
        channel = AWGNChannel(**noise, generator=torch.Generator().manual_seed(4))
        return channel(signals, 10.0, weights=weights)

    plain, scaled = send(WEIGHTS), send(WEIGHTS * scale)
    assert torch.equal(plain.estimate, scaled.estimate) and bool(torch.isfinite(scaled.estimate).all())
    assert torch.equal(plain.energy_used, scaled.energy_used)
    assert torch.equal(plain.noise_var, scaled.noise_var) and torch.equal(plain.active, scaled.active)
    if 2.0**-100 < scale < 2.0**100:  # the scale of w_k u_k, float32: representable here
        assert_close(scaled.scale.double() * scale, plain.scale.double(), rtol=1e-6, atol=0)


def test_weights_whose_sum_overflows_float64_still_give_the_weighted_mean():
    signals = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=F64)
    out = AWGNChannel(0.0)(signals, 100.0, weights=[1e308, 1e308])  # sum 2e308: inf in float64
    assert_close(out.estimate, torch.tensor([2.0, 3.5], dtype=F64), **EXACT)
