"""Rounds per second of one FedAvg-style task: this simulator against Flower's simulation engine.

Task (both): MNIST-1D (``configs/mnist1d_noiseless.yaml``: 10,000 samples, 16 IID clients, batches
of 32), its 1-D CNN (width 64), an ideal channel, every client in every round, SGD with lr 0.05
and no momentum or weight decay, so both run the same algorithm: one SGD step on the mean of the
16 clients' minibatch gradients per round.

* ours: ``federated.train.train(load_config("configs/mnist1d_noiseless.yaml", [channel.name=noiseless,
  compressor.name=zsgd, rounds=R, eval_every=R, optimizer.momentum=0, optimizer.weight_decay=0,
  device=cpu]), progress=False)`` in this process, with 1 and with 2 torch threads (``--threads N``:
  only N), and, where the simulator has it, with ``clients.vectorize=vmap`` (first thread count).
  Rate: R / the run's ``wall_time_s`` (the round loop, one test evaluation at the end included);
  set-up (data, model) is reported apart.
* Flower (``flwr.simulation.run_simulation``, Ray backend, 16 supernodes, one CPU per client, so
  two Ray actors on two CPUs, one torch thread each): ``ServerApp`` running ``FedAvg`` (training
  on all 16 nodes, no federated evaluation); the ``ClientApp`` (``benchmarks/_flower_app.py``)
  loads the global weights, takes one SGD step on a batch of 32 and returns its weights. Rate: R /
  the duration of ``strategy.start(num_rounds=R)``, after a one-round warm-up. Ray itself starts
  while that first round waits for its nodes, so the time from ``run_simulation`` to the end of
  the warm-up round (Ray, actor pool, imports and data loading in the actors) is reported apart,
  as is the shut-down.

Inside the ServerApp's ``main`` (this process, Ray up) the two take turns: ours R rounds, Flower
R rounds, repeated; the rates are medians over the repeats and the ratio ours/Flower compares
medians measured under the same conditions. Ours is also timed before Ray starts. Process
start-up (a fresh interpreter importing each side's modules) is measured in subprocesses.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from common import REPO, emit, machine_info, parse_args, print_table  # noqa: E402

from federated.components import split_seed  # noqa: E402
from federated.config import load_config  # noqa: E402
from federated.data.datasets import load_dataset  # noqa: E402
from federated.models import build_model  # noqa: E402
from federated.train import train  # noqa: E402

CONFIG = REPO / "configs" / "mnist1d_noiseless.yaml"
NUM_CLIENTS = 16
LR = 0.05
DATA_ROOT = str(REPO / "data")  # the simulator's default cache (git-ignored), as an absolute path


# ------------------------------------------------------------------------------------------ ours
def ours_config(rounds: int, vectorize: str = "loop"):
    """The run's configuration; ``vectorize`` other than "loop" sets ``clients.vectorize``."""
    return load_config(
        str(CONFIG),
        [
            "channel.name=noiseless",
            "compressor.name=zsgd",
            f"rounds={rounds}",
            f"eval_every={rounds}",
            f"clients.num_clients={NUM_CLIENTS}",
            f"optimizer.lr={LR}",
            "optimizer.momentum=0.0",
            "optimizer.weight_decay=0.0",
            "device=cpu",
            f"data.root={DATA_ROOT}",
            *([f"clients.vectorize={vectorize}"] if vectorize != "loop" else []),
        ],
    )


def vmap_available() -> str | None:
    """None if this version of the simulator has ``clients.vectorize=vmap``, else why not."""
    try:
        ours_config(1, "vmap")
    except Exception as error:  # noqa: BLE001 - an older simulator: the case is skipped
        return f"{type(error).__name__}: {error}"
    return None


def run_ours(rounds: int, threads: int, vectorize: str = "loop") -> dict[str, float]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        history = train(ours_config(rounds, vectorize), progress=False)
        total = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    loop = float(history.summary["wall_time_s"])
    return {
        "rounds": rounds,
        "threads": threads,
        "vectorize": vectorize,
        "loop_s": loop,
        "setup_s": total - loop,
        "rounds_per_s": rounds / loop,
        "test_accuracy": float(history.summary.get("test_accuracy", float("nan"))),
    }


# ---------------------------------------------------------------------------------------- flower
def startup_seconds(code: str, repeats: int) -> dict[str, object]:
    """Wall time of a fresh interpreter running ``code`` (median of ``repeats``)."""
    times = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            return {
                "error": done.stderr.strip().splitlines()[-1]
                if done.stderr.strip()
                else f"exit {done.returncode}"
            }
    return {"median_s": statistics.median(times), "samples_s": times}


def final_accuracy(state_dict: dict[str, torch.Tensor]) -> float:
    config = ours_config(1)
    data = load_dataset(config.data)
    model = build_model(
        config.model, {"num_features": data.num_features, "num_classes": data.num_classes}, seed=0
    )
    model.load_state_dict(state_dict)
    with torch.no_grad():
        return float((model(data.x_test).argmax(-1) == data.y_test).float().mean())


def run_flower(rounds: int, repeats: int, variants: list[tuple[int, str]]) -> dict[str, object]:
    """Ray start-up and a warm-up round, then ``repeats`` turns of (ours R rounds in each variant
    (threads, vectorize), Flower R rounds)."""
    try:
        import _flower_app
        from flwr.app import ArrayRecord, ConfigRecord, Context
        from flwr.serverapp import Grid, ServerApp
        from flwr.serverapp.strategy import FedAvg
        from flwr.simulation import run_simulation
    except Exception as error:  # noqa: BLE001 - reported
        return {"error": f"import failed: {type(error).__name__}: {error}"}

    logging.getLogger("flwr").setLevel(logging.WARNING)
    run: dict[str, object] = {"ours": [], "flower": []}
    marks: dict[str, float] = {}

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        marks["main"] = time.perf_counter()
        try:
            config = ours_config(rounds)
            model = build_model(
                config.model, {"num_features": 40, "num_classes": 10}, seed=split_seed(config.seed).model
            )  # ours' initial weights
            arrays = ArrayRecord(model.state_dict())
            strategy = FedAvg(
                fraction_train=1.0,
                fraction_evaluate=0.0,
                min_train_nodes=NUM_CLIENTS,
                min_available_nodes=NUM_CLIENTS,
            )
            train_config = ConfigRecord({"lr": LR, "data-root": DATA_ROOT})
            start = time.perf_counter()
            strategy.start(grid=grid, initial_arrays=arrays, num_rounds=1, train_config=train_config)
            marks["warmup_end"] = time.perf_counter()
            run["warmup_round_s"] = marks["warmup_end"] - start
            for rep in range(repeats):
                sides = [*variants, "flower"]
                shift = rep % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    if side != "flower":
                        run["ours"].append(run_ours(rounds, *side))
                    else:
                        start = time.perf_counter()
                        result = strategy.start(
                            grid=grid,
                            initial_arrays=arrays,
                            num_rounds=rounds,
                            train_config=ConfigRecord({"lr": LR, "data-root": DATA_ROOT}),
                        )
                        elapsed = time.perf_counter() - start
                        run["flower"].append(
                            {
                                "rounds": rounds,
                                "loop_s": elapsed,
                                "rounds_per_s": rounds / elapsed,
                                "test_accuracy": final_accuracy(result.arrays.to_torch_state_dict()),
                            }
                        )
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            run["error"] = f"{type(error).__name__}: {error}"
            run["traceback"] = traceback.format_exc()[-3000:]
            raise
        finally:
            marks["main_end"] = time.perf_counter()

    backend_config = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": 2, "num_gpus": 0, "logging_level": "error", "log_to_driver": False},
    }
    start = time.perf_counter()
    try:
        run_simulation(
            server_app=server_app,
            client_app=_flower_app.app,
            num_supernodes=NUM_CLIENTS,
            backend_name="ray",
            backend_config=backend_config,
        )
    except BaseException as error:  # noqa: BLE001 - SystemExit included: reported, not fatal
        run.setdefault("error", f"run_simulation: {type(error).__name__}: {error}")
        run.setdefault("traceback", traceback.format_exc()[-3000:])
    end = time.perf_counter()
    run["run_simulation_s"] = end - start
    if "main" in marks:
        run["serverapp_main_entered_s"] = marks["main"] - start
        run["shutdown_s"] = end - marks["main_end"]
    if "warmup_end" in marks:  # Ray starts, and its actors, while the first round waits for nodes
        run["startup_and_first_round_s"] = marks["warmup_end"] - start
    elif "error" not in run:
        run["error"] = "the ServerApp's main never ran"
    return run


def median_of(samples: list[dict], key: str, **match) -> float | None:
    values = [s[key] for s in samples if key in s and all(s.get(k) == v for k, v in match.items())]
    return statistics.median(values) if values else None


def _label(threads: int, vectorize: str) -> str:
    return f"ours_threads{threads}" + ("" if vectorize == "loop" else f"_{vectorize}")


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    rounds, repeats, startup_repeats = (3, 1, 1) if args.quick else (20, 3, 3)
    threads = (args.threads,) if args.threads is not None else (1, 2)
    no_vmap = vmap_available()
    variants = [(n, "loop") for n in threads] + ([(threads[0], "vmap")] if no_vmap is None else [])
    torch.manual_seed(0)

    # ours alone, before Ray (the first call also generates the MNIST-1D cache if it is missing)
    run_ours(2, threads[0])
    alone = [run_ours(rounds, *v) for _ in range(repeats) for v in variants]

    startup = {
        "ours": startup_seconds("import torch, federated.train", startup_repeats),
        "flower": startup_seconds(
            "import torch, ray, flwr.simulation, flwr.serverapp, flwr.clientapp", startup_repeats
        ),
    }
    flower = run_flower(rounds, repeats, variants)

    flower_rate = median_of(flower["flower"], "rounds_per_s")
    rates = {}
    for n, v in variants:
        rates[_label(n, v)] = median_of(flower["ours"], "rounds_per_s", threads=n, vectorize=v)
        rates[_label(n, v) + "_alone"] = median_of(alone, "rounds_per_s", threads=n, vectorize=v)
    rates["flower"] = flower_rate
    ratios = {
        _label(n, v) + "_over_flower": (
            rates[_label(n, v)] / flower_rate if rates[_label(n, v)] and flower_rate else None
        )
        for n, v in variants
    }
    best = max(variants, key=lambda nv: rates[_label(*nv)] or 0)
    ratio = ratios[_label(*best) + "_over_flower"]

    rows = []
    for label, samples in (("no Ray running", alone), ("turns with Flower", flower["ours"])):
        for n, v in variants:
            rows.append(
                [
                    f"ours, {n} thread{'s' if n > 1 else ''}{', ' + v if v != 'loop' else ''}, {label}",
                    median_of(samples, "rounds_per_s", threads=n, vectorize=v),
                    median_of(samples, "loop_s", threads=n, vectorize=v),
                    median_of(samples, "setup_s", threads=n, vectorize=v),
                    startup["ours"].get("median_s"),
                    median_of(samples, "test_accuracy", threads=n, vectorize=v),
                ]
            )
    rows.append(
        [
            "Flower (Ray, 2 actors x 1 thread)",
            flower_rate,
            median_of(flower["flower"], "loop_s"),
            flower.get("startup_and_first_round_s"),
            startup["flower"].get("median_s"),
            median_of(flower["flower"], "test_accuracy"),
        ]
    )
    print_table(
        [
            "",
            "rounds/s",
            f"{rounds} rounds s",
            "set-up s (Flower: Ray + actors + round 1)",
            "process start-up s",
            "test acc.",
        ],
        rows,
        title=f"MNIST-1D CNN, {NUM_CLIENTS} clients, {rounds} rounds, ideal channel: median of {repeats}",
    )
    for n, v in variants:
        r = ratios[_label(n, v) + "_over_flower"]
        if r is not None:
            print(
                f"ours ({n} thread{'s' if n > 1 else ''}{', ' + v if v != 'loop' else ''}) / Flower "
                f"rounds per second: {r:.1f}x"
            )
    if no_vmap is not None:
        print(f"(clients.vectorize=vmap not available here: {no_vmap})")
    if "error" in flower:
        print(f"Flower failed: {flower['error']}\n{flower.get('traceback', '')}")

    result = {
        "benchmark": "flower",
        "quick": args.quick,
        "machine": machine_info("cpu"),
        "settings": {
            "config": str(CONFIG.relative_to(REPO)),
            "num_clients": NUM_CLIENTS,
            "rounds": rounds,
            "repeats": repeats,
            "batch_size": 32,
            "lr": LR,
            "momentum": 0.0,
            "weight_decay": 0.0,
            "ours_variants": [{"threads": n, "vectorize": v} for n, v in variants],
            "flower_client_resources": {"num_cpus": 1},
            "ray_num_cpus": 2,
            "flower_torch_threads_per_actor": 1,
        },
        "versions": _versions(),
        "notes": [
            "rounds_per_s: rounds / time of the round loop; start-ups are reported apart",
            "ours: the loop includes one test evaluation at the end; Flower's none (fraction_evaluate=0)",
            "Flower's rate is measured after a one-round warm-up; startup_and_first_round_s: from "
            "run_simulation to the end of that round (Ray init, actor pool, imports and data loading in "
            "the actors)",
            "ratio_ours_over_flower: the fastest variant of ours (ratio_best), medians measured in turns "
            "with Flower (ours run while Ray is up); ratios has every variant (threads; "
            "clients.vectorize=vmap where the simulator has it, else vmap_unavailable says why)",
            "process_startup_s: a fresh interpreter importing the modules of each side",
        ],
        "rounds_per_s": rates,
        "ratio_ours_over_flower": ratio,
        "ratio_best": _label(*best),
        "vmap_unavailable": no_vmap,
        "ratios": ratios,
        "ours_alone": alone,
        "ours_interleaved": flower["ours"],
        "flower_runs": flower["flower"],
        "process_startup_s": startup,
        "flower_startup_and_first_round_s": flower.get("startup_and_first_round_s"),
        "flower_serverapp_main_entered_s": flower.get("serverapp_main_entered_s"),
        "flower_shutdown_s": flower.get("shutdown_s"),
        "flower_run_simulation_s": flower.get("run_simulation_s"),
        "flower_error": flower.get("error"),
        "flower_traceback": flower.get("traceback"),
    }
    emit(result, args.json)
    return result


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("flwr", "ray", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


if __name__ == "__main__":
    main()
