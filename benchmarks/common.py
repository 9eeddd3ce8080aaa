"""Shared helpers of the benchmark scripts: command line, machine description, interleaved timing
(warm-up, then the median over repeats), a plain-text table and the JSON result.

The machines these run on are small and shared (two cores, other jobs), so every comparison is
made inside one process: the cases are timed in turns (round-robin, a different order each
repeat), and what a script reports is each case's median and the ratio of two medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "parse_args",
    "machine_info",
    "time_interleaved",
    "summarize",
    "print_table",
    "emit",
    "code_version",
    "REPO",
]

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(REPO))


def parse_args(
    description: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """``--quick`` (a short run for CI smoke tests), ``--json PATH`` (also write the result there) and
    ``--threads N`` (torch's intra-op threads; on a busy machine with few cores, 1 can be many times
    faster than 2 for small tensors, since waiting threads spin)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (well under 20 s) for smoke tests")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON result to PATH")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch.set_num_threads(N) before timing (default: torch's own choice)",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    return args


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict[str, object]:
    """CPU model, cores (all, and those this process may use), load, Python, torch and its threads."""
    import torch

    info: dict[str, object] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        info["loadavg_1m_at_start"] = float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        pass
    return info


def time_interleaved(
    cases: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 2,
    setups: Mapping[str, Callable[[], object]] | None = None,
    sync: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each case, ``repeats`` times, the cases taking turns.

    Every case first runs ``warmup`` untimed calls (in turns too). Then, each repeat, every case
    runs once, in an order rotated by one per repeat so that no case always follows the same one;
    ``setups[name]`` (if given) runs untimed just before the case's call (to restore inputs a
    case overwrites), and ``sync`` (e.g. ``torch.cuda.synchronize``) runs inside the timed span
    after the call. The garbage collector is off while timing.
    """
    names = list(cases)
    setups = setups or {}
    times: dict[str, list[float]] = {name: [] for name in names}
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i in range(warmup + repeats):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                if name in setups:
                    setups[name]()
                start = time.perf_counter()
                cases[name]()
                if sync is not None:
                    sync()
                elapsed = time.perf_counter() - start
                if i >= warmup:
                    times[name].append(elapsed)
    finally:
        if enabled:
            gc.enable()
    return times


def summarize(samples: Sequence[float], scale: float = 1e3) -> dict[str, float]:
    """Median, first and third quartile and minimum of ``samples`` times ``scale`` (default: ms)."""
    s = sorted(x * scale for x in samples)
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    return {"median": statistics.median(s), "q1": q1, "q3": q3, "min": s[0], "n": len(s)}


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e5:
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return f"{value:.3g}"
    return "" if value is None else str(value)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None, file=None
) -> None:
    """A plain-text table, columns right-aligned except the first."""
    file = file or sys.stdout
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(headers))]
    if title:
        print(f"\n{title}", file=file)
    for n, row in enumerate(cells):
        print(
            "  ".join(v.ljust(w) if c == 0 else v.rjust(w) for c, (v, w) in enumerate(zip(row, widths))),
            file=file,
        )
        if n == 0:
            print("  ".join("-" * w for w in widths), file=file)
    file.flush()


def process_memory(field: str) -> int:
    """This process's ``/proc/self/status`` field in bytes: ``VmRSS:`` (resident now) or ``VmHWM:``
    (the peak resident set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise ValueError(f"/proc/self/status has no {field}")


def run_child(code: str, *args: str, what: str) -> dict:
    """Run ``code`` (a Python program) in a fresh process with ``args``, the repository and this
    folder importable (so it may ``from common import process_memory``), and return the JSON object
    it printed last; RuntimeError naming ``what`` with its stderr if it failed. What a benchmark
    that needs a fresh process per point (its peak memory, its set-up) measures with."""
    path = os.pathsep.join([str(REPO), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what}: the measuring process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def code_version() -> dict[str, object]:
    """The commit the code is at and the code files that differ from it (what a published number was
    measured with: ``docs/tables.py`` shows it under the table); ``None`` outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--",
                "channels",
                "laser",
                "federated",
                "benchmarks",
                "pyproject.toml",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": []}
    return {"commit": head, "dirty": sorted(line[3:] for line in changed)}


def emit(result: Mapping[str, object], json_path: str | None) -> None:
    """Print the JSON result (the last line block of stdout) and write it to ``json_path`` if given,
    with the command that made it and the code's commit (:func:`code_version`) added."""
    result = {
        **result,
        "command": " ".join(["python", *[shlex.quote(a) for a in sys.argv]]),
        "code": code_version(),
    }
    text = json.dumps(result, indent=2, sort_keys=False)
    print("\nJSON:")
    print(text, flush=True)
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
