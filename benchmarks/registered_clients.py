"""Rounds per second and memory against the number of registered clients K, with m = 10 taking part.

The cross-device workload: K registered clients, 10 sampled a round, each training H = 5 local SGD
steps (FedAvg's client, lr 0.1) and sending its model change with LASER (rank 4) over AWGN; the
server steps with lr 1. The model is the tiny GPT (2 layers of width 64, 119 k parameters) on the
offline pydoc text with IID windows (``data.partition=iid`` draws each client's windows anywhere in
the training stream, so every one of 10^5 clients has data behind it; an MNIST-1D shard of 20
samples per client would need 2 x 10^6 generated samples at K = 10^5).

Each K runs in a fresh process: the set-up (task, model, compressor, channel), then ``--rounds``
rounds timed one by one (the first apart: it warms the kernels up). Reported: set-up seconds, the
median round, rounds per second, the peak resident set (``VmHWM``) and the memory the rounds added
above the set-up, and how many clients' compressor sides exist at the end (made on first
participation: at most m x rounds, whatever K).

    python benchmarks/registered_clients.py [--quick] [--json PATH] [--clients 100,1000,10000,100000]
"""

from __future__ import annotations

import json

from common import REPO, emit, machine_info, parse_args, print_table, run_child

CHILD = r"""
import json, statistics, sys, time, torch
from federated.config import load_config
from federated.simulation import Simulation

from common import process_memory as rss
overrides, rounds, threads = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if threads:
    torch.set_num_threads(threads)
start = time.perf_counter()
sim = Simulation(load_config(None, overrides))
setup = time.perf_counter() - start
base = rss("VmRSS:")
times = []
for t in range(rounds + 1):
    start = time.perf_counter()
    sim.round(t)
    times.append(time.perf_counter() - start)
print(json.dumps({"setup_s": setup, "first_round_s": times[0], "round_s": statistics.median(times[1:]),
                  "round_s_quartiles": statistics.quantiles(times[1:], n=4) if len(times) > 2 else [],
                  "baseline_bytes": base, "peak_bytes": rss("VmHWM:"),
                  "sides_made": len(sim.compressor.clients.made),
                  "parameters": sum(p.numel() for p in sim.params)}))
"""

WORKLOAD = [
    "data.name=pydoc",
    "data.tokenizer=byte",
    "data.partition=iid",
    "model.name=gpt",
    "model.layers=2",
    "model.heads=4",
    "model.width=64",
    "model.context=64",
    "model.dropout=0",
    "clients.batch_size=4",
    "clients.per_round=10",
    "clients.local_steps=5",
    "clients.lr=0.1",
    "clients.optimizer=sgd",
    "compressor.name=laser",
    "compressor.rank=4",
    "channel.name=awgn",
    "power.energy=1000",
    "optimizer.name=sgd",
    "optimizer.lr=1.0",
    "optimizer.momentum=0",
    "optimizer.weight_decay=0",
    "optimizer.schedule=constant",
    "eval_every=1000000",
]


def measure(clients: int, rounds: int, threads: int, data_root: str) -> dict:
    # rounds: one more than those timed, whose last would evaluate (and the memory check counts the
    # clients that can take part: m x rounds)
    overrides = [
        *WORKLOAD,
        f"clients.num_clients={clients}",
        f"rounds={rounds + 2}",
        f"data.root={data_root}",
    ]
    result = run_child(CHILD, json.dumps(overrides), str(rounds), str(threads), what=f"K={clients}")
    return {
        "clients": clients,
        "per_round": 10,
        "local_steps": 5,
        **result,
        "rounds_per_s": 1.0 / result["round_s"],
        "round_added_bytes": result["peak_bytes"] - result["baseline_bytes"],
    }


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        extra=lambda p: (
            p.add_argument("--clients", default="100,1000,10000,100000"),
            p.add_argument("--rounds", type=int, default=None, help="timed rounds per K (default 20)"),
            p.add_argument("--data-root", default=str(REPO / "data")),
        ),
    )
    counts = [100, 10000] if args.quick else [int(k) for k in args.clients.split(",")]
    rounds = args.rounds or (2 if args.quick else 20)
    results = []
    for clients in counts:
        results.append(measure(clients, rounds, args.threads or 0, args.data_root))
        r = results[-1]
        print(
            f"K={clients}: set-up {r['setup_s']:.2f} s, {r['rounds_per_s']:.2f} rounds/s, peak "
            f"{r['peak_bytes'] / 2**20:.0f} MiB, {r['sides_made']} client sides made",
            flush=True,
        )
    smallest = results[0]
    for r in results:
        r["round_time_vs_smallest"] = r["round_s"] / smallest["round_s"]
        r["peak_vs_smallest"] = r["peak_bytes"] / smallest["peak_bytes"]
    print_table(
        ["K", "set-up (s)", "rounds/s", "round vs first K", "peak (MiB)", "peak vs first K", "sides made"],
        [
            [
                r["clients"],
                r["setup_s"],
                r["rounds_per_s"],
                r["round_time_vs_smallest"],
                r["peak_bytes"] / 2**20,
                r["peak_vs_smallest"],
                r["sides_made"],
            ]
            for r in results
        ],
        title=f"FedAvg-LASER, 10 of K a round, H = 5, tiny GPT ({smallest['parameters']:,} parameters)",
    )
    emit(
        {
            "benchmark": "registered_clients",
            "machine": machine_info("cpu"),
            "rounds": rounds,
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
