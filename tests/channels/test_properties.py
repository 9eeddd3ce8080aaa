"""Property: a channel call either refuses its arguments (an error naming one of them) or returns a
finite estimate and noise variance, with every client's energy within its budget for every block.

The channels are driven with random shapes (K and d from 0), dtypes (real floating point, integer,
bool, complex, meta tensors), budgets (per call, per client, per client and block; 0, inf, NaN,
negative, a string), SNRs, client weights and special entries (0, NaN, +-inf). Finite entries are
m 10^e with |m| <= 1000 and -3 <= e <= 3, and finite budgets lie in [1e-3, 1e6]: far outside these
ranges a float32 channel's alignment scale (sqrt(E) / ||s||) itself over- or underflows, which
this test does not cover. The examples are derandomised (the "ci" profile: the same 200 every run).
"""

import math
import re

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from channels import (
    AWGNChannel,
    FadingChannel,
    ImperfectCSI,
    PerfectInversion,
    RayleighFading,
    SignalBlocks,
    TruncatedInversion,
    energy_for_snr_db,
)

settings.register_profile(
    "ci", derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
CI = settings.get_profile("ci")

ARGUMENTS = (
    "signals|client_blocks|energy|snr_db|weights|noise_var|generator|state|num_clients|channel_uses"
    "|symbol_offset|blocks|check_finite|coherence_blocks"
)
NAMED = re.compile(rf"^({ARGUMENTS})(\[\d+\])* ")
SPECIAL = [0.0, math.nan, math.inf, -math.inf]
FLOATS = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
DTYPES = [*FLOATS, torch.int64, torch.bool, torch.complex64]


def _mostly(common, rare, one_in):
    """``rare`` once in ``one_in`` draws, else ``common``."""
    return st.integers(0, one_in - 1).flatmap(lambda i: rare if i == one_in // 2 else common)


finite_entries = st.builds(lambda m, e: m * 10.0**e, st.integers(-1000, 1000), st.integers(-3, 3))
entries = _mostly(finite_entries, st.sampled_from(SPECIAL), one_in=4)
budgets = _mostly(st.floats(1e-3, 1e6), st.sampled_from([0.0, math.inf, math.nan, -1.0]), one_in=8)


def _tensor(values, shape, dtype, meta):
    tensor = torch.tensor(values, dtype=torch.float64).reshape(shape)
    tensor = tensor.round() if dtype in (torch.int64, torch.bool) else tensor
    tensor = (
        tensor.nan_to_num(0.0, 1.0, -1.0).to(dtype)
        if dtype in (torch.int64, torch.bool)
        else tensor.to(dtype)
    )
    return tensor.to("meta") if meta else tensor


def _channel(draw, dtype):
    noise_var = 0.0 if dtype == torch.float16 else draw(st.sampled_from([0.0, 1e-3, 1.0, 10.0]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    if draw(st.booleans()):
        return AWGNChannel(noise_var=noise_var, generator=generator), noise_var
    policy = draw(st.sampled_from([PerfectInversion(), TruncatedInversion(0.1), ImperfectCSI(0.05)]))
    coherence = draw(st.sampled_from([1, 2]))
    channel = FadingChannel(
        RayleighFading(), policy, noise_var, coherence_blocks=coherence, generator=generator
    )
    return channel, noise_var


def _check(out_estimates, noise_var, energy_used, budget):
    """Finite results, and energy_used [K, B] within budget [K, B] x (1 + 1e-6)."""
    for estimate in out_estimates:
        assert bool(torch.isfinite(estimate.double()).all()), estimate
    assert bool(torch.isfinite(noise_var).all()) and bool((noise_var >= 0).all()), noise_var
    used = energy_used.double()
    assert bool((used >= 0).all()), used
    assert bool((used <= budget * (1 + 1e-6)).all()), (used, budget)


@CI
@given(data=st.data())
def test_channels_refuse_or_return_finite_results_within_budget(data):
    draw = data.draw
    dtype = draw(_mostly(st.sampled_from(FLOATS), st.sampled_from(DTYPES), one_in=4))
    meta = draw(st.integers(0, 29)) == 15
    channel, noise_var = _channel(draw, dtype)
    num_clients = draw(_mostly(st.integers(1, 4), st.just(0), one_in=10))
    values = draw(_mostly(st.just(finite_entries), st.just(entries), one_in=4))  # specials in 1 call of 4
    weight = _mostly(st.sampled_from([0.5, 1.0, 3.0]), st.sampled_from([0.0, math.nan, -1.0]), one_in=10)
    weights = draw(st.one_of(st.none(), st.lists(weight, min_size=1)))
    if weights is not None and len(weights) != num_clients:
        weights = (weights * (num_clients + 1))[:num_clients]
    try:
        if draw(st.booleans()):  # one block: channel(signals, energy=... or snr_db=...)
            dim = draw(_mostly(st.integers(1, 9), st.just(0), one_in=10))
            signals = _tensor(
                draw(st.lists(values, min_size=num_clients * dim, max_size=num_clients * dim)),
                (num_clients, dim),
                dtype,
                meta,
            )
            kind = draw(
                _mostly(st.sampled_from(["scalar", "per client", "snr"]), st.just("string"), one_in=10)
            )
            if kind == "snr":
                snr_db = draw(st.one_of(st.floats(-30, 60), st.sampled_from([math.inf, -math.inf, math.nan])))
                out = channel(signals, snr_db=snr_db, weights=weights)
                budget = torch.full(
                    (num_clients, 1), energy_for_snr_db(snr_db, dim, noise_var), dtype=torch.float64
                )
            else:
                if kind == "scalar":
                    energy = draw(budgets)
                    budget = torch.full((num_clients, 1), energy, dtype=torch.float64)
                elif kind == "per client":
                    energy = draw(st.lists(budgets, min_size=num_clients, max_size=num_clients))
                    budget = torch.tensor(energy, dtype=torch.float64).reshape(num_clients, 1)
                else:
                    energy = "25"
                out = channel(signals, energy=energy, weights=weights)
            _check([out.estimate], out.noise_var, out.energy_used[:, None], budget)
            event("computed")
        else:  # several blocks: channel.transmit(SignalBlocks(...), energy [K, B])
            dims = draw(st.lists(_mostly(st.integers(1, 6), st.just(0), one_in=10), min_size=1, max_size=3))
            client_blocks = [
                [_tensor(draw(st.lists(values, min_size=d, max_size=d)), (d,), dtype, meta) for d in dims]
                for _ in range(num_clients)
            ]
            energy = draw(
                st.lists(budgets, min_size=num_clients * len(dims), max_size=num_clients * len(dims))
            )
            budget = torch.tensor(energy, dtype=torch.float64).reshape(num_clients, len(dims))
            blocks = SignalBlocks(client_blocks, pack_limit=draw(st.sampled_from([0, 1 << 24])))
            out = channel.transmit(blocks, budget, weights=weights)
            _check(out.estimates, out.noise_var, out.energy_used, budget)
            event("computed")
    except (TypeError, ValueError) as error:
        assert NAMED.match(str(error)), f"an error that names no argument: {error!r}"
        event(f"refused: {str(error)[:50]}")
