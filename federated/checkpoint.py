"""Checkpoints: everything a run needs to continue to the bit-identical result (DESIGN.md section 7).

A checkpoint is one ``torch.save`` file of plain containers (dicts, lists, numbers, strings) and
tensors, so it loads with ``torch.load(..., weights_only=True)``: no arbitrary object is ever
unpickled. It is written to a temporary file in the same directory, flushed to disk and renamed over
the previous one, so a kill during a write leaves the last good checkpoint in place.

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

import torch

__all__ = ["CHECKPOINT", "CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "CheckpointError"]

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
