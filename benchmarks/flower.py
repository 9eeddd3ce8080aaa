"""Rounds per second and memory of the cross-device FedAvg workload: this simulator against Flower's
simulation engine.

Workload (both): MNIST-1D with 100,000 samples (80,000 for training: 80 a client on average), cut
over 1,000 registered clients by Dirichlet(0.3) label proportions (``data.min_partition_size`` 5;
the simulator's partition, which the Flower clients load too), 10 clients a round, each taking
H local SGD steps (H = 1 and 5; batches of 32, lr 0.1) on the 1-D CNN (width 64), the server
averaging the model changes weighted by data size (FedAvg, server lr 1).

* ours: ``configs/mnist1d_fedavg_dirichlet.yaml`` with these overrides, the model changes sent with
  LASER (rank 4) over the AWGN channel at energy 100 (``clients.weighting=data_size``), in this
  process with 1 and 2 torch threads (``--threads N``: only N), the clients one after another
  (``clients.vectorize=loop``) and vmapped (``vmap``: one pass per batch shape, the shards being
  unequal). One ``Simulation`` per H and variant, a warm-up
  of 3 rounds, then R rounds of ``Simulation.round`` timed (no evaluation). Its peak memory: a
  fresh process running the same rounds alone (``VmHWM``), with its rounds per second without Ray
  (a process per repeat: the median rate, the highest peak).
* Flower (``flwr.simulation.run_simulation``, Ray backend, 1,000 supernodes, one CPU per client, so
  two Ray actors on two CPUs, one torch thread each): ``FedAvg`` (``fraction_train`` 0.01, no
  federated evaluation) and the ``ClientApp`` of ``benchmarks/_flower_app.py`` (H local SGD steps on
  its shard, weights and its shard's size back). Rate: R / the duration of
  ``strategy.start(num_rounds=R)``, after a one-round warm-up per H. Memory: the driver's peak
  resident set plus the resident sets of Ray's processes (raylet, GCS, the actors) after the timed
  rounds.

Inside the ServerApp's ``main`` (this process, Ray up) the two take turns: ours R rounds, Flower R
rounds, for each H, repeated; the rates are medians over the repeats and the ratio ours/Flower
compares medians measured under the same conditions. Process start-up (a fresh interpreter
importing each side's modules) is measured in subprocesses.

    python benchmarks/flower.py [--quick] [--threads N] [--json PATH]
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
from common import REPO, emit, machine_info, parse_args, print_table, process_memory, run_child  # noqa: E402

from federated.components import split_seed  # noqa: E402
from federated.config import load_config  # noqa: E402
from federated.models import build_model  # noqa: E402
from federated.simulation import Simulation  # noqa: E402

CONFIG = REPO / "configs" / "mnist1d_fedavg_dirichlet.yaml"
BATCH_SIZE = 32
NUM_CLIENTS = 1000
PER_ROUND = 10
LR = 0.1
LOCAL_STEPS = (1, 5)
WARMUP_ROUNDS = 3
DATA_ROOT = str(REPO / "data")  # the simulator's default cache (git-ignored), as an absolute path


def workload_overrides(num_clients: int, data_root: str) -> list[str]:
    """The workload's data and clients, which the Flower clients load too (``_flower_app.py``)."""
    return [
        f"clients.num_clients={num_clients}",
        "data.num_samples=100000",
        "data.alpha=0.3",
        "data.min_partition_size=5",
        f"clients.batch_size={BATCH_SIZE}",
        f"data.root={data_root}",
        "device=cpu",
    ]


# ------------------------------------------------------------------------------------------ ours
def ours_overrides(local_steps: int, data_root: str = DATA_ROOT, vectorize: str = "loop") -> list[str]:
    """The workload with LASER over AWGN, for ``local_steps`` H, the clients looped or vmapped."""
    return [
        *workload_overrides(NUM_CLIENTS, data_root),
        f"clients.per_round={PER_ROUND}",
        f"clients.local_steps={local_steps}",
        f"clients.lr={LR}",
        "clients.optimizer=sgd",
        "clients.weighting=data_size",
        "compressor.name=laser",
        "channel.name=awgn",
        "rounds=1000000",
        "eval_every=1000000",
        f"clients.vectorize={vectorize}",
    ]


def ours_config(local_steps: int, vectorize: str = "loop"):
    return load_config(str(CONFIG), ours_overrides(local_steps, vectorize=vectorize))


class Ours:
    """One Simulation per H and clients mode, kept across the repeats (its rounds go on), warmed up
    once."""

    def __init__(self) -> None:
        self.sims: dict[tuple[int, str], Simulation] = {}

    def rounds(self, rounds: int, threads: int, vectorize: str, local_steps: int) -> dict[str, object]:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            if (local_steps, vectorize) not in self.sims:
                self.sims[local_steps, vectorize] = sim = Simulation(ours_config(local_steps, vectorize))
                for _ in range(WARMUP_ROUNDS):
                    sim.round()
            sim = self.sims[local_steps, vectorize]
            start = time.perf_counter()
            for _ in range(rounds):
                sim.round()
            elapsed = time.perf_counter() - start
        finally:
            torch.set_num_threads(before)
        return {
            "rounds": rounds,
            "threads": threads,
            "vectorize": vectorize,
            "local_steps": local_steps,
            "loop_s": elapsed,
            "rounds_per_s": rounds / elapsed,
        }


_ALONE = """
import json, sys, time
import torch
from common import process_memory
sys.path.insert(0, sys.argv[4])
import flower
threads, local_steps, rounds, vectorize = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[5]
ours = flower.Ours()
ours.rounds(1, threads, vectorize, local_steps)  # set-up and warm-up
row = ours.rounds(rounds, threads, vectorize, local_steps)
print(json.dumps({**row, "peak_bytes": process_memory("VmHWM:")}))
"""


def ours_alone(rounds: int, variant: tuple[int, str], local_steps: int) -> dict:
    """Ours in a fresh process without Ray: rounds per second and the process's peak memory."""
    here = str(Path(__file__).resolve().parent)
    threads, vectorize = variant
    what = f"ours alone, H={local_steps}, {threads} threads, {vectorize}"
    return run_child(_ALONE, str(threads), str(local_steps), str(rounds), here, vectorize, what=what)


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


def ray_resident_bytes() -> int:
    """The resident sets of this user's Ray processes (raylet, GCS, workers and actors), summed."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "ray" not in command or int(proc.name) == os.getpid():
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue  # a process that ended meanwhile
    return total


def run_flower(rounds: int, repeats: int, variants: list[tuple[int, str]], ours: Ours) -> dict[str, object]:
    """Ray start-up and a warm-up round per H, then ``repeats`` turns of (ours R rounds with each
    thread count, Flower R rounds) for each H."""
    try:
        import _flower_app
        from flwr.app import ArrayRecord, ConfigRecord, Context
        from flwr.serverapp import Grid, ServerApp
        from flwr.serverapp.strategy import FedAvg
        from flwr.simulation import run_simulation
    except Exception as error:  # noqa: BLE001 - reported
        return {"error": f"import failed: {type(error).__name__}: {error}", "ours": [], "flower": []}

    logging.getLogger("flwr").setLevel(logging.WARNING)
    run: dict[str, object] = {"ours": [], "flower": []}
    marks: dict[str, float] = {}

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        marks["main"] = time.perf_counter()
        try:
            config = ours_config(1)
            model = build_model(
                config.model, {"num_features": 40, "num_classes": 10}, seed=split_seed(config.seed).model
            )  # ours' initial weights
            arrays = ArrayRecord(model.state_dict())
            strategy = FedAvg(
                fraction_train=PER_ROUND / NUM_CLIENTS,
                fraction_evaluate=0.0,
                min_train_nodes=PER_ROUND,
                min_available_nodes=NUM_CLIENTS,
            )

            def flower_rounds(num_rounds: int, local_steps: int) -> float:
                train_config = ConfigRecord({"lr": LR, "data-root": DATA_ROOT, "local-steps": local_steps})
                start = time.perf_counter()
                strategy.start(
                    grid=grid, initial_arrays=arrays, num_rounds=num_rounds, train_config=train_config
                )
                return time.perf_counter() - start

            run["warmup_round_s"] = {h: flower_rounds(1, h) for h in LOCAL_STEPS}
            marks["warmup_end"] = time.perf_counter()
            for rep in range(repeats):
                for h in LOCAL_STEPS:
                    sides: list[tuple[int, str] | str] = [*variants, "flower"]
                    shift = rep % len(sides)
                    for side in sides[shift:] + sides[:shift]:
                        if side != "flower":
                            threads, vectorize = side  # type: ignore[misc]
                            run["ours"].append(ours.rounds(rounds, threads, vectorize, h))
                        else:
                            elapsed = flower_rounds(rounds, h)
                            run["flower"].append(
                                {
                                    "rounds": rounds,
                                    "local_steps": h,
                                    "loop_s": elapsed,
                                    "rounds_per_s": rounds / elapsed,
                                }
                            )
            run["ray_resident_bytes"] = ray_resident_bytes()
            run["driver_peak_bytes"] = process_memory("VmHWM:")
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
        run["startup_and_warmup_rounds_s"] = marks["warmup_end"] - start
    elif "error" not in run:
        run["error"] = "the ServerApp's main never ran"
    return run


def median_of(samples: list[dict], key: str, **match) -> float | None:
    values = [s[key] for s in samples if key in s and all(s.get(k) == v for k, v in match.items())]
    return statistics.median(values) if values else None


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    rounds, repeats, startup_repeats = (3, 1, 1) if args.quick else (20, 3, 3)
    threads = [args.threads] if args.threads is not None else [1, 2]
    variants = [(n, v) for v in ("loop", "vmap") for n in threads]
    torch.manual_seed(0)
    ours = Ours()
    ours.rounds(1, threads[0], "loop", 1)  # the first call also writes the MNIST-1D cache if it is missing
    # ours alone: a fresh process per repeat (median rate, highest peak), in turns over the variants
    runs: dict[tuple[tuple[int, str], int], list[dict]] = {}
    for _ in range(repeats):
        for h in LOCAL_STEPS:
            for v in variants:
                runs.setdefault((v, h), []).append(ours_alone(rounds, v, h))
    alone = {
        key: {
            **rows[0],
            "rounds_per_s": statistics.median(r["rounds_per_s"] for r in rows),
            "peak_bytes": max(r["peak_bytes"] for r in rows),
            "samples_rounds_per_s": [r["rounds_per_s"] for r in rows],
        }
        for key, rows in runs.items()
    }
    startup = {
        "ours": startup_seconds("import torch, federated.train", startup_repeats),
        "flower": startup_seconds(
            "import torch, ray, flwr.simulation, flwr.serverapp, flwr.clientapp", startup_repeats
        ),
    }
    flower = run_flower(rounds, repeats, variants, ours)
    flower_memory = (flower.get("driver_peak_bytes") or 0) + (flower.get("ray_resident_bytes") or 0)

    results = []
    for h in LOCAL_STEPS:
        flower_rate = median_of(flower["flower"], "rounds_per_s", local_steps=h)
        for n, v in variants:
            rate = median_of(flower["ours"], "rounds_per_s", threads=n, vectorize=v, local_steps=h)
            mine = alone[(n, v), h]
            results.append(
                {
                    "local_steps": h,
                    "threads": n,
                    "vectorize": v,
                    "ours_rounds_per_s": rate,
                    "ours_alone_rounds_per_s": mine["rounds_per_s"],
                    "ours_peak_bytes": mine["peak_bytes"],
                    "flower_rounds_per_s": flower_rate,
                    "flower_memory_bytes": flower_memory or None,
                    "ratio": rate / flower_rate if rate and flower_rate else None,
                    "ratio_alone": mine["rounds_per_s"] / flower_rate if flower_rate else None,
                    "flower_round_ms": 1e3 / flower_rate if flower_rate else None,
                    "ours_round_ms": 1e3 / rate if rate else None,
                }
            )
    print_table(
        [
            "H",
            "threads",
            "clients",
            "ours rounds/s",
            "ours alone",
            "ours peak MiB",
            "Flower rounds/s",
            "Flower MiB",
            "ours / Flower",
        ],
        [
            [
                r["local_steps"],
                r["threads"],
                r["vectorize"],
                r["ours_rounds_per_s"],
                r["ours_alone_rounds_per_s"],
                r["ours_peak_bytes"] / 2**20,
                r["flower_rounds_per_s"],
                (r["flower_memory_bytes"] or 0) / 2**20,
                r["ratio"],
            ]
            for r in results
        ],
        title=(
            f"MNIST-1D CNN, {PER_ROUND} of {NUM_CLIENTS} clients a round, Dirichlet 0.3, FedAvg: "
            f"median of {repeats} x {rounds} rounds"
        ),
    )
    if "error" in flower:
        print(f"Flower failed: {flower['error']}\n{flower.get('traceback', '')}")

    result = {
        "benchmark": "flower",
        "quick": args.quick,
        "machine": machine_info("cpu"),
        "settings": {
            "config": str(CONFIG.relative_to(REPO)),
            "overrides_h1": ours_overrides(1, "data"),
            "num_clients": NUM_CLIENTS,
            "per_round": PER_ROUND,
            "local_steps": list(LOCAL_STEPS),
            "rounds": rounds,
            "repeats": repeats,
            "warmup_rounds_ours": WARMUP_ROUNDS,
            "lr": LR,
            "ours": "LASER rank 4 over AWGN, energy 100, clients.weighting=data_size",
            "ours_variants": [{"threads": n, "vectorize": v} for n, v in variants],
            "flower": "FedAvg, fraction_train 0.01, fraction_evaluate 0, 2 Ray actors x 1 torch thread",
        },
        "versions": _versions(),
        "results": results,
        "ours_interleaved": flower["ours"],
        "ours_alone": [{**row, "local_steps": h} for (_, h), row in alone.items()],
        "flower_runs": flower["flower"],
        "process_startup_s": startup,
        "flower_warmup_round_s": flower.get("warmup_round_s"),
        "flower_startup_and_warmup_rounds_s": flower.get("startup_and_warmup_rounds_s"),
        "flower_shutdown_s": flower.get("shutdown_s"),
        "flower_ray_resident_bytes": flower.get("ray_resident_bytes"),
        "flower_driver_peak_bytes": flower.get("driver_peak_bytes"),
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
