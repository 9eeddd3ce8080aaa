"""Coordinate selection shared by the sparsifying compressors (Random-K, count sketch, A-DSGD,
top-k): how many of a tensor's d entries a fraction keeps, and which are the largest.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

__all__ = ["check_fraction", "keep_count", "sparsify", "top_indices"]


def check_fraction(fraction: float) -> float:
    """``fraction`` as a float in (0, 1], or a ValueError naming it."""
    if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    return float(fraction)


def keep_count(fraction: float, d: int) -> int:
    """k = max(1, floor(fraction * d)), at most d; the 1e-9 keeps 0.29 * 100 = 28.999999999999996 at 29.

    >>> keep_count(0.29, 100), keep_count(0.001, 10), keep_count(1.0, 7)
    (29, 1, 7)
    """
    return min(d, max(1, math.floor(fraction * d + 1e-9)))


def top_indices(v: Tensor, k: int) -> Tensor:
    """The indices of the k entries of 1-D ``v`` largest in magnitude (``torch.topk``'s tie-break,
    unsorted).

    >>> sorted(top_indices(torch.tensor([0.5, -3.0, 1.0, 2.0]), 2).tolist())
    [1, 3]
    """
    return v.abs().topk(k, sorted=False).indices


def sparsify(v: Tensor, k: int, index: Tensor | None = None) -> Tensor:
    """The k entries of 1-D ``v`` largest in magnitude, the others 0 (``torch.topk``'s tie-break);
    ``index``: those entries' indices, if already known (:func:`top_indices`).

    Kept entries are copied exactly, so ``v - sparsify(v, k)`` is exactly 0 there.

    >>> sparsify(torch.tensor([0.5, -3.0, 1.0, 2.0]), 2)
    tensor([ 0., -3.,  0.,  2.])
    """
    index = top_indices(v, k) if index is None else index
    return torch.zeros_like(v).index_copy_(0, index, v[index])
