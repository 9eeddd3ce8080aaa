"""An empirical audit of privacy mode: a canary distinguishing test against the accountant's epsilon.

One clipped pass (``FadingChannel.transmit(clips=)``, the real transmission code: the clip check,
the public scale, the superposition, the noise, the decoding) of K = 4 clients over flat gains
(1, 0.7, 1.3, 0.9, with phases), blocks of 3 and 5 entries clipped at C = 1, noise_var 1, the energy
set so that the pass's noise multiplier is nu. Client 0 either sends a canary or zero (the
neighbouring runs: its data in or out, the participants public); the others send fixed clipped
signals. The auditor sees what the server sees (the decoded blocks, their scales and noise
variances, every other client's signal) and runs the likelihood-ratio test on the canary's
coordinates. Canaries: ``coordinate`` (C_b on one coordinate of block 0 only) and ``worst`` (C_b on
one coordinate of every block: the largest sensitivity the fixed scale allows, sqrt(sum_b eta_b^2
C_b^2), the accountant's). Trials are batched as copies of the pass's blocks in one call (each copy
the same mechanism: its clips, energies and scale), with independent noise.

The threshold is chosen on the first 20% of the trials; on the other 80%, one-sided 97.5%
Clopper-Pearson upper bounds on the false-positive and false-negative rates give a 95% lower bound
on epsilon at delta, max over the two directions of log((1 - delta - FNR) / FPR). The accountant's
epsilon is one round at the pass's reported noise multiplier (``pld``: the analytic Gaussian).

    python benchmarks/privacy_audit.py [--quick] [--trials N] [--json PATH]
"""

from __future__ import annotations

import math

from common import emit, machine_info, parse_args, print_table

GAINS = ((1.0, 0.3), (0.7, -1.1), (1.3, 2.0), (0.9, 0.5))  # |h_k| and phase
DIMS = (3, 5)
CLIP = 1.0
DELTA = 1e-5
NUS = (1.5, 2.0, 3.0)
CANARIES = ("coordinate", "worst")


def audit(nu: float, canary: str, trials: int, seed: int = 0) -> dict[str, float | str | int]:
    """The audit of one pass at noise multiplier ``nu`` with ``canary``, ``trials`` per world."""
    import torch
    from scipy.stats import beta

    from channels import (
        ChannelState,
        FadingChannel,
        PrivacyAccountant,
        SignalBlocks,
        block_clips,
        clip_blocks,
    )

    gains = torch.tensor([m * complex(math.cos(p), math.sin(p)) for m, p in GAINS], dtype=torch.complex128)
    state = ChannelState(gains.reshape(-1, 1, 1), gains.reshape(-1, 1, 1), 1)
    clips = block_clips(DIMS, CLIP)
    share = clips.square() / clips.square().sum()
    energy = 1 / (nu**2 * float(gains.abs().min()) ** 2)  # nu = sqrt(noise_var / E) / min |h|
    g = torch.Generator().manual_seed(seed)
    others = clip_blocks(
        [[torch.randn(d, generator=g, dtype=torch.float64) for d in DIMS] for _ in GAINS[1:]], clips
    )
    canary_blocks = [torch.zeros(d, dtype=torch.float64) for d in DIMS]
    for b in range(len(DIMS)) if canary == "worst" else (0,):
        canary_blocks[b][0] = float(clips[b])
    statistics = {}
    reported_nu = None
    for world, first in (("in", canary_blocks), ("out", [torch.zeros(d, dtype=torch.float64) for d in DIMS])):
        channel = FadingChannel(
            noise_var=1.0, generator=torch.Generator().manual_seed(seed + (world == "in"))
        )
        signals = [first, *others]
        one = channel.transmit(SignalBlocks(signals), energy * share.expand(4, -1), state=state, clips=clips)
        reported_nu = one.noise_multiplier
        rows = [[u for _ in range(trials) for u in blocks] for blocks in signals]  # trials copies of the pass
        out = channel.transmit(
            SignalBlocks(rows),
            (energy * share).repeat(trials).expand(4, -1),
            state=state,
            clips=clips.repeat(trials),
        )
        # the likelihood ratio of "in" against "out": sum_b (C_b / K) x_b / var_b on the canary's entries,
        # x_b the decoded entry minus the others' known mean
        s = torch.zeros(trials, dtype=torch.float64)
        for b in range(len(DIMS)):
            if float(canary_blocks[b].abs().sum()) == 0:
                continue
            known = sum(float(o[b][0]) for o in others) / len(GAINS)
            entries = torch.stack([out.estimates[2 * i + b][0] for i in range(trials)]).double()
            variance = out.noise_var[b::2].double()
            s += (float(clips[b]) / len(GAINS)) * (entries - known) / variance
        statistics[world] = s
    pick = int(0.2 * trials)

    def lower_bound(t: float, inside: torch.Tensor, outside: torch.Tensor) -> float:
        n_in, n_out = len(inside), len(outside)
        misses = int((inside <= t).sum())  # "in" called "out": false negatives
        alarms = int((outside > t).sum())  # "out" called "in": false positives
        fnr = beta.ppf(0.975, misses + 1, n_in - misses) if misses < n_in else 1.0
        fpr = beta.ppf(0.975, alarms + 1, n_out - alarms) if alarms < n_out else 1.0
        best = -math.inf
        for a, b in ((fnr, fpr), (fpr, fnr)):
            if 1 - DELTA - a > 0 and b > 0:
                best = max(best, math.log((1 - DELTA - a) / b))
        return max(best, 0.0)

    inside, outside = statistics["in"], statistics["out"]
    candidates = torch.quantile(outside[:pick], torch.linspace(0.5, 0.9995, 200, dtype=torch.float64))
    threshold = max(candidates.tolist(), key=lambda t: lower_bound(t, inside[:pick], outside[:pick]))
    bound = lower_bound(threshold, inside[pick:], outside[pick:])
    assert reported_nu is not None
    accountant = PrivacyAccountant(DELTA, "pld").round_epsilon(reported_nu)
    return {
        "nu": nu,
        "canary": canary,
        "reported_nu": reported_nu,
        "trials": trials,
        "epsilon_accountant": accountant,
        "epsilon_lower_bound": bound,
        "ratio": bound / accountant,
    }


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        extra=lambda p: p.add_argument(
            "--trials", type=int, help="trials per world and case (default 100,000)"
        ),
    )
    trials = args.trials or (2_000 if args.quick else 100_000)
    results = [audit(nu, canary, trials) for nu in NUS for canary in CANARIES]
    print_table(
        ["nu", "canary", "accountant epsilon", "audit's 95% lower bound", "ratio"],
        [
            [r["nu"], r["canary"], r["epsilon_accountant"], r["epsilon_lower_bound"], r["ratio"]]
            for r in results
        ],
        title=f"One clipped pass, {trials:,} trials per world and case, delta {DELTA:g}",
    )
    emit(
        {
            "benchmark": "privacy_audit",
            "machine": machine_info("cpu"),
            "quick": bool(args.quick),
            "trials": trials,
            "delta": DELTA,
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
