"""Power allocation: how a client splits its per-round energy over the blocks it transmits.

LASER's rule (the paper's, §3.5 of the reference notes) is *norm-proportional*, averaged over
clients, so that every client uses the same block budgets and the common alignment scale works:

    E_b = E * mean_k( ||s_{k,b}|| / sum_b' ||s_{k,b'}|| ),        sum_b E_b = E.

It minimises the sum over blocks of the per-entry noise variances c_b^2 / (K^2 E_b) under
sum_b E_b = E. Two alternatives are offered: ``norm_sqrt_dim`` weights each norm by sqrt(d_b), which
minimises the *total* noise energy sum_b d_b c_b^2 / (K^2 E_b) instead, and ``uniform`` splits E
equally over the channel uses (E_b proportional to d_b, a flat power profile).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

__all__ = ["Allocation", "ALLOCATIONS", "allocate_energy", "allocate_grouped_energy"]

Allocation = Literal["norm", "norm_sqrt_dim", "uniform"]
ALLOCATIONS: tuple[str, ...] = ("norm", "norm_sqrt_dim", "uniform")


def allocate_energy(norms: Tensor, dims: Tensor, energy: float | Tensor, rule: Allocation = "norm") -> Tensor:
    """Split each client's energy over B blocks.

    Args:
        norms: ``[K, B]``, the Euclidean norm of each client's block.
        dims: ``[B]``, the length d_b of each block (its real channel uses).
        energy: each client's energy for the round, a float or ``[K]``.
        rule: ``"norm"`` (LASER), ``"norm_sqrt_dim"`` or ``"uniform"``.

    Returns:
        ``[K, B]``: client k's energy for block b, ``energy_k * f_b`` with fractions f_b >= 0 common
        to all clients and summing to 1. Clients whose blocks are all zero do not vote on f; if no
        client has a non-zero block, the split is proportional to d_b.

    Example:
        >>> norms = torch.tensor([[3.0, 1.0], [1.0, 1.0]])
        >>> allocate_energy(norms, torch.tensor([4, 4]), 100.0)
        tensor([[62.5000, 37.5000],
                [62.5000, 37.5000]])
    """
    if rule not in ALLOCATIONS:
        raise ValueError(f"unknown allocation rule {rule!r}; accepted: {', '.join(ALLOCATIONS)}")
    dims = dims.to(norms.dtype)
    if rule == "uniform":
        weights = dims.expand_as(norms)
    elif rule == "norm_sqrt_dim":
        weights = norms * dims.sqrt()
    else:
        weights = norms
    totals = weights.sum(dim=1, keepdim=True)  # [K, 1]
    voters = (totals > 0).squeeze(1)
    if bool(voters.any()):
        fractions = (weights[voters] / totals[voters]).mean(dim=0)  # [B]
    else:
        fractions = dims / dims.sum()
    energy = torch.as_tensor(energy, dtype=norms.dtype, device=norms.device).reshape(-1, 1)
    shares = energy * fractions.unsqueeze(0)  # [K, B]
    shares = torch.where(fractions > 0, shares, 0.0)  # inf * 0 is 0 here, not NaN
    return shares.expand(norms.shape[0], -1)


def allocate_grouped_energy(
    norms: Tensor,
    dims: Tensor,
    energy: float | Tensor,
    rule: Allocation,
    groups: Sequence[int],
    exponent: float,
) -> Tensor:
    """Split each client's energy over groups of blocks by ``rule``, then within a group over its
    blocks in proportion to ``||s_{k,b}||^exponent`` (fractions averaged over clients, as above).

    A group is treated as one block whose norm is that of its blocks' concatenation. This is the
    reference code's per-column split of a LASER factor (``exponent``; e = 0: equal shares, e = 1:
    proportional to the column norms): ``E_{b,c} = E_b ||x_c||^e / sum_c' ||x_c'||^e``.

    Args:
        norms: ``[K, B]``, as in :func:`allocate_energy`, per block.
        dims: ``[B]``, as in :func:`allocate_energy`.
        energy: each client's energy for the round, as in :func:`allocate_energy`.
        rule: the split over the groups, as in :func:`allocate_energy`.
        groups: the group of each block (any hashable labels; blocks of a group need not be adjacent).
        exponent: e; a block of norm 0 gets nothing when e > 0.

    Example:
        >>> norms = torch.tensor([[3.0, 1.0, 4.0]])           # two columns of one factor, and a bias
        >>> allocate_grouped_energy(norms, torch.tensor([2, 2, 2]), 100.0, "norm", [0, 0, 1], 1.0)
        tensor([[33.1139, 11.0380, 55.8482]], dtype=torch.float64)
    """
    norms = norms.double()
    labels = list(dict.fromkeys(groups))
    index = torch.tensor([labels.index(g) for g in groups], device=norms.device)
    num_groups = len(labels)
    group_norms = torch.zeros(norms.shape[0], num_groups, dtype=norms.dtype, device=norms.device)
    group_norms = group_norms.index_add(1, index, norms**2).sqrt()
    group_dims = torch.zeros(num_groups, dtype=norms.dtype, device=norms.device).index_add(
        0, index, dims.to(norms.device, norms.dtype)
    )
    group_energy = allocate_energy(group_norms, group_dims, energy, rule)  # [K, G]
    weights = torch.ones_like(norms) if exponent == 0 else norms**exponent  # [K, B]
    totals = torch.zeros_like(group_norms).index_add(1, index, weights)[:, index]  # [K, B]
    voters = totals > 0
    per_client = torch.where(voters, weights / torch.where(voters, totals, 1.0), 0.0)
    count = voters.sum(0)  # [B]
    even_split = dims.to(norms.device, norms.dtype) / group_dims[index]
    fractions = torch.where(count > 0, per_client.sum(0) / count.clamp(min=1), even_split)
    return group_energy[:, index] * fractions
