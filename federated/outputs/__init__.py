"""What a run writes and where (docs/outputs.md): its directory (claimed, locked, written as the
run goes), the lock files that keep two runs or two sweeps from writing one place, and its
TensorBoard scalars.

What a run records (its history and summary) is :mod:`federated.history`; what it needs to go on
after a kill is :mod:`federated.checkpoint`.
"""

from federated.outputs.directory import (
    RUN_FILES,
    RUN_LOCK,
    RUN_LOCK_HELD,
    TENSORBOARD,
    RunDirectory,
    RunExistsError,
    RunLockedError,
    claim,
    held_run,
    lock_run,
    write_config_once,
)
from federated.outputs.locks import LockHeldError, hold_lock
from federated.outputs.tensorboard import TensorBoardLog

__all__ = [
    "RUN_FILES",
    "RUN_LOCK",
    "RUN_LOCK_HELD",
    "TENSORBOARD",
    "LockHeldError",
    "RunDirectory",
    "RunExistsError",
    "RunLockedError",
    "TensorBoardLog",
    "claim",
    "held_run",
    "hold_lock",
    "lock_run",
    "write_config_once",
]
