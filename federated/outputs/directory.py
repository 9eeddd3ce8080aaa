"""A run's directory: claimed for a run (refused where another run's files are), locked while the
run writes it, written as the run goes.

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
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from federated.outputs.locks import LockHeldError, hold_lock

__all__ = [
    "RUN_FILES",
    "RUN_LOCK",
    "RUN_LOCK_HELD",
    "TENSORBOARD",
    "RunDirectory",
    "RunExistsError",
    "RunLockedError",
    "claim",
    "held_run",
    "jsonable",
    "lock_run",
    "write_config_once",
]


class RunExistsError(FileExistsError):
    """A run directory that already holds a run (its results are never overwritten silently)."""


class RunLockedError(RunExistsError):
    """A run directory that another live process is writing (it holds the directory's lock)."""


def jsonable(value: object) -> object:
    """JSON has no inf/NaN: write them as the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


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


def write_config_once(path: str | Path, config: dict) -> bool:
    """``path/config.yaml`` (atomically) if ``path`` has none; whether it wrote it. A process of a
    run over several nodes whose ``--out`` is its own (not the main process's) keeps there, beside its
    checkpoints, what ``laser run --resume`` reads first."""
    target = Path(path) / "config.yaml"
    if target.is_file():
        return False
    _write_atomically(target, yaml.safe_dump(config, sort_keys=False))
    return True


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
        _write_atomically(path / "history.jsonl", "".join(json.dumps(jsonable(r)) + "\n" for r in rounds))
        return cls(path, None)

    def append(self, record: dict) -> None:
        self._history.write(json.dumps(jsonable(record)) + "\n")
        self._history.flush()

    def write_partition(self, table: dict) -> Path:
        """Write ``DIR/partition.json`` (indent 2; atomically): ``table`` is the task's
        :meth:`~federated.data.tasks.Task.partition`. Returns its path."""
        path = self.path / "partition.json"
        _write_atomically(path, json.dumps(jsonable(table), indent=2) + "\n")
        return path

    def finish(self, summary: dict) -> None:
        self._history.close()
        _write_atomically(self.path / "summary.json", json.dumps(jsonable(summary), indent=2) + "\n")
