"""Clients split over processes, in tests: threads standing in for the processes, with the all-reduce
(sum and min) the channel's ``reduce`` needs."""

import copy
import threading

import torch

from channels import SignalBlocks


class Collective:
    """An all-reduce among threads standing in for processes (every rank gets the same result)."""

    def __init__(self, world):
        self.barrier, self.slots = threading.Barrier(world), [None] * world

    def reduce(self, rank, value, op):
        self.slots[rank] = value
        self.barrier.wait()
        result = op(torch.stack(self.slots))
        self.barrier.wait()
        return result


class Rank:
    """One thread's side of a :class:`Collective`: ``sum`` and ``min`` over every rank's value."""

    def __init__(self, collective, rank):
        self.collective, self.rank = collective, rank

    def sum(self, value):
        return self.collective.reduce(self.rank, value, lambda stacked: stacked.sum(0))

    def min(self, value):
        return self.collective.reduce(self.rank, value, lambda stacked: stacked.min(0).values)


def transmit_split(channel, client_blocks, energy, state, shares, seed, per_client=None, **shared):
    """``channel.transmit`` with the clients split into ``shares`` (slices), one thread a process, each
    with its own copy of the channel, its clients' blocks, budgets, state and ``per_client`` arguments
    (sliced like the clients), the same ``shared`` ones, a generator seeded ``seed`` (identically
    seeded: the same noise everywhere) and the collective as ``reduce``; every rank's output."""
    collective, results = Collective(len(shares)), [None] * len(shares)

    def process(rank):
        mine = shares[rank]
        results[rank] = copy.deepcopy(channel).transmit(
            SignalBlocks(client_blocks[mine]),
            energy[mine],
            state=state.clients(mine),
            generator=torch.Generator().manual_seed(seed),
            reduce=Rank(collective, rank),
            **shared,
            **{name: value[mine] for name, value in (per_client or {}).items()},
        )

    threads = [threading.Thread(target=process, args=(rank,)) for rank in range(len(shares))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
