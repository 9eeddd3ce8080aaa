"""Many receive antennas: the time of one round's uplink (``FadingChannel.realize`` + ``transmit``)
with N = 64 antennas and a receive beamformer against the single-antenna channel (N = 1).

The round is the MNIST-1D CNN's uncompressed one (28,298 real values per client, 16 clients, float32
signals, energy 100, noise_var 1, Rayleigh block fading, perfect channel inversion): every case
realizes a fresh channel (so the beamformer is designed every round) and sends the round's block
through it. Cases: N = 1; N = 64 over i.i.d. and exponentially correlated (rho = 0.9) Rayleigh, each
with the matched and the eigen beamformer (the goal: at most 1.2 times N = 1); and, outside the goal,
the max-min beamformer (an iterative method, reported for its cost). The cases take turns in one
process (``common.time_interleaved``).

    python benchmarks/antennas.py [--quick] [--json PATH] [--threads N] [--device cuda]
"""

from __future__ import annotations

from common import emit, machine_info, parse_args, print_table, summarize, time_interleaved

NUM_CLIENTS, NUM_VALUES, ENERGY, ANTENNAS = 16, 28_298, 100.0, 64
GOAL = 1.2
CASES = {  # name -> (antennas, beamformer, correlation); None: one antenna
    "N=1": None,
    "N=64 iid matched": (ANTENNAS, "matched", 0.0),
    "N=64 iid eigen": (ANTENNAS, "eigen", 0.0),
    "N=64 corr0.9 matched": (ANTENNAS, "matched", 0.9),
    "N=64 corr0.9 eigen": (ANTENNAS, "eigen", 0.9),
    "N=64 iid maxmin": (ANTENNAS, "maxmin", 0.0),  # not part of the goal
}


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        extra=lambda p: (p.add_argument("--device", default="cpu"), p.add_argument("--repeats", type=int)),
    )
    import torch

    from channels import FadingChannel, RayleighFading, ReceiveArray, SignalBlocks

    device = torch.device(args.device)
    repeats = args.repeats or (5 if args.quick else 30)
    signals = torch.randn(
        NUM_CLIENTS, NUM_VALUES, generator=torch.Generator().manual_seed(0), dtype=torch.float32
    ).to(device)
    blocks = SignalBlocks(signals)
    energy = torch.full((NUM_CLIENTS, 1), ENERGY, dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    cases = {}
    names = [n for n in CASES if not (args.quick and "maxmin" in n)]
    for name in names:
        spec = CASES[name]
        channel = FadingChannel(
            RayleighFading(),
            noise_var=1.0,
            generator=torch.Generator(device=device).manual_seed(1),
            antennas=None if spec is None else ReceiveArray(*spec),
        )

        def one_round(channel: FadingChannel = channel) -> None:
            state = channel.realize(NUM_CLIENTS, NUM_VALUES)
            channel.transmit(blocks, energy, state=state)

        cases[name] = one_round
    times = time_interleaved(cases, repeats=repeats, warmup=3, sync=sync)
    stats = {name: summarize(samples) for name, samples in times.items()}
    base = stats["N=1"]["median"]
    results = [
        {
            "case": name,
            "ms": stats[name],
            "ratio_to_n1": stats[name]["median"] / base,
            "in_goal": name != "N=1" and "maxmin" not in name,
        }
        for name in names
    ]
    print_table(
        ["case", "median ms", "q1 ms", "q3 ms", "ratio to N=1"],
        [
            [r["case"], r["ms"]["median"], r["ms"]["q1"], r["ms"]["q3"], r["ratio_to_n1"]]  # type: ignore[index]
            for r in results
        ],
        title=f"One round's uplink, K = {NUM_CLIENTS}, {NUM_VALUES} real uses (realize + transmit)",
    )
    worst = max(float(r["ratio_to_n1"]) for r in results if r["in_goal"])  # type: ignore[arg-type]
    print(f"\nworst ratio in the goal (matched, eigen): {worst:.3f} (goal <= {GOAL})")
    emit(
        {
            "benchmark": "antennas",
            "machine": machine_info(args.device),
            "repeats": repeats,
            "clients": NUM_CLIENTS,
            "real_uses": NUM_VALUES,
            "goal_ratio": GOAL,
            "worst_ratio": worst,
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
