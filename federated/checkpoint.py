"""Checkpoints: everything a run needs to continue to the bit-identical result (DESIGN.md section 7).

A checkpoint is one ``torch.save`` file of plain containers (dicts, lists, numbers, strings) and
tensors, so it loads with ``torch.load(..., weights_only=True)``: no arbitrary object is ever
unpickled. It is written to a temporary file in the same directory, flushed to disk and renamed over
the previous one, so a kill during a write leaves the last good checkpoint in place.

With the clients split over processes, each process writes its own (:func:`checkpoint_name`) and
keeps the one before (:func:`previous_checkpoint`); :func:`resume_simulation` loads a run's state,
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
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from federated.config import Config, same_config

if TYPE_CHECKING:                          # for annotations only: train imports this module
    from federated.distributed import Shard
    from federated.history import History
    from federated.train import Simulation

__all__ = ["CHECKPOINT", "CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "CheckpointError",
           "checkpoint_name", "previous_checkpoint", "sharded_checkpoint", "resume_simulation"]

CHECKPOINT = "checkpoint.pt"       # its name inside a run directory
CHECKPOINT_FORMAT = 1              # bumped when the layout changes


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


def load_checkpoint(path: str | Path, device: torch.device | str) -> dict:
    """Read a checkpoint with tensors on ``device``, without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as error:       # a truncated or foreign file: say which, do not crash
        raise CheckpointError(f"cannot read the checkpoint {path}: {error}") from None


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


_UNREADABLE = -2


def _checkpoint_info(path: Path) -> tuple[int, int]:
    """``(round, processes that wrote it)`` of a checkpoint: ``(-1, -1)`` if there is none,
    ``(-2, -2)`` if it cannot be read (checkpoints are written atomically, so that is not a kill but
    a permission, disk or version problem, to report, not to start over from). Reads the file
    memory-mapped, so a large model's weights are not loaded to learn it."""
    if not path.is_file():
        return -1, -1
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state.get("round", -1)), int(state.get("world", 1))
    except Exception:
        return _UNREADABLE, _UNREADABLE


def sharded_checkpoint(shard: Shard, out_dir: Path) -> Path | None:
    """The checkpoint this process resumes from: of the newest round that every process saved
    (its newest or the one before), the same decision on every process. None: start over.

    A process resuming from its previous checkpoint makes it its newest again: the newer one is of
    a round not every process saved, and must not be rotated into the "previous" place by the next
    save (a second kill would then leave the processes without a round in common)."""
    path = out_dir / checkpoint_name(shard.rank)
    candidates = [path, previous_checkpoint(path)]
    info = [_checkpoint_info(p) for p in candidates]
    every = shard.per_process(torch.tensor([x for pair in info for x in pair])).reshape(shard.world, 2, 2)
    unreadable = (every[:, :, 0] == _UNREADABLE).nonzero().tolist()
    if unreadable:
        rank, which = unreadable[0]
        name = out_dir / checkpoint_name(rank)
        raise CheckpointError(f"cannot read the checkpoint {previous_checkpoint(name) if which else name}")
    worlds = {w for w in every[:, :, 1].flatten().tolist() if w != -1}
    if worlds - {shard.world}:
        raise CheckpointError(f"{out_dir} holds checkpoints written by {max(worlds - {shard.world})} process(es): "
                              f"resume it with --nproc {max(worlds - {shard.world})}")
    rounds = every[:, :, 0]                                          # [world, newest / before]
    target = int(rounds.max(1).values.min())
    if target < 0:
        return None                        # some process never saved one: start over, same result
    if not bool((rounds == target).any(1).all()):
        raise CheckpointError(f"the processes' checkpoints in {out_dir} have no round in common "
                              f"({rounds.tolist()}): start the run again")
    chosen = candidates[[r for r, _ in info].index(target)]
    if chosen != path:
        os.replace(chosen, path)
    return path


def _checked(state: object, path: Path, config: Config, out_dir: Path) -> dict:
    """``state`` if it is a checkpoint of this format and configuration, else CheckpointError."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} has format {found!r}; this version reads {CHECKPOINT_FORMAT}")
    if not same_config(state["config"], config):
        raise CheckpointError(f"{path} was written by another configuration than {out_dir / 'config.yaml'}")
    return state


def resume_simulation(sim: Simulation, out_dir: Path, history: History) -> int:
    """Load ``out_dir``'s checkpoint into ``sim`` (a :class:`federated.train.Simulation`) and
    ``history``; return the rounds already done (0: start over). With clients split over processes
    every process loads its own, of the newest round all of them saved (:func:`sharded_checkpoint`)."""
    shard = sim.shard
    if shard is None:
        path = out_dir / checkpoint_name()
        state = load_checkpoint(path, sim.device) if path.is_file() else None
        # a multi-process run killed between its processes' writes may have only the previous one
        written_by = _checkpoint_info(previous_checkpoint(path))[1] if state is None else (
            state.get("world", 1) if isinstance(state, dict) else 1)
        if written_by not in (-1, _UNREADABLE, 1):
            raise CheckpointError(f"{path} was written by {written_by} process(es): resume it with --nproc {written_by}")
        state = None if state is None else _checked(state, path, sim.config, out_dir)
    else:
        # every process learns whether all could load theirs before any goes on (a process raising
        # alone would leave the others waiting in their first collective)
        path = sharded_checkpoint(shard, out_dir)
        state, problem = None, None
        try:
            state = None if path is None else _checked(load_checkpoint(path, sim.device), path, sim.config, out_dir)
        except CheckpointError as error:
            problem = str(error)
        failed = shard.per_process(torch.tensor(int(problem is not None)))
        if problem is not None:
            raise CheckpointError(problem)
        if bool(failed.any()):
            raise CheckpointError(f"process {int(failed.nonzero()[0, 0])} could not resume from its checkpoint in "
                                  f"{out_dir} (its output says why)")
    if state is None:
        return 0                       # killed before its first checkpoint: start over, same result
    sim.load_state_dict(state)
    history.rounds = list(state["history"])
    return int(state["round"])
