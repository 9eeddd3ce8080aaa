"""Simulation overhead: the time of a whole round (clients, compression, channel, decoding, server
step, bookkeeping) divided by the time of the clients' forward and backward passes alone.

A round cannot cost less than its clients' gradients; everything above ratio 1 is what the
simulator adds. Both cases run on the same ``Simulation`` in turns (``common.time_interleaved``):
``round`` is ``Simulation.round(t)`` without evaluation; ``clients`` is the loop of
``Simulation.client_gradient(k)`` over the K clients (the same batches are drawn in both).

    python benchmarks/overhead.py [--quick] [--json PATH] [--device cuda]
"""

from __future__ import annotations

import itertools

from common import REPO, emit, machine_info, parse_args, print_table, summarize, time_interleaved

TASKS = {  # name -> config file and overrides (evaluation kept out of the timed rounds)
    "mnist1d_cnn": ("configs/mnist1d_laser.yaml", []),
    "tiny_gpt": ("configs/pydoc_gpt_laser.yaml", []),
    # on a GPU: the paper's models (synthetic-free: they need their data under data.root)
    "cifar_resnet18": ("configs/paper/cifar10_laser.yaml", ["ema=null"]),
    "gpt2_124m": ("configs/paper/gpt2_laser.yaml", ["compile=false"]),
}
CHANNELS = {
    "awgn": [],
    "rayleigh": ["channel.name=rayleigh", "channel.power_control=truncated", "channel.threshold=0.1"],
}
METHODS = ("laser", "zsgd")


def measure(task: str, method: str, channel: str, device: str, repeats: int, data_root: str) -> dict:
    import torch

    from federated.config import load_config
    from federated.simulation import Simulation

    path, extra = TASKS[task]
    config = load_config(
        REPO / path,
        [
            *extra,
            f"compressor.name={method}",
            *CHANNELS[channel],
            f"device={device}",
            "eval_every=1000000",
            "rounds=1000000",
            f"data.root={data_root}",
        ],
    )
    sim = Simulation(config)
    rounds = itertools.count()
    sync = torch.cuda.synchronize if device.startswith("cuda") else None

    def clients() -> None:
        for k in range(config.clients.num_clients):
            sim.client_gradient(k)

    times = time_interleaved(
        {"round": lambda: sim.round(next(rounds)), "clients": clients}, repeats=repeats, warmup=3, sync=sync
    )
    stats = {name: summarize(samples) for name, samples in times.items()}
    return {
        "task": task,
        "method": method,
        "channel": channel,
        "clients": config.clients.num_clients,
        "parameters": sum(p.numel() for p in sim.params),
        "round_ms": stats["round"],
        "clients_ms": stats["clients"],
        "overhead": stats["round"]["median"] / stats["clients"]["median"],
    }


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        extra=lambda p: (
            p.add_argument("--device", default="cpu"),
            p.add_argument(
                "--tasks",
                default=None,
                help="comma-separated; default: mnist1d_cnn,tiny_gpt (and the paper's models on a GPU)",
            ),
            p.add_argument("--repeats", type=int, default=None),
            p.add_argument("--data-root", default=str(REPO / "data")),
        ),
    )
    tasks = (
        args.tasks.split(",")
        if args.tasks
        else ["mnist1d_cnn", "tiny_gpt"]
        + (["cifar_resnet18", "gpt2_124m"] if args.device.startswith("cuda") else [])
    )
    repeats = args.repeats or (3 if args.quick else 15)
    results = []
    for task in tasks[:1] if args.quick else tasks:
        for method, channel in itertools.product(METHODS[:1] if args.quick else METHODS, CHANNELS):
            results.append(measure(task, method, channel, args.device, repeats, args.data_root))
            r = results[-1]
            print(
                f"{task} {method} {channel}: round {r['round_ms']['median']:.2f} ms, clients alone "
                f"{r['clients_ms']['median']:.2f} ms, overhead {r['overhead']:.3f}",
                flush=True,
            )
    print_table(
        ["task", "method", "channel", "K", "round ms", "clients ms", "overhead (round / clients)"],
        [
            [
                r["task"],
                r["method"],
                r["channel"],
                r["clients"],
                r["round_ms"]["median"],
                r["clients_ms"]["median"],
                r["overhead"],
            ]
            for r in results
        ],
        title="Time per round over the clients' forward and backward passes alone (median over repeats)",
    )
    emit(
        {
            "benchmark": "overhead",
            "machine": machine_info(args.device),
            "repeats": repeats,
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
