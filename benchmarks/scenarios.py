"""Physical units: what a 3GPP scenario costs a round. One simulation per case of the MNIST-1D CNN
with LASER (16 clients, FedSGD), each timed with ``Simulation.round`` in turns in one process
(``common.time_interleaved``; no evaluation round among the timed ones), against the normalised
AWGN round.

Cases: AWGN (normalised, the baseline), Rayleigh (normalised, perfect inversion), and each scenario
(UMi, UMa, RMa: a drop of the 16 clients, open-loop power caps, Rayleigh block fading, truncated
inversion, as ``configs/mnist1d_laser_umi.yaml``) at N = 1 and N = 64 receive antennas (the matched
beamformer), with the normalised Rayleigh round at N = 64 for comparison, and UMi with the drop's own clusters
(``channel.name: scenario``, ``channels.ClusterFading``) at N = 1 and 64. The drop itself happens once
per run, when the simulation is made: its time (``drop_clients``, Sionna's topology, LOS, indoor and
shadowing draws, 3 repeats) is reported apart. The clusters' responses come in chunks of rounds (one
Sionna call each), which a round's median misses: their cost per round (a chunk's time over its
rounds, 5 chunks) is reported apart too, to be added to the round's.

    python benchmarks/scenarios.py [--quick] [--json PATH] [--threads N]
"""

from __future__ import annotations

import time
from pathlib import Path

from common import emit, machine_info, parse_args, print_table, summarize, time_interleaved

REPO = Path(__file__).resolve().parent.parent
BASE = [
    "data.name=mnist1d",
    "data.num_samples=10000",
    "model.name=cnn",
    "model.width=64",
    "clients.num_clients=16",
    "clients.batch_size=32",
    "compressor.name=laser",
    "rounds=1000000",
    "eval_every=1000000",
    "device=cpu",
]
PHYSICAL = [
    "channel.name=rayleigh",
    "channel.power_control=truncated",
    "channel.threshold=0.1",
    "power.energy=null",
    "power.max_dbm=10",
    "power.control=open_loop",
]
CASES = {  # name -> (scenario, antennas, overrides)
    "AWGN": ("none", 1, []),
    "Rayleigh": ("none", 1, ["channel.name=rayleigh"]),
    "UMi": ("umi", 1, ["channel.scenario=umi", *PHYSICAL]),
    "UMa": ("uma", 1, ["channel.scenario=uma", *PHYSICAL]),
    "RMa": ("rma", 1, ["channel.scenario=rma", *PHYSICAL]),
    "Rayleigh N=64": ("none", 64, ["channel.name=rayleigh", "channel.rx_antennas=64"]),
    "UMi N=64": ("umi", 64, ["channel.scenario=umi", *PHYSICAL, "channel.rx_antennas=64"]),
    "UMa N=64": ("uma", 64, ["channel.scenario=uma", *PHYSICAL, "channel.rx_antennas=64"]),
    "RMa N=64": ("rma", 64, ["channel.scenario=rma", *PHYSICAL, "channel.rx_antennas=64"]),
    "UMi clusters": ("umi", 1, ["channel.scenario=umi", *PHYSICAL, "channel.name=scenario"]),
    "UMi clusters N=64": (
        "umi",
        64,
        ["channel.scenario=umi", *PHYSICAL, "channel.name=scenario", "channel.rx_antennas=64"],
    ),
}


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        extra=lambda p: (
            p.add_argument("--repeats", type=int),
            p.add_argument("--data-root", default=str(REPO / "data"), help="where MNIST-1D is cached"),
        ),
    )
    import torch

    from channels import drop_clients
    from federated import load_config
    from federated.simulation import Simulation

    repeats = args.repeats or (3 if args.quick else 25)
    names = [n for n in CASES if not (args.quick and n.startswith(("UMa", "RMa")))]
    data = [f"data.root={args.data_root}"]
    sims = {name: Simulation(load_config(None, [*BASE, *data, *CASES[name][2]])) for name in names}
    cases = {name: sim.round for name, sim in sims.items()}
    times = time_interleaved(cases, repeats=repeats, warmup=2)
    stats = {name: summarize(samples) for name, samples in times.items()}
    base = stats["AWGN"]["median"]
    drops: dict[str, dict[str, float]] = {}
    for scenario in sorted({CASES[n][0] for n in names} - {"none"}):
        samples = []
        for seed in range(3):
            start = time.perf_counter()
            drop_clients(scenario, 16, torch.Generator().manual_seed(seed))
            samples.append(time.perf_counter() - start)
        drops[scenario] = summarize(samples)
    per_step: dict[str, dict[str, float]] = {}  # the clusters' chunk time over its rounds
    for name in names:
        fading = sims[name].units.small_scale if sims[name].units is not None else None
        if fading is None:
            continue
        samples = []
        for index in range(100, 105):  # chunks no round has asked for yet
            start = time.perf_counter()
            fading._chunk(index)
            samples.append((time.perf_counter() - start) / fading.chunk)
        per_step[name] = summarize(samples)
    results = [
        {
            "case": name,
            "scenario": CASES[name][0],
            "antennas": CASES[name][1],
            "round_ms": stats[name],
            "round_median_ms": stats[name]["median"],
            "ratio_to_awgn": stats[name]["median"] / base,
            "drop_median_ms": drops[CASES[name][0]]["median"] if CASES[name][0] in drops else None,
            "clusters_ms_per_round": per_step[name]["median"] if name in per_step else None,
        }
        for name in names
    ]
    print_table(
        ["case", "median ms", "q1 ms", "q3 ms", "ratio to AWGN", "drop ms (once)", "clusters ms a round"],
        [
            [
                r["case"],
                r["round_ms"]["median"],  # type: ignore[index]
                r["round_ms"]["q1"],  # type: ignore[index]
                r["round_ms"]["q3"],  # type: ignore[index]
                r["ratio_to_awgn"],
                "-" if r["drop_median_ms"] is None else r["drop_median_ms"],
                "-" if r["clusters_ms_per_round"] is None else r["clusters_ms_per_round"],
            ]
            for r in results
        ],
        title="A round of LASER on the MNIST-1D CNN, 16 clients (Simulation.round, no evaluation)",
    )
    emit(
        {
            "benchmark": "scenarios",
            "machine": machine_info("cpu"),
            "quick": bool(args.quick),
            "repeats": repeats,
            "clients": 16,
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
