"""Checkpoint files: atomic writes, safe reads, names and rotation, and the checks of a state read
back (a resumed run reaches the identical result). What a checkpoint holds is the simulation's business
(:meth:`federated.simulation.Simulation.state_dict`); this module sees only plain dicts.

A checkpoint is one ``torch.save`` file of plain containers (dicts, lists, numbers, strings) and
tensors, so it loads with ``torch.load(..., weights_only=True)``: no arbitrary object is ever
unpickled. It is written to a temporary file in the same directory, flushed to disk and renamed over
the previous one, so a kill during a write leaves the last good checkpoint in place.

With the clients split over processes, each process writes its own (:func:`checkpoint_name`) and
keeps the one before (:func:`previous_checkpoint`); :func:`resume_state` reads each process's state
of the newest round every process saved.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "checkpoint.pt"
    >>> save_checkpoint(path, {"round": 3, "weights": torch.ones(2)})
    >>> load_checkpoint(path, "cpu")["round"]
    3
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from channels.processes import Processes

__all__ = [
    "CHECKPOINT",
    "save_checkpoint",
    "load_checkpoint",
    "verify_checkpoint",
    "CheckpointError",
    "Processes",
    "checkpoint_name",
    "previous_checkpoint",
    "rotate",
    "sharded_checkpoint",
    "check_state",
    "check_by_index",
    "resume_state",
]

CHECKPOINT = "checkpoint.pt"  # its name inside a run directory


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or from another configuration or format."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _not_a_file(path: Path) -> bool:
    """Whether something is at ``path`` that is not a regular file (a directory, a dangling link)."""
    return (path.exists() or path.is_symlink()) and not path.is_file()


def verify_checkpoint(path: str | Path) -> None:
    """Check that ``path`` is a regular file whose zip entries all pass their CRC-32 (``torch.save``
    writes a zip archive with a checksum per entry, which ``torch.load`` does not check: a flipped
    byte inside a tensor would load as a valid state). Reads the file once; CheckpointError if not."""
    path = Path(path)
    if _not_a_file(path):
        raise CheckpointError(f"{path} is not a regular file (a directory or a dangling link): remove it")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CheckpointError(
            f"cannot read the checkpoint {path}: not a torch.save archive ({error})"
        ) from None
    if damaged is not None:
        raise CheckpointError(f"the checkpoint {path} is damaged: its entry {damaged} fails its CRC-32 check")


def load_checkpoint(path: str | Path, device: torch.device | str) -> dict:
    """Read a checkpoint with tensors on ``device``, without unpickling arbitrary objects, after
    :func:`verify_checkpoint`."""
    verify_checkpoint(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # a foreign pickle: say which, do not crash
        raise CheckpointError(f"cannot read the checkpoint {path}: {error}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"the checkpoint {path} holds a {type(state).__name__}, not a run's state")
    return state


def checkpoint_name(rank: int = 0) -> str:
    """``checkpoint.pt``; with clients split over processes, process r > 0 writes ``checkpoint.rank<r>.pt``.

    >>> checkpoint_name(), checkpoint_name(1)
    ('checkpoint.pt', 'checkpoint.rank1.pt')
    """
    return CHECKPOINT if rank == 0 else f"checkpoint.rank{rank}.pt"


def previous_checkpoint(path: Path) -> Path:
    """Where a process of a multi-process run keeps its checkpoint before the newest one
    (``checkpoint.prev.pt``, ``checkpoint.rank1.prev.pt``): the processes write theirs one after
    another, so a run killed in between resumes from the last round every process saved."""
    return path.with_name(path.name.removesuffix(".pt") + ".prev.pt")


def rotate(path: Path) -> None:
    """Before a multi-process run's save: the newest checkpoint becomes the previous one."""
    if path.is_file():
        os.replace(path, previous_checkpoint(path))


_UNREADABLE = -2


def _checkpoint_info(path: Path) -> tuple[int, int]:
    """``(round, processes that wrote it)`` of a checkpoint: ``(-1, -1)`` if there is none,
    ``(-2, -2)`` if it cannot be read (checkpoints are written atomically, so that is not a kill but
    a permission, disk or version problem, to report, not to start over from). Reads the file
    memory-mapped, so a large model's weights are not loaded to learn it."""
    if _not_a_file(path):
        return _UNREADABLE, _UNREADABLE
    if not path.is_file():
        return -1, -1
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state.get("round", -1)), int(state.get("world", 1))
    except Exception:
        return _UNREADABLE, _UNREADABLE


def sharded_checkpoint(processes: Processes, out_dir: Path) -> Path | None:
    """The checkpoint this process resumes from: of the newest round that every process saved
    (its newest or the one before), the same decision on every process. None: start over.

    A process resuming from its previous checkpoint makes it its newest again: the newer one is of
    a round not every process saved, and must not be rotated into the "previous" place by the next
    save (a second kill would then leave the processes without a round in common)."""
    path = out_dir / checkpoint_name(processes.rank)
    candidates = [path, previous_checkpoint(path)]
    info = [_checkpoint_info(p) for p in candidates]
    world = processes.world
    every = processes.per_process(torch.tensor([x for pair in info for x in pair])).reshape(world, 2, 2)
    unreadable = (every[:, :, 0] == _UNREADABLE).nonzero().tolist()
    if unreadable:
        rank, which = unreadable[0]
        name = out_dir / checkpoint_name(rank)
        raise CheckpointError(f"cannot read the checkpoint {previous_checkpoint(name) if which else name}")
    worlds = {w for w in every[:, :, 1].flatten().tolist() if w != -1}
    if worlds - {world}:
        raise CheckpointError(
            f"{out_dir} holds checkpoints written by {max(worlds - {world})} process(es): "
            f"resume it with --nproc {max(worlds - {world})}"
        )
    rounds = every[:, :, 0]  # [world, newest / before]
    target = int(rounds.max(1).values.min())
    if target < 0:
        return None  # some process never saved one: start over, same result
    if not bool((rounds == target).any(1).all()):
        raise CheckpointError(
            f"the processes' checkpoints in {out_dir} have no round in common "
            f"({rounds.tolist()}): start the run again"
        )
    chosen = candidates[[r for r, _ in info].index(target)]
    if chosen != path:
        os.replace(chosen, path)
    return path


def _mismatch(stored: object, reference: object, where: str) -> str | None:
    """Where ``stored`` does not have the layout of ``reference`` (a freshly built state): a tensor
    of another shape or dtype, a missing key, a list of another length, another kind of value.
    ``None`` in the reference, and empty containers, accept anything (memories created on first use,
    optimizer states that fill up, the history)."""
    if reference is None:
        return None
    if isinstance(reference, Tensor):
        if not isinstance(stored, Tensor):
            return f"{where} is a {type(stored).__name__}, expected a tensor"
        if stored.shape != reference.shape or stored.dtype != reference.dtype:
            return (
                f"{where} is a {stored.dtype} tensor of shape {tuple(stored.shape)}, expected "
                f"{reference.dtype} {tuple(reference.shape)}"
            )
        return None
    if isinstance(reference, dict):
        if not isinstance(stored, dict):
            return f"{where} is a {type(stored).__name__}, expected a mapping"
        for key, value in reference.items():
            if key not in stored:
                return f"{where} lacks {key!r}"
            problem = _mismatch(stored[key], value, f"{where}[{key!r}]")
            if problem is not None:
                return problem
        return None
    if isinstance(reference, (list, tuple)):
        if not isinstance(stored, (list, tuple)):
            return f"{where} is a {type(stored).__name__}, expected a list"
        if reference and len(stored) != len(reference):
            return f"{where} holds {len(stored)} entries, expected {len(reference)}"
        for i, (a, b) in enumerate(zip(stored, reference)):
            problem = _mismatch(a, b, f"{where}[{i}]")
            if problem is not None:
                return problem
        return None
    numbers = (int, float)
    if isinstance(reference, bool) != isinstance(stored, bool) or (
        isinstance(reference, numbers) and not isinstance(stored, numbers)
    ):
        return f"{where} is {type(stored).__name__}, expected {type(reference).__name__}"
    return None


def check_state(
    state: object,
    path: Path,
    *,
    format: int,
    config_matches: Callable[[dict], bool],
    reference: dict | None = None,
    rounds: int | None = None,
) -> dict:
    """``state`` if it is a dict of layout ``format`` whose ``config`` ``config_matches``, shaped like
    ``reference`` (a freshly built run's state: keys, tensor shapes and dtypes), whose ``round`` is in
    0..``rounds`` with one history record per round done (when it holds the history); else
    CheckpointError naming ``path`` and what is wrong."""
    if not isinstance(state, dict) or state.get("format") != format:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} has format {found!r}; this version reads {format}")
    if not isinstance(state.get("config"), dict) or not config_matches(state["config"]):
        raise CheckpointError(f"{path} was written by another configuration than this run's")
    round_ = state.get("round")
    if (
        isinstance(round_, bool)
        or not isinstance(round_, int)
        or round_ < 0
        or (rounds is not None and round_ > rounds)
    ):
        raise CheckpointError(f"{path} is at round {round_!r}; a checkpoint of this run is at 0..{rounds}")
    history = state.get("history")
    if not isinstance(history, list) or (history and len(history) != round_):
        count = len(history) if isinstance(history, list) else type(history).__name__
        raise CheckpointError(f"{path} holds {count} history records for {round_} rounds done")
    if reference is not None:
        problem = _mismatch({k: v for k, v in state.items() if k != "config"}, reference, "state")
        if problem is not None:
            raise CheckpointError(f"{path} does not fit this run: {problem}")
    return state


def check_by_index(states: object, reference: object, path: Path, *, where: str, count: int) -> None:
    """``states``, a mapping from index to a state (the client sides a run made, by client index), if
    every index is in 0..``count - 1`` and every state has the layout of ``reference`` (a fresh one);
    else CheckpointError naming ``path`` and what is wrong."""
    if not isinstance(states, dict):
        raise CheckpointError(
            f"{path} does not fit this run: {where} is a {type(states).__name__}, expected a mapping"
        )
    for k, state in states.items():
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < count:
            raise CheckpointError(
                f"{path} does not fit this run: {where} holds index {k!r}, expected 0..{count - 1}"
            )
        problem = _mismatch(state, reference, f"{where}[{k}]")
        if problem is not None:
            raise CheckpointError(f"{path} does not fit this run: {problem}")


def resume_state(
    out_dir: Path,
    device: torch.device | str,
    processes: Processes | None,
    check: Callable[[object, Path], dict],
) -> dict | None:
    """The state to continue the run in ``out_dir`` from, passed through ``check`` (which raises
    CheckpointError), or None when there is no checkpoint (killed before its first: start over).
    With ``processes``, every process reads its own, of the newest round all of them saved
    (:func:`sharded_checkpoint`), and all learn whether every one could before any goes on."""
    if processes is None:
        path = out_dir / checkpoint_name()
        if _not_a_file(path):  # not "no checkpoint": starting over would truncate the history
            raise CheckpointError(f"{path} is not a regular file (a directory or a dangling link): remove it")
        state = load_checkpoint(path, device) if path.is_file() else None
        # a multi-process run killed between its processes' writes may have only the previous one
        written_by = (
            _checkpoint_info(previous_checkpoint(path))[1]
            if state is None
            else (state.get("world", 1) if isinstance(state, dict) else 1)
        )
        if written_by not in (-1, _UNREADABLE, 1):
            raise CheckpointError(
                f"{path} was written by {written_by} process(es): resume it with --nproc {written_by}"
            )
        return None if state is None else check(state, path)
    # a process raising alone would leave the others waiting in their first collective
    state, problem = None, None
    try:
        found = sharded_checkpoint(processes, out_dir)
        state = None if found is None else check(load_checkpoint(found, device), found)
    except CheckpointError as error:
        problem = str(error)
    failed = processes.per_process(torch.tensor(int(problem is not None)))
    if problem is not None:
        raise CheckpointError(problem)
    if bool(failed.any()):
        raise CheckpointError(
            f"process {int(failed.nonzero()[0, 0])} could not resume from its checkpoint in "
            f"{out_dir} (its output says why)"
        )
    return state
