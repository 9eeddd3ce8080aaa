"""A lock file that a live process holds and a killed one lets go: a run's directory
(:func:`federated.outputs.lock_run`) and a sweep's point are held with it."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

__all__ = ["LockHeldError", "hold_lock"]


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
