"""Sweeps: the cartesian product of configuration values, one run directory per point, run in
parallel processes; re-running the same command skips finished points and resumes unfinished ones.

    laser sweep CONFIG [CONFIG ...] [key=value ...] --grid key=v1,v2,... [--grid ...] [--jobs N] [--out DIR]

Grid values are written as on the command line of ``laser run`` (YAML scalars), or as a range:
``logspace:START:STOP:NUM`` (NUM values, log-spaced, both ends included), ``linspace:START:STOP:NUM``
or ``range:[START:]STOP`` (integers, as Python's ``range``).

Layout of the sweep directory::

    DIR/<config name>/<key=value,...>/   one run directory per point (config.yaml, history.jsonl,
                                         summary.json, checkpoint.pt) and run.log, the run's output
    DIR/sweep.json                       every point's status and, for a failed one, its error
    DIR/summary.csv, DIR/energy_to_target.csv   the tables of :mod:`federated.experiments.results`

A point is *done* when its ``summary.json`` says it finished or diverged (a non-finite loss is a
result, not a failure); it is *resumed* from its checkpoint when it has one, and started afresh
otherwise. A point that fails (a value the configuration refuses, a crash) is recorded with its
error and the others go on. Several sweeps may share one directory (e.g. each method's config and
the noiseless reference): the summary reads every run directory under it.

Example:
    >>> for point in expand_grid(["power.energy=10,100", "seed=range:2"]):
    ...     print(point)
    {'power.energy': '10', 'seed': '0'}
    {'power.energy': '10', 'seed': '1'}
    {'power.energy': '100', 'seed': '0'}
    {'power.energy': '100', 'seed': '1'}
    >>> parse_grid("power.energy=logspace:10:1e4:4")
    ('power.energy', ['10', '100', '1000', '10000'])
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import typing
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from federated.config import Config, ConfigError, load_config, same_config
from federated.history import outcome

__all__ = [
    "Point",
    "PointResult",
    "SweepResult",
    "parse_grid",
    "expand_grid",
    "plan_sweep",
    "run_sweep",
    "EXIT_FAILED",
    "EXIT_BAD_INPUT",
]

EXIT_FAILED = 1  # a point failed while running
EXIT_BAD_INPUT = 2  # a point's configuration was refused (or the sweep's own arguments were)
GRID_SYNTAX = (
    "key=v1,v2,... (YAML values), or key=logspace:START:STOP:NUM, key=linspace:START:STOP:NUM, "
    "key=range:[START:]STOP"
)


# ------------------------------------------------------------------------------------ the grid
def _split_values(raw: str) -> list[str]:
    """Split at commas outside brackets, so that a list value ``[3,5]`` stays one value."""
    values, depth, start = [], 0, 0
    for i, char in enumerate(raw):
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(raw[start:i])
            start = i + 1
    values.append(raw[start:])
    return [v.strip() for v in values]


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("--grid", spec, GRID_SYNTAX) from None
    if not math.isfinite(value):
        raise ConfigError("--grid", spec, "finite range ends")
    return value


def _show(value: float) -> str:
    """A float as a short override text: 100.0 -> '100', 0.001 -> '0.001', 31.6227... -> '31.623'."""
    text = f"{value:.5g}"
    return text if "e" not in text else f"{value:.6g}"


def _key_exists(key: str) -> bool:
    """Whether ``key`` (``section.name``) is a leaf of the configuration's schema."""
    cls: type = Config
    *sections, last = key.split(".")
    for part in sections:
        tp = typing.get_type_hints(cls).get(part)
        if tp is None or not dataclasses.is_dataclass(tp):
            return False
        cls = tp
    tp = typing.get_type_hints(cls).get(last)
    return tp is not None and not dataclasses.is_dataclass(tp)


def parse_grid(spec: str) -> tuple[str, list[str]]:
    """``key=values`` -> (key, the values as override texts). Raises ConfigError for bad syntax or
    a key the configuration does not have."""
    key, sep, raw = spec.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise ConfigError("--grid", spec, GRID_SYNTAX)
    if not _key_exists(key):
        raise ConfigError(
            "--grid",
            spec,
            "a configuration key such as power.energy, power.snr_db, compressor.name, seed or optimizer.lr",
        )
    match = re.fullmatch(r"(logspace|linspace|range):(.+)", raw.strip())
    if match is None:
        values = _split_values(raw)
        if not all(values):
            raise ConfigError("--grid", spec, GRID_SYNTAX + " (an empty value between commas)")
    else:
        kind, args = match.group(1), match.group(2).split(":")
        if kind == "range":
            if len(args) not in (1, 2) or not all(re.fullmatch(r"-?\d+", a) for a in args):
                raise ConfigError("--grid", spec, "range:STOP or range:START:STOP with integers")
            values = [str(v) for v in range(*map(int, args))]
        else:
            if len(args) != 3 or not re.fullmatch(r"\d+", args[2]) or int(args[2]) < 1:
                raise ConfigError("--grid", spec, f"{kind}:START:STOP:NUM with NUM an integer >= 1")
            start, stop, num = _number(args[0], spec), _number(args[1], spec), int(args[2])
            if kind == "logspace":
                if start <= 0 or stop <= 0:
                    raise ConfigError("--grid", spec, "logspace ends > 0")
                lo, hi = math.log10(start), math.log10(stop)
                points = [10 ** (lo + (hi - lo) * i / (num - 1)) if num > 1 else start for i in range(num)]
            else:
                points = [start + (stop - start) * i / (num - 1) if num > 1 else start for i in range(num)]
            values = [_show(v) for v in points]
        if not values:
            raise ConfigError("--grid", spec, "a range with at least one value")
    if len(set(values)) != len(values):
        raise ConfigError("--grid", spec, "distinct values")
    return key, values


def expand_grid(specs: list[str]) -> list[dict[str, str]]:
    """The cartesian product of ``--grid`` specs, in the order given (the last key varies fastest)."""
    grid = [parse_grid(spec) for spec in specs]
    keys = [key for key, _ in grid]
    duplicate = next((k for k in keys if keys.count(k) > 1), None)
    if duplicate is not None:
        raise ConfigError("--grid", duplicate, "each key in one --grid only")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values for _, values in grid))]


# ------------------------------------------------------------------------------------ points
@dataclass(frozen=True)
class Point:
    """One run of a sweep: a config file, its overrides (fixed ones, then the grid's), its directory."""

    config_path: Path
    overrides: tuple[str, ...]
    path: Path

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


@dataclass
class PointResult:
    """What became of a point: ``finished``, ``diverged`` (both results), ``failed`` or ``bad_input``."""

    point: Point
    status: str
    skipped: bool = False  # done by an earlier invocation, not run now
    error: str | None = None
    metric: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "bad_input")


@dataclass
class SweepResult:
    results: list[PointResult]
    out: Path

    @property
    def failures(self) -> list[PointResult]:
        return [r for r in self.results if r.failed]

    @property
    def exit_status(self) -> int:
        """0 when every point finished or diverged; 2 when a point's configuration was refused; else 1."""
        if any(r.status == "bad_input" for r in self.results):
            return EXIT_BAD_INPUT
        return EXIT_FAILED if self.failures else 0


def _dirname(values: dict[str, str]) -> str:
    if not values:
        return "run"
    text = ",".join(f"{key}={value}" for key, value in values.items())
    return re.sub(r"[^A-Za-z0-9_.,=+\-\[\]]", "_", text)


def plan_sweep(
    configs: list[str | Path], grid: list[str], out: str | Path, overrides: list[str] = ()
) -> list[Point]:
    """The points of a sweep: every config file times the grid's product.

    Raises ConfigError for a bad grid or a missing config file (nothing is run then).
    """
    combos = expand_grid(list(grid))
    paths = [Path(c) for c in configs]
    for path in paths:
        if not path.is_file():
            raise ConfigError("config", str(path), "an existing YAML file")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ConfigError("config", [str(p) for p in paths], "config files with distinct names")
    fixed = tuple(overrides)
    points = [
        Point(
            path, fixed + tuple(f"{k}={v}" for k, v in combo.items()), Path(out) / path.stem / _dirname(combo)
        )
        for path in paths
        for combo in combos
    ]
    seen: dict[Path, Point] = {}
    for point in points:
        if point.path in seen:
            raise ConfigError(
                "--grid",
                " ".join(grid),
                f"values that name distinct directories (two points would share {point.path})",
            )
        seen[point.path] = point
    return points


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _same_config(path: Path, config: Config) -> bool:
    try:
        stored = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(stored, dict) and same_config(stored, config)


def _state(point: Point) -> tuple[str, Config | None, str | None]:
    """('bad_input', None, error) | ('done', config, status) | ('conflict', config, error) |
    ('resume', config, None) | ('fresh', config, None)."""
    try:
        config = load_config(point.config_path, list(point.overrides))
    except ConfigError as error:
        return "bad_input", None, f"config error: {error}"
    if not (point.path / "config.yaml").is_file():
        return "fresh", config, None
    if not _same_config(point.path, config):
        return (
            "conflict",
            config,
            (f"{point.path} holds a run of another configuration; delete it or sweep into another --out"),
        )
    status = outcome(_read_json(point.path / "summary.json") or {})
    if status is not None:
        return "done", config, status
    if (point.path / "checkpoint.pt").is_file():
        return "resume", config, None
    return "fresh", config, None


def _death_signal():
    """A function for the child between fork and exec that makes the kernel kill it when the sweep
    dies (Linux ``PR_SET_PDEATHSIG``), or None. Looked up here, in the parent: the child must not load
    libraries while other threads of the parent may hold their locks."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)


_DEATH_SIGNAL = _death_signal()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _run_point(
    point: Point,
    mode: str,
    env: dict[str, str],
    children: set,
    stopping: threading.Event,
) -> PointResult:
    """Run (or resume) one point in a child process, its output in ``run.log``; ``children`` holds
    the running processes (so that an interrupted sweep can stop them)."""
    if stopping.is_set():
        return PointResult(point, "failed", error="not started: the sweep was interrupted")
    point.path.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "federated.cli", "run"]
    command += (
        ["--resume", str(point.path)]
        if mode == "resume"
        else [str(point.config_path), *point.overrides, "--out", str(point.path)]
    )
    command.append("--quiet")
    log = point.path / "run.log"
    with open(log, "a") as handle:
        handle.write(
            f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if mode == 'resume' else 'start'}: "
            f"laser run {' '.join(command[4:])}\n"
        )
        handle.flush()
        child = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, preexec_fn=_DEATH_SIGNAL
        )
        children.add(child)
        try:
            code = child.wait()
        finally:
            children.discard(child)
    summary = _read_json(point.path / "summary.json") or {}
    status = outcome(summary)
    if code == 0 and status == "finished":
        return PointResult(point, "finished", metric=_metrics(summary))
    if code == 1 and status == "diverged":
        return PointResult(point, "diverged", error=summary.get("error"))
    status = "bad_input" if code == 2 else "failed"
    return PointResult(point, status, error=f"exit status {code}: {_tail(log) or 'no output'}")


def _metrics(summary: dict) -> dict:
    return {k: summary[k] for k in ("test_accuracy", "test_perplexity") if summary.get(k) is not None}


def _rounds_done(point: Point) -> int:
    try:
        with open(point.path / "history.jsonl", "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def _write_manifest(out: Path, results: dict[Path, PointResult]) -> None:
    manifest = _read_json(out / "sweep.json") or {"points": {}}
    for result in results.values():
        manifest["points"][result.point.name] = {
            "config": str(result.point.config_path),
            "overrides": list(result.point.overrides),
            "status": result.status,
            "error": result.error,
            "log": str(result.point.path / "run.log"),
            **result.metric,
        }
    tmp = out / ".sweep.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out / "sweep.json")


def _lock_directory(out: Path) -> typing.TextIO | None:
    """Hold ``out/.sweep.lock`` for this sweep (an exclusive ``flock``, released when the process ends,
    however it ends), or raise ConfigError naming the sweep that holds it: two sweeps into one
    directory at once could run a point twice into one run directory and lose ``sweep.json``
    entries. Returns the open lock file (keep it open), or None where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    handle = open(out / ".sweep.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (
            errno.EWOULDBLOCK,
            errno.EAGAIN,
            errno.EACCES,
        ):  # no locks here (some NFS, FUSE)
            print(
                f"laser sweep: cannot lock {out} ({error.strerror}); run one sweep into it at a time",
                file=sys.stderr,
            )
            handle.close()
            return None
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            "--out",
            str(out),
            f"a directory no other running laser sweep writes into ({holder} is "
            "sweeping into it: wait for it to end, or sweep into another --out)",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def run_sweep(points: list[Point], out: str | Path, *, jobs: int = 1, progress: bool = True) -> SweepResult:
    """Run every point not done yet, ``jobs`` at a time in child processes (``laser run``).

    Finished and diverged points are skipped; a point with a checkpoint resumes from it. Every
    failure is recorded (``sweep.json``, the point's ``run.log``) and the others go on. One sweep
    at a time writes into ``out`` (a second one is refused with a ConfigError).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock_directory(out)
    try:
        return _run_sweep(points, out, jobs, progress)
    finally:
        if lock is not None:
            lock.close()


def _run_sweep(points: list[Point], out: Path, jobs: int, progress: bool) -> SweepResult:
    from tqdm import tqdm

    results: dict[Path, PointResult] = {}
    todo: list[tuple[Point, str, Config]] = []
    total = done_rounds = 0
    for point in points:
        state, config, detail = _state(point)
        if state == "bad_input" or state == "conflict":
            point.path.mkdir(parents=True, exist_ok=True)
            if state == "bad_input":
                (point.path / "run.log").write_text(detail + "\n")
            results[point.path] = PointResult(
                point, "bad_input" if state == "bad_input" else "failed", error=detail
            )
            continue
        total += config.rounds
        if state == "done":
            summary = _read_json(point.path / "summary.json") or {}
            results[point.path] = PointResult(point, detail, skipped=True, metric=_metrics(summary))
            done_rounds += config.rounds
        else:
            todo.append((point, state, config))
            done_rounds += _rounds_done(point) if state == "resume" else 0
    _write_manifest(out, results)

    env = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // max(1, min(jobs, len(todo) or 1)))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, str(threads))
    bar = tqdm(
        total=total, initial=done_rounds, unit="round", desc="sweep", disable=not progress, dynamic_ncols=True
    )
    counted = {point.path: _rounds_done(point) if state == "resume" else 0 for point, state, _ in todo}
    children: set[subprocess.Popen] = set()
    stopping = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    running: dict[Future, tuple[Point, Config]] = {
        pool.submit(_run_point, point, state, env, children, stopping): (point, config)
        for point, state, config in todo
    }
    try:
        while running:
            time.sleep(0.5)
            for future in [f for f in running if f.done()]:
                point, config = running.pop(future)
                result = future.result()
                results[point.path] = result
                bar.update(config.rounds - counted[point.path])
                counted[point.path] = config.rounds
                _write_manifest(out, {point.path: result})
                if progress:
                    what = ", ".join(f"{k}={v:.4g}" for k, v in result.metric.items()) or result.status
                    bar.write(
                        f"{'failed' if result.failed else 'done'}: {point.name}: "
                        f"{result.error if result.failed else what}"
                    )
            for point, config in running.values():
                now = min(_rounds_done(point), config.rounds)
                if now > counted[point.path]:
                    bar.update(now - counted[point.path])
                    counted[point.path] = now
            bar.set_postfix(
                done=sum(not r.failed for r in results.values()),
                failed=sum(r.failed for r in results.values()),
                running=min(jobs, len(running)),
            )
    except BaseException:  # Ctrl-C (or a crash): stop starting points, stop the running ones
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for child in list(children):
            child.terminate()
        bar.close()
        raise
    pool.shutdown()
    bar.close()
    return SweepResult([results[p.path] for p in points], out)
