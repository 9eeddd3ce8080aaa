"""Peak memory of a round against the number of clients K, for LASER and Z-SGD, the loop and vmap.

Each (method, mode, K) runs in a fresh process: it builds the simulation, notes its memory, runs
three rounds and reports the peak above that baseline (CPU: the peak resident set, ``VmHWM`` against
``VmRSS``; GPU: ``torch.cuda.max_memory_allocated`` against the allocated memory). The model is a
GPT on the offline pydoc text, 4 layers of width 256 (3.2 M parameters, 12.7 MB of float32
gradient), so that one gradient copy per client is visible.

The loop encodes each client's gradient as soon as it is computed, so LASER holds K small factors
(and the K error-feedback memories, one gradient's size each, which the method needs), while Z-SGD's
uncompressed analog signals are K gradient copies; vmap computes all K gradients at once.

    python benchmarks/memory.py [--quick] [--json PATH] [--device cuda] [--clients 1,4,16,64]
"""

from __future__ import annotations

import json

from common import REPO, emit, machine_info, parse_args, print_table, run_child

CHILD = r"""
import json, sys, torch
from federated.config import load_config
from federated.simulation import Simulation

from common import process_memory as rss
overrides, device = json.loads(sys.argv[1]), sys.argv[2]
sim = Simulation(load_config(None, overrides))
cuda = device.startswith("cuda")
if cuda:
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
else:
    base = rss("VmRSS:")
for t in range(3):
    sim.round(t)
peak = torch.cuda.max_memory_allocated() if cuda else rss("VmHWM:")
print(json.dumps({"baseline_bytes": base, "peak_bytes": peak,
                  "parameters": sum(p.numel() for p in sim.params)}))
"""

MODEL = [
    "data.name=pydoc",
    "model.name=gpt",
    "model.layers=4",
    "model.width=256",
    "model.heads=4",
    "model.context=64",
    "model.dropout=0",
    "clients.batch_size=4",
    "optimizer.name=adamw",
    "optimizer.lr=1e-3",
    "eval_every=1000000",
    "rounds=1000000",
]


def measure(method: str, mode: str, clients: int, device: str, data_root: str) -> dict:
    overrides = [
        *MODEL,
        f"compressor.name={method}",
        f"clients.vectorize={mode}",
        f"clients.num_clients={clients}",
        f"device={device}",
        f"data.root={data_root}",
    ]
    result = run_child(CHILD, json.dumps(overrides), device, what=f"{method} {mode} K={clients}")
    extra = result["peak_bytes"] - result["baseline_bytes"]
    gradient = 4 * result["parameters"]
    return {
        "method": method,
        "mode": mode,
        "clients": clients,
        **result,
        "round_peak_bytes": extra,
        "gradient_copies": extra / gradient,
    }


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        extra=lambda p: (
            p.add_argument("--device", default="cpu"),
            p.add_argument("--clients", default="1,4,16,64"),
            p.add_argument("--data-root", default=str(REPO / "data")),
        ),
    )
    counts = [1, 4] if args.quick else [int(k) for k in args.clients.split(",")]
    results = []
    for method, mode in [("laser", "loop"), ("zsgd", "loop"), ("laser", "vmap")]:
        for clients in counts:
            results.append(measure(method, mode, clients, args.device, args.data_root))
            r = results[-1]
            print(
                f"{method} {mode} K={clients}: peak {r['round_peak_bytes'] / 2**20:.1f} MiB above the set-up "
                f"({r['gradient_copies']:.1f} gradient copies)",
                flush=True,
            )
    print_table(
        ["method", "mode", "K", "round peak (MiB)", "in gradient copies"],
        [
            [r["method"], r["mode"], r["clients"], r["round_peak_bytes"] / 2**20, r["gradient_copies"]]
            for r in results
        ],
        title="Peak memory of three rounds above the simulation's set-up (GPT 4 x 256, 3.2 M parameters)",
    )
    emit({"benchmark": "memory", "machine": machine_info(args.device), "results": results}, args.json)


if __name__ == "__main__":
    main()
