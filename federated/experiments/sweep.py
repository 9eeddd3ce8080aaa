"""Sweeps: the cartesian product of configuration values, one run directory per point, run in
parallel processes; re-running the same command skips finished points and resumes unfinished ones.

    laser sweep CONFIG [CONFIG ...] [key=value ...] --grid key=v1,v2,... [--grid ...] [--jobs N] [--out DIR]

Grid values are written as on the command line of ``laser run`` (YAML scalars), or as a range
(:mod:`federated.experiments.plan`).

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
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import typing
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from federated.config import Config, ConfigError, load_config, parse_yaml, same_config
from federated.experiments.launchers import Launcher, Resources, build_launcher
from federated.experiments.plan import Point, plan_sweep
from federated.history import outcome
from federated.outputs import LockHeldError, held_run, hold_lock

# plan_sweep (federated.experiments.plan) and run_sweep are a sweep's two steps
__all__ = ["PointResult", "SweepResult", "plan_sweep", "run_sweep", "EXIT_FAILED", "EXIT_BAD_INPUT"]

EXIT_FAILED = 1  # a point failed while running
EXIT_BAD_INPUT = 2  # a point's configuration was refused (or the sweep's own arguments were)


# ------------------------------------------------------------------------------------ points
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


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _same_config(path: Path, config: Config) -> bool:
    try:
        stored = parse_yaml((path / "config.yaml").read_text(), "config", str(path / "config.yaml"))
    except (OSError, ConfigError, UnicodeDecodeError):
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


def _run_point(point: Point, mode: str, launcher: Launcher, stopping: threading.Event) -> PointResult:
    """Run (or resume) one point through ``launcher`` (a child process here, a Ray task, a Slurm job),
    its output in ``run.log``; its result read from its directory."""
    if stopping.is_set():
        return PointResult(point, "failed", error="not started: the sweep was interrupted")
    point.path.mkdir(parents=True, exist_ok=True)
    args = ["run"]
    args += (
        ["--resume", str(point.path)]
        if mode == "resume"
        else [str(point.config_path), *point.overrides, "--out", str(point.path)]
    )
    if mode == "fresh" and held_run(point.path):
        # an unfinished run of this point's configuration (checked by _state) with no checkpoint yet:
        # the sweep's own, started over from round 0 (the same result)
        args.append("--overwrite")
    args.append("--quiet")
    log = point.path / "run.log"
    with open(log, "a") as handle:
        handle.write(
            f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if mode == 'resume' else 'start'}"
            f"{'' if launcher.name == 'local' else f' ({launcher.name})'}: laser run {' '.join(args[1:])}\n"
        )
    try:
        code = launcher.run(args, log)
    except Exception as error:  # the launcher lost it (a node died, the job was cancelled): this point only
        return PointResult(point, "failed", error=f"{launcher.name}: {type(error).__name__}: {error}")
    summary = _read_json(point.path / "summary.json") or {}
    status = outcome(summary)
    if code == 0 and status == "finished":
        return PointResult(point, "finished", metric=_metrics(summary))
    if code in (0, 1) and status == "diverged":  # exit 1: written before diverged runs exited 0
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
    manifest = _read_json(out / "sweep.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("points"), dict):
        if (out / "sweep.json").exists():  # damaged or foreign: kept aside, a fresh record begun
            aside = out / f"sweep.json.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(out / "sweep.json", aside)
            print(
                f"laser sweep: {out / 'sweep.json'} was not a sweep record; kept as {aside}", file=sys.stderr
            )
        manifest = {"points": {}}
    for result in results.values():
        manifest["points"][result.point.name] = {
            "config": str(result.point.config_path),
            "overrides": list(result.point.overrides),
            "status": result.status,
            "error": result.error,
            "log": str(result.point.path / "run.log"),
            **result.metric,
        }
    tmp = out / f".sweep.json.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, out / "sweep.json")
    finally:
        tmp.unlink(missing_ok=True)


def _lock_directory(out: Path) -> typing.TextIO | None:
    """Hold ``out/.sweep.lock`` for this sweep (an exclusive ``flock``, released when the process ends,
    however it ends: :func:`federated.outputs.hold_lock`, as a run holds its directory), or raise
    ConfigError naming the sweep that holds it: two sweeps into one directory at once could run a
    point twice into one run directory and lose ``sweep.json`` entries. Returns the open lock file
    (keep it open), or None where there are no locks (no ``fcntl``; some NFS, FUSE: said on stderr)."""

    def unsupported(error: OSError) -> None:
        print(
            f"laser sweep: cannot lock {out} ({error.strerror}); run one sweep into it at a time",
            file=sys.stderr,
        )

    try:
        return hold_lock(out / ".sweep.lock", unsupported=unsupported)
    except LockHeldError as error:
        raise ConfigError(
            "--out",
            str(out),
            f"a directory no other running laser sweep writes into ({error.holder} is "
            "sweeping into it: wait for it to end, or sweep into another --out)",
        ) from None


class _Progress:
    """The sweep's progress on ``stream`` (stderr): a tqdm bar of the rounds run when it is a terminal;
    otherwise (a log file, a pipe) one line per tenth of the sweep's rounds, as ``laser run`` does,
    since every redraw of a bar lands in a redirected log as one more line. The tenth line comes
    when every point has ended (a point's last round is written before it ends). A failed point
    gets a line of its own either way; on a terminal every finished point does too.

    >>> import io
    >>> log = io.StringIO()  # not a terminal
    >>> progress = _Progress(total=100, done=0, points=4, stream=log)
    >>> for t in range(100):
    ...     progress.advance(1, done=4 * (t == 99), failed=0, running=4 * (t < 99))
    >>> len(log.getvalue().splitlines())
    10
    """

    def __init__(
        self, total: int, done: int, points: int, *, enabled: bool = True, stream: typing.TextIO | None = None
    ) -> None:
        from tqdm import tqdm

        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = enabled and callable(isatty) and bool(isatty())
        self.total, self.done, self.points = total, done, points
        self.step = max(1, total // 10)  # rounds per line in a log
        self.next_line = (done // self.step + 1) * self.step
        self.ended = False  # the last line (every point ended) is written
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=total,
            initial=done,
            unit="round",
            desc="sweep",
            disable=not self.terminal,
            dynamic_ncols=True,
            file=self.stream,
        )

    def advance(self, rounds: int, *, done: int, failed: int, running: int) -> None:
        """Count ``rounds`` more rounds run; ``done``, ``failed``, ``running``: the points so far."""
        self.done += rounds
        if self.terminal:
            if rounds:
                self.bar.update(rounds)
            self.bar.set_postfix(done=done, failed=failed, running=running)
            return
        ended = running == 0 and self.done >= self.total
        if not self.enabled or self.ended or not (ended or self.next_line <= self.done < self.total):
            return
        self.ended = ended
        self.next_line = (self.done // self.step + 1) * self.step
        print(
            f"sweep: {self.done:,}/{self.total:,} rounds ({100 * self.done / max(1, self.total):.0f}%), "
            f"{done} of {self.points} points done, {failed} failed, {running} running "
            f"({time.perf_counter() - self.started:.0f} s)",
            file=self.stream,
            flush=True,
        )

    def point(self, result: PointResult) -> None:
        """Say that a point ended: on a terminal each one, in a log the failed ones."""
        if not self.enabled or not (self.terminal or result.failed):
            return
        what = ", ".join(f"{k}={v:.4g}" for k, v in result.metric.items()) or result.status
        if result.failed:
            what = f"{result.error}"
        line = f"{'failed' if result.failed else 'done'}: {result.point.name}: {what}"
        if self.terminal:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        self.bar.close()


def run_sweep(
    points: list[Point],
    out: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    launcher: str | Launcher = "local",
    resources: Resources | None = None,
    **launcher_options: Any,
) -> SweepResult:
    """Run every point not done yet, ``jobs`` at a time (``laser run``), each in a child process here
    (``launcher="local"``), a Ray task or a Slurm job (:mod:`federated.experiments.launchers`, with
    ``resources`` and ``launcher_options``: ``address``, ``slurm_cluster``, ``timeout_min``,
    ``partition``).

    Finished and diverged points are skipped; a point with a checkpoint resumes from it. Every
    failure is recorded (``sweep.json``, the point's ``run.log``) and the others go on. One sweep
    at a time writes into ``out`` (a second one is refused with a ConfigError).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock_directory(out)
    try:
        if isinstance(launcher, str):
            launcher = build_launcher(
                launcher, out, resources, death_signal=_DEATH_SIGNAL, **launcher_options
            )
        try:
            return _run_sweep(points, out, jobs, progress, launcher)
        finally:
            launcher.close()
    finally:
        if lock is not None:
            lock.close()


def _run_sweep(points: list[Point], out: Path, jobs: int, progress: bool, launcher: Launcher) -> SweepResult:
    results: dict[Path, PointResult] = {}
    todo: list[tuple[Point, str, Config]] = []
    total = done_rounds = 0
    for point in points:
        state, config, detail = _state(point)
        if state == "bad_input" or state == "conflict":
            assert detail is not None  # _state gives these two states an error text
            point.path.mkdir(parents=True, exist_ok=True)
            if state == "bad_input":
                (point.path / "run.log").write_text(detail + "\n")
            results[point.path] = PointResult(
                point, "bad_input" if state == "bad_input" else "failed", error=detail
            )
            continue
        assert config is not None  # every other state loaded it
        total += config.rounds
        if state == "done":
            assert detail is not None  # the run's status
            summary = _read_json(point.path / "summary.json") or {}
            results[point.path] = PointResult(point, detail, skipped=True, metric=_metrics(summary))
            done_rounds += config.rounds
        else:
            todo.append((point, state, config))
            done_rounds += _rounds_done(point) if state == "resume" else 0
    _write_manifest(out, results)

    # each point sets its torch threads from its own configuration (key threads): the local launcher
    # leaves the environment alone, so a point computes exactly what the same laser run does
    display = _Progress(total, done_rounds, len(points), enabled=progress)
    counted = {point.path: _rounds_done(point) if state == "resume" else 0 for point, state, _ in todo}
    stopping = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    running: dict[Future, tuple[Point, Config]] = {
        pool.submit(_run_point, point, state, launcher, stopping): (point, config)
        for point, state, config in todo
    }
    try:
        while running:
            time.sleep(0.5)
            rounds = 0
            for future in [f for f in running if f.done()]:
                point, config = running.pop(future)
                result = future.result()
                results[point.path] = result
                rounds += config.rounds - counted[point.path]
                counted[point.path] = config.rounds
                _write_manifest(out, {point.path: result})
                display.point(result)
            for point, config in running.values():
                now = min(_rounds_done(point), config.rounds)
                if now > counted[point.path]:
                    rounds += now - counted[point.path]
                    counted[point.path] = now
            display.advance(
                rounds,
                done=sum(not r.failed for r in results.values()),
                failed=sum(r.failed for r in results.values()),
                running=min(jobs, len(running)),
            )
    except BaseException:  # Ctrl-C (or a crash): stop starting points, stop the running ones
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        launcher.cancel()
        display.close()
        raise
    pool.shutdown()
    display.close()
    return SweepResult([results[p.path] for p in points], out)
