"""Clients split over processes, in tests: threads standing in for the processes, with the all-reduce
(sum and min) the channel's ``reduce`` needs."""

import threading

import torch


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
