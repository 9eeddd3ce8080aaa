"""Simulation overhead: the time of a whole round (clients, compression, channel, decoding, server
step, bookkeeping) divided by the time of the clients' own work alone.

A round cannot cost less than its clients' work; everything above ratio 1 is what the simulator
adds. Both cases run on the same ``Simulation`` in turns (``common.time_interleaved``): ``round`` is
``Simulation.round(t)`` without evaluation; ``clients`` is the loop of ``Simulation.clients.update(k)``
over the K clients: FedSGD's forward and backward pass (regime ``fedsgd``), or FedAvg's H = 5 local
SGD steps (regime ``fedavg_h5``). The same batches are drawn in both.

The profile: after the timed turns, the same number of rounds again with a timer around each stage
of the round (who takes part, the local updates with the encoding inside them, the uplink with the
decoding, the server's step, the record; ``_encode`` is the compressor's share of the local
updates), each stage's median over those rounds in the JSON (``stages_ms``; ``clients``: the local
updates less the encoding, ``rest``: the round less its timed stages, both per round) and the
``stage_*_ms`` columns. Medians of parts do not add up to the median round exactly.

    python benchmarks/overhead.py [--quick] [--json PATH] [--device cuda] [--tasks mnist1d_cnn]
"""

from __future__ import annotations

import itertools
import statistics
import time

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
REGIMES = {  # name -> overrides, and the channels it is measured over
    "fedsgd": ([], tuple(CHANNELS)),
    "fedavg_h5": (["clients.local_steps=5", "clients.lr=0.05", "clients.optimizer=sgd"], ("awgn",)),
}
STAGES = ("_participants", "local_updates", "_encode", "_train_loss", "_uplink", "_server_step", "_record")


def stage_profile(sim, rounds: itertools.count, repeats: int, sync) -> dict[str, float]:
    """Median milliseconds per round of each stage over ``repeats`` rounds (a timer around each)."""
    spent: dict[str, float] = {}
    originals = {name: getattr(sim, name) for name in STAGES}

    def timed(name: str, call):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            out = call(*args, **kwargs)
            if sync is not None:
                sync()
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
            return out

        return wrapper

    samples: list[dict[str, float]] = []
    try:
        for name, call in originals.items():
            setattr(sim, name, timed(name, call))
        for _ in range(repeats):
            spent.clear()
            start = time.perf_counter()
            sim.round(next(rounds))
            if sync is not None:
                sync()
            sample = {name: spent.get(name, 0.0) for name in STAGES}
            sample["round"] = time.perf_counter() - start
            # per round, so that each is >= 0: the clients' work inside the round (the local updates
            # less their encoding) and the rest (who takes part, the training loss, the record)
            sample["clients"] = sample["local_updates"] - sample["_encode"]
            sample["rest"] = sample["round"] - sum(
                sample[n] for n in ("local_updates", "_uplink", "_server_step")
            )
            samples.append(sample)
    finally:
        for name, call in originals.items():
            setattr(sim, name, call)  # the bound method (or the instance's own, local_updates) again
    return {name: 1e3 * statistics.median(s[name] for s in samples) for name in samples[0]}


def measure(
    task: str, regime: str, method: str, channel: str, device: str, repeats: int, data_root: str
) -> dict:
    import torch

    from federated.config import load_config
    from federated.simulation import Simulation

    path, extra = TASKS[task]
    config = load_config(
        REPO / path,
        [
            *extra,
            *REGIMES[regime][0],
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
            sim.clients.update(k)

    times = time_interleaved(
        {"round": lambda: sim.round(next(rounds)), "clients": clients}, repeats=repeats, warmup=3, sync=sync
    )
    stats = {name: summarize(samples) for name, samples in times.items()}
    stages = stage_profile(sim, rounds, repeats, sync)
    return {
        "task": task,
        "regime": regime,
        "method": method,
        "channel": channel,
        "clients": config.clients.num_clients,
        "local_steps": config.clients.local_steps if sim.clients.local else None,
        "parameters": sum(p.numel() for p in sim.params),
        "round_ms": stats["round"],
        "clients_ms": stats["clients"],
        "round_median_ms": stats["round"]["median"],
        "clients_median_ms": stats["clients"]["median"],
        "overhead": stats["round"]["median"] / stats["clients"]["median"],
        "stages_ms": stages,
        "stage_clients_ms": stages["clients"],
        "stage_encode_ms": stages["_encode"],
        "stage_uplink_ms": stages["_uplink"],
        "stage_server_ms": stages["_server_step"],
        "stage_rest_ms": stages["rest"],
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
        for regime, (_, channels) in REGIMES.items():
            methods = METHODS[:1] if args.quick else METHODS
            for method, channel in itertools.product(methods, channels[:1] if args.quick else channels):
                results.append(measure(task, regime, method, channel, args.device, repeats, args.data_root))
                r = results[-1]
                print(
                    f"{task} {regime} {method} {channel}: round {r['round_median_ms']:.2f} ms, clients alone "
                    f"{r['clients_median_ms']:.2f} ms, overhead {r['overhead']:.3f}",
                    flush=True,
                )
    print_table(
        [
            "task",
            "regime",
            "method",
            "channel",
            "K",
            "round ms",
            "clients ms",
            "overhead",
            "encode ms",
            "uplink ms",
        ],
        [
            [
                r["task"],
                r["regime"],
                r["method"],
                r["channel"],
                r["clients"],
                r["round_median_ms"],
                r["clients_median_ms"],
                r["overhead"],
                r["stage_encode_ms"],
                r["stage_uplink_ms"],
            ]
            for r in results
        ],
        title="Time per round over the clients' own work alone (median over repeats); the stages' medians",
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
