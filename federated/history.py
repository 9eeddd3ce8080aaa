"""A run's record: per-round history (JSON lines), the resolved config and ``summary.json``.

Run directory layout::

    DIR/config.yaml      the resolved configuration (every key, defaults included)
    DIR/history.jsonl    one JSON object per round, written as the run goes
    DIR/summary.json     final metrics and totals, written at the end (or when a run fails)
    DIR/partition.json   how the training data is split over the clients (``Task.partition()``:
                         the partition, its parameters, each client's size and, for classification,
                         its samples of each class), written when the run builds its data
    DIR/checkpoint.pt    every ``checkpoint_every`` rounds and at the end: what ``--resume`` needs
                         (with clients split over processes also ``checkpoint.rank<r>.pt`` and each
                         process's previous one, ``checkpoint.prev.pt``, ``checkpoint.rank<r>.prev.pt``,
                         and the other processes' output ``rank<r>.log``)
    DIR/tensorboard/     with ``tensorboard: true``: the history as TensorBoard scalars
    DIR/.run.lock        while a run writes the directory: its lock (:func:`lock_run`), removed at its end

:func:`held_run` lists exactly these files (``.run.lock`` aside), and ``--overwrite`` removes exactly
them: any other file in the directory is the user's and stays (a sweep's ``run.log`` included).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

__all__ = [
    "History",
    "RunDirectory",
    "RunExistsError",
    "RunLockedError",
    "LockHeldError",
    "claim",
    "held_run",
    "hold_lock",
    "lock_run",
    "TensorBoardLog",
    "format_summary",
    "outcome",
]


def outcome(summary: dict) -> str | None:
    """What a run's ``summary.json`` says became of it: ``finished``, ``diverged`` (it stopped on a
    non-finite loss or gradient: a result, e.g. of too little energy), or None (still running,
    killed, or failed otherwise).

    >>> outcome({"status": "finished"}), outcome({"status": "diverged", "error": "round 3: ..."})
    ('finished', 'diverged')
    """
    if not isinstance(summary, dict):
        return None
    status = summary.get("status")
    if status in ("finished", "diverged"):
        return str(status)
    if status == "failed" and "not finite" in str(summary.get("error", "")):  # written before "diverged"
        return "diverged"
    return None


def _jsonable(value: object) -> object:
    """JSON has no inf/NaN: write them as the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class History:
    """Per-round records (dicts) and the run's summary."""

    rounds: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def evaluations(self, metric: str = "test_accuracy") -> list[dict]:
        """The records that hold a test evaluation of ``metric``."""
        return [r for r in self.rounds if metric in r]

    def summarize(self, metric: str = "test_accuracy", **extra: object) -> dict:
        """Final metrics (last evaluation, of the EMA weights too where there is one), the best
        evaluation (highest accuracy, lowest perplexity), and energy / channel-use totals."""
        evals = self.evaluations(metric)
        last = evals[-1] if evals else {}
        best = min if metric == "test_perplexity" else max
        self.summary = {
            "rounds": len(self.rounds),
            metric: last.get(metric),
            "test_loss": last.get("test_loss"),
            f"best_{metric}": best((e[metric] for e in evals), default=None),
        }
        if f"ema_{metric}" in last:
            self.summary.update(
                {
                    f"ema_{metric}": last[f"ema_{metric}"],
                    f"best_ema_{metric}": best(e[f"ema_{metric}"] for e in evals),
                }
            )
        self.summary.update(
            {
                "train_loss": _mean_tail([r["train_loss"] for r in self.rounds]),
                "energy_per_client_total": sum(r["energy_max"] for r in self.rounds),
                "energy_per_client_mean_total": sum(r["energy_mean"] for r in self.rounds),
                "channel_uses_total": sum(r["channel_uses"] for r in self.rounds),
                "noise_var_mean": _mean_tail([r["noise_var_mean"] for r in self.rounds], tail=None),
                "active_clients_mean": _mean_tail([r["active_clients"] for r in self.rounds], tail=None),
            }
        )
        if self.rounds and "bits_mean" in self.rounds[0]:  # digital compressors
            self.summary["bits_per_client_mean"] = _mean_tail(
                [r["bits_mean"] for r in self.rounds], tail=None
            )
        self.summary.update(extra)
        return self.summary


def _mean_tail(values: list[float], tail: int | None = 10) -> float | None:
    values = values if tail is None else values[-tail:]
    return sum(values) / len(values) if values else None


def _write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file renamed over it; the temporary file is removed
    if the write fails (a full disk), and the error names ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


class RunExistsError(FileExistsError):
    """A run directory that already holds a run (its results are never overwritten silently)."""


class RunLockedError(RunExistsError):
    """A run directory that another live process is writing (it holds the directory's lock)."""


class LockHeldError(Exception):
    """Another live process holds the lock file ``path``; ``holder`` is what it wrote into it
    (``pid N``, or ``another process`` while it has not yet)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is locked by {holder}")
        self.path, self.holder = path, holder


def hold_lock(path: Path, *, unsupported: Callable[[OSError], None]) -> TextIO | None:
    """Hold an exclusive ``flock`` on the file ``path`` (created if missing) and write ``pid N``
    (this process) into it; raise :class:`LockHeldError` if another live process holds it.

    Returns the open file: the lock lasts while it is open and ends when it is closed or the process
    ends, however it ends (a killed holder leaves no stale lock). Returns None where there are no
    locks: without ``fcntl`` (not POSIX), or where ``flock`` fails otherwise than on a held lock
    (some NFS and FUSE file systems), after calling ``unsupported`` with that error.

    A holder may remove the file before it lets go (:func:`lock_run` does, leaving no clutter), so
    a lock taken on a file that is no longer at ``path`` is let go and taken again on the new one.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    for _ in range(100):  # each retry follows a holder that removed the file: a handful at most
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeldError(path, holder) from None
            unsupported(error)  # no locks on this file system
            return None
        try:
            mine = os.fstat(handle.fileno()), os.stat(path)
            same = (mine[0].st_dev, mine[0].st_ino) == (mine[1].st_dev, mine[1].st_ino)
        except FileNotFoundError:
            same = False
        if same:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            return handle
        handle.close()  # its holder removed it as we took it: take the one at path now
    raise OSError(errno.EAGAIN, "the lock file keeps being replaced", str(path))


RUN_LOCK = ".run.lock"  # in a run directory, while a run writes it (lock_run)
# set by `laser run --nproc N` for the processes it starts: it holds the lock of the run directory
# named here for them (federated.train locks only directories it owns)
RUN_LOCK_HELD = "LASER_RUN_LOCK_HELD"


@contextlib.contextmanager
def lock_run(path: str | Path) -> Iterator[None]:
    """Hold the run directory ``path`` (``path/.run.lock``, created with the directory if missing)
    for the block: two runs writing one directory at once would leave it holding a mix of both.
    Raises :class:`RunLockedError` naming the directory while another live process holds it.

    At the end the lock file is removed, and so is the directory if this call created it and it is
    still empty (a run refused or failed before writing anything leaves nothing behind). Where
    locking is unsupported (see :func:`hold_lock`) the run goes on unlocked, saying so on stderr.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "run"
        >>> with lock_run(out):
        ...     try:
        ...         with lock_run(out):  # a second run into it
        ...             pass
        ...     except RunLockedError as error:
        ...         print(str(error).replace(str(out), "DIR"))
        DIR is being written by another run (pid ...): wait for it to end, or write to another --out
        >>> out.exists()  # created for the run, left empty: removed
        False
    """
    path = Path(path)
    created = not path.exists()

    def unsupported(error: OSError) -> None:
        print(
            f"laser run: cannot lock {path} ({error.strerror}); start one run into it at a time",
            file=sys.stderr,
        )

    try:
        handle = hold_lock(path / RUN_LOCK, unsupported=unsupported)
    except LockHeldError as error:
        raise RunLockedError(
            f"{path} is being written by another run ({error.holder}): wait for it to end, or write to "
            "another --out"
        ) from None
    try:
        yield
    finally:
        if handle is not None:
            (path / RUN_LOCK).unlink(missing_ok=True)  # before letting go (see hold_lock)
            handle.close()
        if created:
            with contextlib.suppress(OSError):  # not empty (the run wrote it), or gone: nothing to do
                path.rmdir()


RUN_FILES = ("config.yaml", "history.jsonl", "summary.json", "partition.json", "checkpoint.pt")
# what a run writes into its directory: RUN_FILES; each process's checkpoint and its previous one
# (federated.checkpoint.checkpoint_name, previous_checkpoint); a multi-process run's other processes'
# output (federated.distributed.launch)
_RUN_FILE = re.compile(
    r"config\.yaml|history\.jsonl|summary\.json|partition\.json"
    r"|checkpoint(\.rank[1-9][0-9]*)?(\.prev)?\.pt|rank[1-9][0-9]*\.log"
)
# an atomic write's temporary file (``.NAME.PID.tmp``), left behind only by a kill in mid-write
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9]+\.tmp")
TENSORBOARD = "tensorboard"  # TensorBoardLog's directory: its event files are the run's
_EVENTS = "events.out.tfevents."


def _written_by_a_run(name: str) -> bool:
    temporary = _TEMPORARY.fullmatch(name)
    return _RUN_FILE.fullmatch(temporary["name"] if temporary else name) is not None


def held_run(path: str | Path) -> list[str]:
    """The files of a run that ``path`` holds (empty: no run there), as paths relative to it:
    everything a run writes (the module's list) and nothing else, so a user's own files (a
    ``checkpoint.mine.pt``, notes, a sweep's ``run.log``) and the lock file neither make a directory
    a run's nor are removed with one. The main files come first, then the rest sorted.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> for name in ("checkpoint.pt", "checkpoint.rank1.prev.pt", "checkpoint.mine.pt", ".run.lock"):
    ...     (out / name).touch()
    >>> held_run(out)
    ['checkpoint.pt', 'checkpoint.rank1.prev.pt']
    """
    path = Path(path)
    if not path.is_dir():
        return []
    names = {p.name for p in path.iterdir() if p.is_file() and _written_by_a_run(p.name)}
    board = path / TENSORBOARD
    if board.is_dir():
        names |= {
            f"{TENSORBOARD}/{p.name}" for p in board.iterdir() if p.is_file() and p.name.startswith(_EVENTS)
        }
    return [name for name in RUN_FILES if name in names] + sorted(names - set(RUN_FILES))


def claim(path: str | Path, *, overwrite: bool = False) -> list[str]:
    """Make ``path`` ready for a new run: refuse (RunExistsError, naming every file of the run) if it
    holds one, unless ``overwrite``, which removes exactly those files (:func:`held_run`: checkpoints
    included, so no later ``--resume`` continues the old run; an emptied ``tensorboard/`` too).
    Returns the files removed. Call it holding the directory (:func:`lock_run`)."""
    path = Path(path)
    held = held_run(path)
    if held and not overwrite:
        raise RunExistsError(
            f"{path} already holds a run ({', '.join(held)}): continue it with `laser run --resume "
            f"{path}`, write to another --out, or replace it with --overwrite"
        )
    for name in held:
        (path / name).unlink(missing_ok=True)
    if any(name.startswith(f"{TENSORBOARD}/") for name in held):
        with contextlib.suppress(OSError):  # the user's files in it: kept, and it with them
            (path / TENSORBOARD).rmdir()
    return held


class RunDirectory:
    """Writes a run as it goes: config first, one history line per round, the summary last."""

    def __init__(self, path: str | Path, config: dict | None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            (self.path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (self.path / "summary.json").unlink(missing_ok=True)
        self._history = open(self.path / "history.jsonl", "a" if config is None else "w")

    @classmethod
    def reopen(cls, path: str | Path, rounds: list[dict]) -> RunDirectory:
        """A resumed run: the history file is rewritten (atomically) to the checkpoint's ``rounds``,
        dropping rounds logged after it, then appended to."""
        path = Path(path)
        _write_atomically(path / "history.jsonl", "".join(json.dumps(_jsonable(r)) + "\n" for r in rounds))
        return cls(path, None)

    def append(self, record: dict) -> None:
        self._history.write(json.dumps(_jsonable(record)) + "\n")
        self._history.flush()

    def write_partition(self, table: dict) -> Path:
        """Write ``DIR/partition.json`` (indent 2; atomically): ``table`` is the task's
        :meth:`~federated.data.tasks.Task.partition`. Returns its path."""
        path = self.path / "partition.json"
        _write_atomically(path, json.dumps(_jsonable(table), indent=2) + "\n")
        return path

    def finish(self, summary: dict) -> None:
        self._history.close()
        _write_atomically(self.path / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")


class TensorBoardLog:
    """Writes each round's numbers as TensorBoard scalars, at step ``round + 1`` (rounds done),
    tagged by group: ``train/train_loss``, ``test/test_accuracy``, ``channel/energy_max``, ``optim/lr``.

    ``purge_step`` (a resumed run: the checkpoint's rounds + 1) makes TensorBoard drop the steps
    from there on that an earlier, killed writer logged, so that every step has one value (a fresh
    run: 1, dropping an earlier run's in the same directory). TensorBoard keeps scalars as float32.
    """

    def __init__(self, path: str | Path, purge_step: int | None = None) -> None:
        # imported here: tensorboard is an optional extra
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(path), purge_step=purge_step)

    @staticmethod
    def tag(key: str) -> str:
        """The scalar's name: the record's key under its group.

        >>> [TensorBoardLog.tag(k) for k in ("train_loss", "ema_test_loss", "noise_var_mean", "lr")]
        ['train/train_loss', 'test/ema_test_loss', 'channel/noise_var_mean', 'optim/lr']
        """
        if key.startswith(("test_", "ema_test_")):
            return f"test/{key}"
        if key.startswith("train_"):
            return f"train/{key}"
        if key.startswith(("energy_", "noise_", "channel_", "active_clients", "bits_")):
            return f"channel/{key}"
        return "optim/lr" if key == "lr" else f"other/{key}"

    def append(self, record: dict) -> None:
        step = record["round"] + 1
        for key, value in record.items():
            if (
                key != "round"
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                self._writer.add_scalar(self.tag(key), value, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# summary.json's keys as the end-of-run table names them: what each number is, and whether per round or
# over the run. The keys ending in _total hold sums over rounds; the table shows each such number per
# round (the mean over rounds, as its name says) and its total (what the key holds). docs/outputs.md
# documents every key; `laser run --help` lists them.
SUMMARY_FIELDS: dict[str, str] = {
    "rounds": "rounds run",
    "test_accuracy": "test accuracy, last evaluation",
    "best_test_accuracy": "test accuracy, best evaluation",
    "ema_test_accuracy": "EMA weights' test accuracy, last evaluation",
    "best_ema_test_accuracy": "EMA weights' test accuracy, best evaluation",
    "test_perplexity": "test perplexity, last evaluation",
    "best_test_perplexity": "test perplexity, best evaluation",
    "ema_test_perplexity": "EMA weights' test perplexity, last evaluation",
    "best_ema_test_perplexity": "EMA weights' test perplexity, best evaluation",
    "test_loss": "test loss, last evaluation",
    "train_loss": "training loss, mean of the last 10 rounds",
    "energy_per_client_total": "energy per round, highest-spending client",
    "energy_per_client_mean_total": "energy per round, mean over clients",
    "channel_uses_total": "real channel uses per round",
    "noise_var_mean": "noise variance per decoded entry, mean over rounds",
    "active_clients_mean": "clients heard per round, mean over rounds",
    "bits_per_client_mean": "bits per client per round, mean over rounds",
    "participation": "rounds each client took part in",
    "resumed_from_round": "resumed from round",
    "status": "status",
    "error": "why it stopped",
    "wall_time_s": "wall time of the rounds",
    "cpu_isa": "kernels' CPU instruction set (cpu_isa pin)",
    "environment": "torch, CPU, kernel fingerprint (summary.json only)",
}
# The energies' unit in the normalised mode (docs/physics.md, section 1): E counts the noise energy of
# one real channel use, so with noise_var 1 it is the LASER paper's power P. Joules need a physical
# noise power, which this mode does not have.
ENERGY_UNIT = "noise_var units"
ENERGY_NOTE = (
    "energy: in units of the channel's noise_var per real channel use (E = 100 is 100 times the noise "
    "energy of one real use; with noise_var 1, the LASER paper's power P)"
)
# each number's unit in the table (keys left out: counts, ratios and texts)
SUMMARY_UNITS: dict[str, str] = {
    **dict.fromkeys(
        ("test_accuracy", "best_test_accuracy", "ema_test_accuracy", "best_ema_test_accuracy"), "fraction"
    ),
    **dict.fromkeys(("test_loss", "train_loss"), "nats"),
    "energy_per_client_total": ENERGY_UNIT,
    "energy_per_client_mean_total": ENERGY_UNIT,
    "channel_uses_total": "real uses",
    "noise_var_mean": "(decoded value)^2",
    "active_clients_mean": "clients",
    "bits_per_client_mean": "bits",
    "participation": "rounds",
    "wall_time_s": "s",
}
PER_ROUND = ("energy_per_client_total", "energy_per_client_mean_total", "channel_uses_total")
ENERGY = ("energy_per_client_total", "energy_per_client_mean_total")


def _show(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = str(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"


def _show_large(value: float) -> str:
    """A count or energy per round or over rounds: whole numbers with thousands separators from 1,000
    on (2,024 channel uses, not 2024.0; a total of 52,402, not 5.24e+04)."""
    if isinstance(value, (int, float)) and math.isfinite(value) and 1_000 <= abs(value) < 1e15:
        return f"{value:,.0f}"
    return _show(value)


def _alternating_uses(rounds: list[dict] | None) -> str | None:
    """For a method that alternates what it sends (LASER's factors, one side a round), the channel
    uses of even and of odd rounds; None where every round is alike or they vary otherwise."""
    parity: dict[int, set[int]] = {0: set(), 1: set()}
    for r in rounds or []:
        if "channel_uses" in r and "round" in r:
            parity[r["round"] % 2].add(r["channel_uses"])
    if len(parity[0]) == len(parity[1]) == 1 and parity[0] != parity[1]:
        (even,), (odd,) = parity[0], parity[1]
        return f"{even:,} / {odd:,} (even / odd rounds)"
    return None


def _alignment_note(summary: dict, budget: float | None) -> str | None:
    """Why the highest-spending client spent less than its budget, where it did: the alignment rule
    (docs/physics.md, section 4). None where it spent the whole budget or the numbers are missing."""
    busiest, count = summary.get("energy_per_client_total"), summary.get("rounds")
    if budget is None or not isinstance(busiest, (int, float)) or not count:
        return None
    spent = busiest / count
    if not (math.isfinite(budget) and budget > 0 and math.isfinite(spent)) or spent >= budget * (1 - 1e-6):
        return None
    return (
        f"under budget: the highest-spending client spent {_show(spent)} of its {_show(budget)} per round. "
        "The alignment rule scales each block to its weakest link (the client of the largest norm / gain), "
        "which alone spends its whole share of the budget: a client spends all of it only in a round where "
        "it is the weakest link of every block (docs/physics.md, section 4)."
    )


def format_summary(
    summary: dict, rounds: list[dict] | None = None, *, noiseless: bool = False, budget: float | None = None
) -> str:
    """The end-of-run table: what each number is, its value, its unit and its key in ``summary.json``;
    then lines on the energy unit, on channel uses that alternate between rounds, and (given the
    clients' ``budget``: ``power.energy`` of an analog method with equal budgets) on why the
    highest-spending client spent less than it.

    A key ending in ``_total`` holds a sum over rounds: its row is named per round and shows the mean
    per round with the total beside it, so that the value reads as its name says and the key as it is
    stored. ``rounds`` (the history's records) tells alternating channel uses apart (LASER's even /
    odd factors); a ``noiseless`` run shows no energy (it transmits none).

    >>> print(format_summary({"test_accuracy": 0.9123, "rounds": 3, "channel_uses_total": 30}))
    quantity                        value          unit       summary.json key
    ------------------------------  -------------  ---------  ------------------
    test accuracy, last evaluation  0.9123         fraction   test_accuracy
    rounds run                      3                         rounds
    real channel uses per round     10 (total 30)  real uses  channel_uses_total
    """
    count = summary.get("rounds")
    rows = []
    for key, value in summary.items():
        if value is None or (noiseless and key in ENERGY) or isinstance(value, dict):  # (environment)
            continue
        shown = _show(value)
        if key in PER_ROUND and isinstance(value, (int, float)) and not isinstance(value, bool) and count:
            shown = f"{_show_large(value / count)} (total {_show_large(value)})"
        rows.append((SUMMARY_FIELDS.get(key, key), shown, SUMMARY_UNITS.get(key, ""), key))
    header = ("quantity", "value", "unit", "summary.json key")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    notes = [ENERGY_NOTE] if any(row[3] in ENERGY for row in rows) else []
    if "channel_uses_total" in summary and (alternating := _alternating_uses(rounds)) is not None:
        notes.append(
            f"channel uses: {alternating}; the method alternates what it sends (LASER: one factor a round, "
            "its sides in turn), and the table shows their mean"
        )
    if not noiseless and (alignment := _alignment_note(summary, budget)) is not None:
        notes.append(alignment)
    if notes:
        lines.append("")
        lines += [textwrap.fill(note, 100, subsequent_indent="  ") for note in notes]
    return "\n".join(lines)
