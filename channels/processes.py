"""The processes a run's clients are split over, as one protocol for every layer that reduces across
them: the channel (its over-the-air sum and alignment scale), a round (its energy split and record,
:mod:`laser.ota`) and a checkpoint (each process's part, :mod:`federated.checkpoint`).

Implementations: ``federated.distributed.Shard`` (a run's processes, each holding a contiguous range
of the clients) and ``federated.adapters.ddp.RankProcesses`` (DDP's ranks, one client each).
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

__all__ = ["Processes"]


class Processes(Protocol):
    """Clients split over processes: process ``rank`` of ``world`` holds the clients ``index`` of
    ``num_clients``. Every call is a collective (each process calls it, in the same order) and every
    process receives the same result: ``sum`` and ``min`` all-reduce (the channel's superposition and
    alignment scale), ``gather`` concatenates every process's rows in client order, ``per_process``
    stacks every process's value in rank order. A layer uses what it needs (the channel only ``sum``
    and ``min``)."""

    # read-only, so that a frozen dataclass (Shard) satisfies the protocol
    @property
    def rank(self) -> int: ...

    @property
    def world(self) -> int: ...

    @property
    def num_clients(self) -> int: ...

    @property
    def index(self) -> slice: ...

    def sum(self, value: Tensor) -> Tensor: ...

    def min(self, value: Tensor) -> Tensor: ...

    def gather(self, value: Tensor) -> Tensor: ...

    def per_process(self, value: Tensor) -> Tensor: ...
