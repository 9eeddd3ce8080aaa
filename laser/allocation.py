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

import math
from collections.abc import Hashable, Sequence
from typing import Literal

import torch
from torch import Tensor

from channels._checks import brief, brief_values, check_data, check_number, real_tensor

__all__ = ["Allocation", "ALLOCATIONS", "allocate_energy", "allocate_grouped_energy"]

Allocation = Literal["norm", "norm_sqrt_dim", "uniform"]
ALLOCATIONS: tuple[str, ...] = ("norm", "norm_sqrt_dim", "uniform")


def _check_rule(rule: object) -> None:
    if not isinstance(rule, str):
        raise TypeError(f"rule must be one of {', '.join(ALLOCATIONS)}, got {brief(rule)}")
    if rule not in ALLOCATIONS:
        raise ValueError(f"unknown allocation rule {rule!r}; accepted: {', '.join(ALLOCATIONS)}")


def _check_norms(norms: object, *, integer: bool) -> Tensor:
    """``norms`` if a real ``[K, B]`` tensor with data (integers too when ``integer``); a TypeError or
    ValueError naming ``norms`` otherwise."""
    kind = "real" if integer else "real floating-point"
    if not isinstance(norms, Tensor):
        raise TypeError(f"norms must be a {kind} [K, B] tensor, got {brief(norms)} ({type(norms).__name__})")
    if norms.dtype == torch.bool or norms.is_complex() or not (integer or norms.is_floating_point()):
        raise TypeError(
            f"norms must be a {kind} [K, B] tensor (the shares take its dtype), got {brief(norms)}"
        )
    if norms.dim() != 2:
        raise ValueError(f"norms must be [K, B] (clients, blocks), got shape {tuple(norms.shape)}")
    check_data(norms, "norms")
    return norms


def _check_dims(dims: object, num_blocks: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``dims`` as a ``[B]`` tensor of ``dtype`` on ``device`` (values as ``Tensor.to`` gives them);
    a TypeError or ValueError naming ``dims`` for anything else. Its values are checked later."""
    tensor = real_tensor(dims, "dims")
    if tuple(tensor.shape) != (num_blocks,):
        raise ValueError(
            f"dims must be [B] with B = {num_blocks} (one length per block, as norms has columns), "
            f"got shape {tuple(tensor.shape)}"
        )
    return tensor.to(device, dtype)


def _bad_dims(dims: Tensor) -> Tensor:
    """A 0-d bool tensor: some block length is negative, NaN or infinite (read with the other checks)."""
    return ~(dims.isfinite() & (dims >= 0)).all()


def _refuse_dims(dims: Tensor) -> None:
    bad = ~(dims.isfinite() & (dims >= 0))
    raise ValueError(
        f"dims must be finite lengths >= 0, got {brief_values(dims[bad])} "
        f"for block(s) {brief_values(bad.nonzero().flatten())}"
    )


def _refuse_energy(energy: Tensor) -> None:
    if energy.numel() == 1:
        raise ValueError(f"energy must be >= 0 (inf is accepted), got {energy.item()}")
    bad = ~(energy >= 0)  # NaN too
    raise ValueError(
        f"energy must be >= 0 (inf is accepted), got {brief_values(energy[bad])} "
        f"for client(s) {brief_values(bad.nonzero().flatten())}"
    )


def allocate_energy(norms: Tensor, dims: Tensor, energy: float | Tensor, rule: Allocation = "norm") -> Tensor:
    """Split each client's energy over B blocks.

    Args:
        norms: ``[K, B]``, the Euclidean norm of each client's block.
        dims: ``[B]``, the length d_b of each block (its real channel uses).
        energy: each client's energy for the round, a float or ``[K]``.
        rule: ``"norm"`` (LASER), ``"norm_sqrt_dim"`` or ``"uniform"``.

    Raises:
        TypeError: ``norms`` is not a real floating-point tensor, ``dims`` or ``energy`` are not
            real numbers, ``rule`` is not a string.
        ValueError: a shape that does not fit (``norms`` not 2-D, ``dims`` not ``[B]``, ``energy``
            neither one number nor one per client), a meta tensor, a block length that is negative,
            NaN or infinite, an energy that is negative or NaN (``inf`` is accepted), an unknown rule.

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
    _check_rule(rule)
    _check_norms(norms, integer=False)
    dims = _check_dims(dims, norms.shape[1], norms.dtype, norms.device)
    energy = real_tensor(energy, "energy", dtype=norms.dtype, device=norms.device)
    if energy.numel() not in (1, norms.shape[0]):
        raise ValueError(
            f"energy must be one number or one per client ([K] with K = {norms.shape[0]}), "
            f"got {brief(energy)}"
        )
    energy = energy.reshape(-1, 1)
    if rule == "uniform":
        weights = dims.expand_as(norms)
    elif rule == "norm_sqrt_dim":
        weights = norms * dims.sqrt()
    else:
        weights = norms
    totals = weights.sum(dim=1, keepdim=True)  # [K, 1]
    voters = (totals > 0).squeeze(1)
    # the value checks read together with the vote (one device synchronisation): NaN fails >= 0
    any_voter, bad_dims, bad_energy = torch.stack(
        [voters.any(), _bad_dims(dims), ~(energy >= 0).all()]
    ).tolist()
    if bad_dims:
        _refuse_dims(dims)
    if bad_energy:
        _refuse_energy(energy.flatten())
    if any_voter:
        fractions = (weights[voters] / totals[voters]).mean(dim=0)  # [B]
    else:
        fractions = dims / dims.sum()
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
        exponent: e, a finite number; a block of norm 0 gets nothing when e != 0.

    Raises:
        TypeError: as :func:`allocate_energy`, and for ``groups`` that is not a sequence of hashable
            labels, or an ``exponent`` that is not a number.
        ValueError: as :func:`allocate_energy`, and for ``groups`` without one label per block, or a
            NaN or infinite ``exponent``.

    Example:
        >>> norms = torch.tensor([[3.0, 1.0, 4.0]])           # two columns of one factor, and a bias
        >>> allocate_grouped_energy(norms, torch.tensor([2, 2, 2]), 100.0, "norm", [0, 0, 1], 1.0)
        tensor([[33.1139, 11.0380, 55.8482]], dtype=torch.float64)
    """
    _check_rule(rule)
    norms = _check_norms(norms, integer=True).double()
    num_blocks = norms.shape[1]
    dims = _check_dims(dims, num_blocks, norms.dtype, norms.device)
    if bool(_bad_dims(dims)):  # a group's sum could hide a negative length
        _refuse_dims(dims)
    if not math.isfinite(check_number(exponent, "exponent")):
        raise ValueError(f"exponent must be a finite number, got {brief(exponent)}")
    group_of = _check_groups(groups, num_blocks)
    labels = list(dict.fromkeys(group_of))
    index = torch.tensor([labels.index(g) for g in group_of], dtype=torch.long, device=norms.device)
    num_groups = len(labels)
    group_norms = torch.zeros(norms.shape[0], num_groups, dtype=norms.dtype, device=norms.device)
    group_norms = group_norms.index_add(1, index, norms**2).sqrt()
    group_dims = torch.zeros(num_groups, dtype=norms.dtype, device=norms.device).index_add(0, index, dims)
    group_energy = allocate_energy(group_norms, group_dims, energy, rule)  # [K, G]
    weights = torch.ones_like(norms) if exponent == 0 else norms**exponent  # [K, B]
    if exponent < 0:  # 0^e = inf: a block of norm 0 gets nothing, as for e > 0
        weights = torch.where(norms > 0, weights, 0.0)
    totals = torch.zeros_like(group_norms).index_add(1, index, weights)[:, index]  # [K, B]
    voters = totals > 0
    per_client = torch.where(voters, weights / torch.where(voters, totals, 1.0), 0.0)
    count = voters.sum(0)  # [B]
    even_split = dims / group_dims[index]
    fractions = torch.where(count > 0, per_client.sum(0) / count.clamp(min=1), even_split)
    return group_energy[:, index] * fractions


def _check_groups(groups: object, num_blocks: int) -> list[Hashable]:
    """``groups`` as a list of one hashable label per block; a TypeError or ValueError naming it."""
    if isinstance(groups, Tensor):
        groups = groups.tolist()
    try:
        labels = list(groups)  # type: ignore[call-overload]  # anything iterable; refused below if not
    except TypeError:
        raise TypeError(
            f"groups must be a sequence of labels, one per block, "
            f"got {brief(groups)} ({type(groups).__name__})"
        ) from None
    if len(labels) != num_blocks:
        raise ValueError(
            f"groups must hold one label per block ({num_blocks}, as norms has columns), "
            f"got {len(labels)} labels"
        )
    for i, label in enumerate(labels):
        if not isinstance(label, Hashable):
            raise TypeError(f"groups[{i}] must be a hashable label (an int, a string), got {brief(label)}")
    return labels
