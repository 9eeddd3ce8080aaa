"""Rounds per second against the number of clients K: vectorised clients (``clients.vectorize=vmap``,
one ``torch.func.vmap`` pass for all K) against the loop, MNIST-1D CNN, LASER over AWGN; FedSGD, or
with ``--local-steps H`` each client's H local SGD steps (FedAvg's clients) vmapped.

Both modes are timed in turns on two simulations of the same configuration (whole rounds: clients,
LASER, channel, server step; no evaluation).

    python benchmarks/clients_scaling.py [--quick] [--json PATH] [--device cuda] [--clients 1,4,16,64,256]
        [--local-steps H]
"""

from __future__ import annotations

import itertools

from common import REPO, emit, machine_info, parse_args, print_table, summarize, time_interleaved


def measure(
    clients: int, device: str, repeats: int, data_root: str, batch: int, local_steps: int = 0
) -> dict:
    import torch

    from federated.config import load_config
    from federated.simulation import Simulation

    overrides = [
        f"clients.num_clients={clients}",
        f"clients.batch_size={batch}",
        f"device={device}",
        "eval_every=1000000",
        "rounds=1000000",
        f"data.root={data_root}",
        f"data.num_samples={max(10000, 2 * clients * batch)}",
    ]
    if local_steps:  # FedAvg's clients: H SGD steps each, the server averaging their changes
        overrides += [f"clients.local_steps={local_steps}", "clients.lr=0.05", "optimizer.momentum=0"]
    sims = {
        mode: Simulation(
            load_config(REPO / "configs/mnist1d_laser.yaml", [*overrides, f"clients.vectorize={mode}"])
        )
        for mode in ("loop", "vmap")
    }
    counters = {mode: itertools.count() for mode in sims}
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    times = time_interleaved(
        {mode: (lambda m=mode: sims[m].round(next(counters[m]))) for mode in sims},
        repeats=repeats,
        warmup=2,
        sync=sync,
    )
    stats = {mode: summarize(samples) for mode, samples in times.items()}
    return {
        "clients": clients,
        "loop_ms": stats["loop"],
        "vmap_ms": stats["vmap"],
        "loop_rounds_per_s": 1e3 / stats["loop"]["median"],
        "vmap_rounds_per_s": 1e3 / stats["vmap"]["median"],
        "speedup": stats["loop"]["median"] / stats["vmap"]["median"],
    }


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        extra=lambda p: (
            p.add_argument("--device", default="cpu"),
            p.add_argument("--clients", default="1,2,4,8,16,32,64,128,256"),
            p.add_argument("--batch", type=int, default=32),
            p.add_argument("--repeats", type=int, default=None),
            p.add_argument("--data-root", default=str(REPO / "data")),
            p.add_argument("--local-steps", type=int, default=0, help="H local SGD steps (0: FedSGD)"),
        ),
    )
    counts = [1, 16] if args.quick else [int(k) for k in args.clients.split(",")]
    results = []
    for clients in counts:
        repeats = args.repeats or (3 if args.quick else max(3, min(15, 480 // clients)))
        results.append(measure(clients, args.device, repeats, args.data_root, args.batch, args.local_steps))
        r = results[-1]
        print(
            f"K={clients}: loop {r['loop_rounds_per_s']:.2f} rounds/s, "
            f"vmap {r['vmap_rounds_per_s']:.2f} rounds/s, x{r['speedup']:.2f}",
            flush=True,
        )
    print_table(
        ["K", "loop rounds/s", "vmap rounds/s", "vmap / loop"],
        [[r["clients"], r["loop_rounds_per_s"], r["vmap_rounds_per_s"], r["speedup"]] for r in results],
        title="MNIST-1D CNN, LASER, AWGN: whole rounds per second (median over repeats)",
    )
    emit(
        {
            "benchmark": "clients_scaling",
            "machine": machine_info(args.device),
            "batch": args.batch,
            "local_steps": args.local_steps,
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
