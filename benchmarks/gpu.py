"""Every benchmark, and one short run of each paper model, on one device; one JSON file of it all.

What only a GPU can decide (docs/performance.md says which targets): the overhead of a round on the
paper's models, vmapped clients against the loop at m = 64, the memory of many clients. This
script runs, each in its own process and each with a time limit, so that one failure costs only
its own step:

* ``overhead.py``, ``clients_scaling.py`` (FedSGD, and 5 local steps at K = 16 and 64),
  ``memory.py``, ``antennas.py`` with ``--device``; ``powersgd_hook.py`` and
  ``registered_clients.py`` (CPU benchmarks: they compare with PyTorch's hook and measure the
  host);
* ResNet-18 (``configs/paper/cifar10_laser.yaml``) on CIFAR-10-shaped data that the tests'
  real-format generator writes (``tests/conftest.py``: the official pickles, nothing downloaded),
  and GPT-2 124M (``configs/paper/gpt2_laser.yaml``) with the byte tokenizer on the offline pydoc
  text, a few rounds each (``laser run``: rounds per second from the run's wall time).

It needs the ``dev`` extra (``pip install -e ".[dev]"``): the CIFAR writer is the tests' own
(``tests/conftest.py``, which imports pytest), so that the files are exactly those the tests read.

``--tiny`` makes every step small (each benchmark's ``--quick``, a ResNet of width 8 and a
one-layer GPT for two rounds) so that ``--device cpu --tiny`` checks the script itself in the tests.
On one H100 the full set is meant to fit in 10 minutes (``--budget``, default 600 s: a step that
would start past it is skipped and said so).

    bash benchmarks/gpu.sh [--device cuda] [--tiny] [--json gpu.json] [--budget 600] [--only NAMES]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, code_version, machine_info


def _write_cifar(root: Path, num_train: int, num_test: int) -> None:
    """CIFAR-10 in its official layout, from the tests' generator (tests/conftest.py)."""
    spec = importlib.util.spec_from_file_location("laser_tests_conftest", REPO / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_cifar_files(root, "cifar10", num_train=num_train, num_test=num_test)


def _steps(device: str, tiny: bool, work: Path) -> list[tuple[str, list[str], int]]:
    """(name, command, time limit in s) of every step."""
    python = sys.executable
    quick = ["--quick"] if tiny else []
    bench = REPO / "benchmarks"
    cuda = device.startswith("cuda")
    steps = [
        ("overhead", [python, str(bench / "overhead.py"), "--device", device, *quick], 300),
        ("clients_scaling", [python, str(bench / "clients_scaling.py"), "--device", device, *quick], 300),
        (
            "clients_scaling_local",
            [python, str(bench / "clients_scaling.py"), "--device", device, "--local-steps", "5"]
            + (["--quick"] if tiny else ["--clients", "16,64"]),
            300,
        ),
        ("memory", [python, str(bench / "memory.py"), "--device", device, *quick], 300),
        ("antennas", [python, str(bench / "antennas.py"), "--device", device, *quick], 120),
        ("powersgd_hook", [python, str(bench / "powersgd_hook.py"), *quick], 300),
        ("registered_clients", [python, str(bench / "registered_clients.py"), *quick], 300),
    ]
    resnet = (
        ["model.width=8", "clients.batch_size=8", "rounds=2", "eval_every=2"]
        if tiny
        else [
            "rounds=20",
            "eval_every=20",
        ]
    )
    gpt = (
        ["model.layers=1", "model.width=32", "model.heads=2", "model.context=32", "clients.batch_size=2"]
        + ["clients.accumulation_steps=1", "rounds=2", "eval_every=2"]
        if tiny
        else ["rounds=10", "eval_every=10"]
    )
    precision = [] if cuda else ["precision=fp32", "compile=false"]  # bf16 and compile: the GPU's
    common = [f"device={device}", "checkpoint_every=0", "--quiet", "--overwrite"]
    steps += [
        (
            "resnet18_cifar10",
            [python, "-m", "federated.cli", "run", "configs/paper/cifar10_laser.yaml", *resnet, *common]
            + ["data.download=false", f"data.root={work / 'data'}", "--out", str(work / "resnet18")],
            300,
        ),
        (
            "gpt2_124m_pydoc",
            [python, "-m", "federated.cli", "run", "configs/paper/gpt2_laser.yaml", *gpt, *precision, *common]
            + ["data.name=pydoc", "data.tokenizer=byte", "data.download=false", "--out", str(work / "gpt2")],
            300,
        ),
    ]
    return steps


def _result(name: str, work: Path, stdout: str) -> object:
    """A step's numbers: a benchmark's JSON (after its ``JSON:`` line), a run's summary."""
    if name in ("resnet18_cifar10", "gpt2_124m_pydoc"):
        path = work / ("resnet18" if name.startswith("resnet") else "gpt2") / "summary.json"
        summary = json.loads(path.read_text()) if path.is_file() else None
        if summary and summary.get("wall_time_s"):
            summary = {**summary, "rounds_per_s": summary["rounds"] / summary["wall_time_s"]}
        return summary
    text = stdout.split("\nJSON:\n", 1)
    return json.loads(text[1]) if len(text) == 2 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="every step small: a check of the script")
    parser.add_argument(
        "--json", default="gpu.json", metavar="PATH", help="where the JSON goes (default gpu.json)"
    )
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for all steps (default 600)")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated steps to run (default: all)")
    args = parser.parse_args(argv)
    names = [name for name, _, _ in _steps(args.device, args.tiny, Path("."))]
    only = names if args.only is None else args.only.split(",")
    unknown = [n for n in only if n not in names]
    if unknown:
        print(
            f"gpu.sh: --only {args.only}: no step {unknown[0]!r}; the steps: {', '.join(names)}",
            file=sys.stderr,
        )
        return 2
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(
                f"gpu.sh: --device {args.device}: no CUDA device here "
                "(--device cpu --tiny checks the script)",
                file=sys.stderr,
            )
            return 2
    started = time.monotonic()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="laser-gpu-") as tmp:
        work = Path(tmp)
        _write_cifar(work / "data", num_train=256 if args.tiny else 5000, num_test=64 if args.tiny else 1000)
        for name, command, limit in _steps(args.device, args.tiny, work):
            if name not in only:
                continue
            left = args.budget - (time.monotonic() - started)
            if left <= 0:
                results.append(
                    {"name": name, "status": "skipped", "why": f"past the {args.budget:.0f} s budget"}
                )
                print(f"gpu.sh: {name}: skipped (past the budget)", flush=True)
                continue
            begun = time.monotonic()
            try:
                done = subprocess.run(
                    command, cwd=REPO, capture_output=True, text=True, timeout=min(limit, max(left, 1.0))
                )
                status = "ok" if done.returncode == 0 else f"exit status {done.returncode}"
                stdout, stderr = done.stdout, done.stderr
            except subprocess.TimeoutExpired as error:
                status, stdout = f"timed out after {error.timeout:.0f} s", ""
                stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else ""
            seconds = time.monotonic() - begun
            entry: dict = {
                "name": name,
                "status": status,
                "seconds": round(seconds, 1),
                "command": command[1:],
            }
            entry["result"] = _result(name, work, stdout) if status == "ok" else None
            if status != "ok":
                entry["error"] = (stderr or stdout)[-2000:]
            results.append(entry)
            print(f"gpu.sh: {name}: {status} in {seconds:.0f} s", flush=True)
    report = {
        "benchmark": "gpu",
        "device": args.device,
        "tiny": args.tiny,
        "machine": machine_info(args.device),
        "code": code_version(),
        "seconds": round(time.monotonic() - started, 1),
        "steps": results,
    }
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    failed = [r["name"] for r in results if r["status"] not in ("ok", "skipped")]
    print(
        f"gpu.sh: {len(results) - len(failed)} of {len(results)} steps ok or skipped in "
        f"{report['seconds']:.0f} s; JSON: {args.json}" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
