"""Receive beamformers of a base station with N antennas, for over-the-air aggregation.

The K clients' channel vectors h_k in C^N are the rows of ``channels`` ``[..., K, N]`` (any leading
batch dimensions: coherence blocks, subcarriers). A beamformer is a unit vector m ``[..., N]``,
||m|| = 1, and the server combines its antennas' signals as m^H y, so client k's effective gain is

    g_k = m^H h_k = sum_n conj(m_n) h_kn                  (:func:`effective_gains`)

and the weakest client, min_k |g_k|^2 (:func:`min_power`), sets the common alignment scale of
over-the-air aggregation (docs/physics.md, "Many receive antennas"). Three designs:

- :func:`matched_beamformer`: the normalised sum of the clients' matched filters, each normalised
  to unit length, m = sum_k u_k / ||sum_k u_k|| with u_k = h_k / ||h_k|| (every client's direction
  counts the same, whatever its path loss);
- :func:`eigen_beamformer`: the principal eigenvector of sum_k h_k h_k^H (maximises the total
  received power sum_k |m^H h_k|^2);
- :func:`maxmin_beamformer`: maximises min_k |m^H h_k|^2 (max-min fair multicast beamforming,
  NP-hard in general: Sidiropoulos, Davidson and Luo, IEEE Trans. Signal Process. 54(6), 2006) by
  a first-order method started from the two others, returning the best candidate it meets: never
  worse than either, by construction.

The overall phase of m is arbitrary: it changes no |g_k|, and a client that inverts its own g_k
undoes it. Everything is deterministic and draws no random numbers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import SupportsIndex, cast

import torch
from torch import Tensor

from channels._checks import brief, check_data

__all__ = [
    "effective_gains",
    "min_power",
    "matched_beamformer",
    "eigen_beamformer",
    "maxmin_beamformer",
    "BEAMFORMERS",
]


_COMPLEX = (torch.complex64, torch.complex128)


def _check_channels(channels: object, name: str = "channels", num_antennas: int | None = None) -> Tensor:
    """``channels``, refusing what no beamformer can design from: a non-tensor or a dtype other than
    complex64 or complex128 (TypeError); fewer than 2 dimensions, K = 0 or N = 0, an N other than
    the array's ``num_antennas``, a meta tensor, NaN or inf entries (ValueError), each naming
    ``name``. The finiteness check is one sum (a finite sum proves every entry finite); only a
    non-finite sum is settled entry by entry (a sum of huge finite entries can overflow)."""
    if not isinstance(channels, Tensor):
        raise TypeError(
            f"{name} must be a complex [..., K, N] tensor, got {brief(channels)} ({type(channels).__name__})"
        )
    if channels.dtype not in _COMPLEX:
        raise TypeError(f"{name} must be complex64 or complex128 [..., K, N], got {brief(channels)}")
    shape = tuple(channels.shape)
    if channels.dim() < 2 or shape[-2] < 1 or shape[-1] < 1:
        raise ValueError(
            f"{name} must be [..., K, N] with K >= 1 clients and N >= 1 antennas, got shape {shape}"
        )
    if num_antennas is not None and shape[-1] != num_antennas:
        raise ValueError(
            f"{name} must have N = {num_antennas} antennas (the array's) in its last dimension, "
            f"got shape {shape}"
        )
    check_data(channels, name)
    if not bool(channels.sum().isfinite()) and not bool(channels.isfinite().all()):
        where = tuple((~channels.isfinite()).nonzero()[0].tolist())
        raise ValueError(f"{name} must be finite, got {channels[where].item()} at index {where}")
    return channels


def _check_gain_operand(value: object, name: str, shape: str, rank: int) -> Tensor:
    """``value`` as given, refused unless a floating-point or complex64/complex128 tensor (TypeError)
    with at least ``rank`` dimensions and data (ValueError), naming ``name``."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name} must be a complex {shape} tensor, got {brief(value)} ({type(value).__name__})"
        )
    if not (value.is_floating_point() or value.dtype in _COMPLEX):
        raise TypeError(
            f"{name} must be a complex (or real floating-point) {shape} tensor, got {brief(value)}"
        )
    if value.dim() < rank:
        raise ValueError(f"{name} must be {shape}, got shape {tuple(value.shape)}")
    check_data(value, name)
    return value


def _check_pair(beamformer: object, channels: object) -> tuple[Tensor, Tensor]:
    """Refuse a beamformer ``[..., N]`` and channels ``[..., K, N]`` that do not fit: another N, or
    batch dimensions that do not broadcast (ValueError); wrong types as :func:`_check_gain_operand`."""
    m = _check_gain_operand(beamformer, "beamformer", "[..., N]", 1)
    h = _check_gain_operand(channels, "channels", "[..., K, N]", 2)
    if m.shape[-1] != h.shape[-1]:
        raise ValueError(
            f"beamformer must have N = {h.shape[-1]} entries (the channels' antennas), "
            f"got shape {tuple(m.shape)} for channels of shape {tuple(h.shape)}"
        )
    try:
        torch.broadcast_shapes(m.shape[:-1], h.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"beamformer's batch dimensions {tuple(m.shape[:-1])} must broadcast with the channels' "
            f"{tuple(h.shape[:-2])} (beamformer [..., N], channels [..., K, N])"
        ) from None
    return m, h


def _check_steps(value: object, name: str) -> int:
    """An integer >= 0 (a bool or a string is not a count), or a TypeError/ValueError naming ``name``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        count = operator.index(cast(SupportsIndex, value))
    except TypeError:
        raise TypeError(f"{name} must be an integer >= 0, got {brief(value)}") from None
    if count < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {count}")
    return count


def effective_gains(beamformer: Tensor, channels: Tensor) -> Tensor:
    """g_k = m^H h_k: ``beamformer`` ``[..., N]`` and ``channels`` ``[..., K, N]`` -> ``[..., K]``.

    >>> h = torch.tensor([[1.0 + 0j, 1j], [2.0 + 0j, 0j]])          # K = 2 clients, N = 2 antennas
    >>> effective_gains(torch.tensor([0j, 1.0 + 0j]), h).tolist()
    [1j, 0j]

    The two must have the same N, and their batch dimensions must broadcast (a ValueError
    otherwise); NaN entries give NaN gains (only the beamformer designs refuse them).
    """
    _check_pair(beamformer, channels)
    return _gains(beamformer, channels)


def _gains(beamformer: Tensor, channels: Tensor) -> Tensor:
    """:func:`effective_gains` without its checks (inside the designs, on checked channels)."""
    return (channels * beamformer.conj().unsqueeze(-2)).sum(-1)


def min_power(beamformer: Tensor, channels: Tensor) -> Tensor:
    """min_k |m^H h_k|^2, ``[...]`` real: the weakest client's power gain after combining (K >= 1)."""
    _, h = _check_pair(beamformer, channels)
    if h.shape[-2] < 1:
        raise ValueError(f"channels must have K >= 1 clients, got shape {tuple(h.shape)}")
    return _min_power(beamformer, channels)


def _min_power(beamformer: Tensor, channels: Tensor) -> Tensor:
    """:func:`min_power` without its checks."""
    return _gains(beamformer, channels).abs().square().amin(-1)


def eigen_beamformer(channels: Tensor) -> Tensor:
    """The principal eigenvector of sum_k h_k h_k^H, ``[..., N]`` with ||m|| = 1.

    Solved as a K x K Hermitian eigenproblem when K < N (see ``_principal``), else N x N.

    >>> h = torch.tensor([[3.0 + 0j, 4.0 + 0j]])                     # one client: m = h / ||h||
    >>> m = eigen_beamformer(h)
    >>> round(float(effective_gains(m, h).abs()), 5)
    5.0
    """
    _check_channels(channels)
    return _principal(channels)


def _principal(rows: Tensor) -> Tensor:
    """The unit principal eigenvector of sum_k b_k b_k^H for the rows b_k of ``rows`` ``[..., K, N]``,
    from the smaller of the two Hermitian eigenproblems: with B the matrix of rows, A = sum_k b_k b_k^H
    = B^T conj(B) (N x N) and G = conj(B) B^T (K x K) share their non-zero eigenvalues, and
    A (B^T u) = B^T G u = lambda B^T u, so m = B^T u / ||B^T u|| for G's principal eigenvector u."""
    num_clients, num_antennas = rows.shape[-2:]
    if num_antennas <= num_clients:
        _, vectors = torch.linalg.eigh(rows.mT @ rows.conj())
        return vectors[..., -1]
    _, vectors = torch.linalg.eigh(rows.conj() @ rows.mT)
    m = (rows.mT @ vectors[..., -1:]).squeeze(-1)
    size = torch.linalg.vector_norm(m, dim=-1, keepdim=True)
    if bool((size > 0).all()):
        return m / size
    first = torch.zeros_like(m)
    first[..., 0] = 1  # every b_k = 0: any unit vector is principal
    return torch.where(size > 0, m / torch.where(size > 0, size, 1), first)


def matched_beamformer(channels: Tensor) -> Tensor:
    """The normalised sum of the clients' unit matched filters, m = sum_k u_k / ||sum_k u_k||,
    u_k = h_k / ||h_k|| (a client with h_k = 0 adds nothing); ``[..., N]``. Where the sum vanishes
    (the directions cancel, or every h_k = 0), the eigen beamformer instead.

    >>> h = torch.tensor([[1.0 + 0j, 0j], [0j, 2.0 + 0j]])
    >>> matched_beamformer(h).abs().square().round(decimals=6).tolist()   # equal parts of both
    [0.5, 0.5]
    """
    _check_channels(channels)
    return _matched(channels)


def _matched(channels: Tensor) -> Tensor:
    """:func:`matched_beamformer` without its checks."""
    norms = torch.linalg.vector_norm(channels, dim=-1, keepdim=True)
    directions = torch.where(norms > 0, channels / torch.where(norms > 0, norms, 1), 0)
    total = directions.sum(-2)
    length = torch.linalg.vector_norm(total, dim=-1, keepdim=True)
    usable = length > 0
    beamformer = total / torch.where(usable, length, 1)
    if not bool(usable.all()):
        beamformer = torch.where(usable, beamformer, _principal(channels))
    return beamformer


def _best(candidate: Tensor, value: Tensor, best: Tensor, best_value: Tensor) -> tuple[Tensor, Tensor]:
    """Keep, per batch entry, the candidate with the larger min power (ties keep ``best``)."""
    better = value > best_value
    return torch.where(better.unsqueeze(-1), candidate, best), torch.where(better, value, best_value)


GAP = 1e-4  # maxmin_beamformer stops once its best is within this relative gap of the dual bound


def maxmin_beamformer(channels: Tensor, iterations: int = 150, polish: int = 100) -> Tensor:
    """m maximising min_k |m^H h_k|^2 over ||m|| = 1, ``[..., N]``: the best of the matched and
    eigen beamformers and of every iterate of two first-order methods, so it is never worse than
    either of the first two (and for K = 1 it is the matched filter h / ||h||, the optimum).

    1. Dual (``iterations`` steps): max_m min_k |m^H h_k|^2 <= min_w lambda_max(sum_k w_k h_k h_k^H)
       over the simplex of weights w (the semidefinite relaxation's dual, tight for K <= 3). The
       right side is convex in w, with subgradient q_k = |v^H h_k|^2 at the principal eigenvector
       v; exponentiated-gradient (mirror) descent, w_k <- w_k exp(-s_t q_k / sum_j w_j q_j) with
       s_t = 1 / sqrt(t + 1), starts at equal weights (whose v is the eigen beamformer) and moves
       weight to the weakest clients. Each v is a candidate, and each lambda_max an upper bound on
       the optimum: the method stops early once its best candidate is within a relative 1e-4 of the
       lowest bound (the optimum is then certified, as it often is for K <= 3).
    2. Primal (``polish`` steps), from the best candidate so far: projected gradient ascent on the
       unit sphere of a soft minimum, sum_k p_k |m^H h_k|^2 with p = softmax(-q / (0.05 min q)),
       a step accepted only when the true min improves (otherwise halved, else grown by 1.5).

    ``channels`` ``[..., K, N]`` complex; each batch entry is solved independently (in parallel).

    >>> h = torch.tensor([[1.0 + 0j, 0j], [0.6 + 0j, 0.8 + 0j]])       # two clients, 2 antennas
    >>> m = maxmin_beamformer(h)
    >>> bool(min_power(m, h) >= min_power(matched_beamformer(h), h))
    True
    """
    _check_channels(channels)
    return _maxmin(channels, _check_steps(iterations, "iterations"), _check_steps(polish, "polish"))


def _maxmin(channels: Tensor, iterations: int = 150, polish: int = 100) -> Tensor:
    """:func:`maxmin_beamformer` without its checks."""
    matched = _matched(channels)
    best, best_value = matched, _min_power(matched, channels)
    eigen = _principal(channels)
    best, best_value = _best(eigen, _min_power(eigen, channels), best, best_value)
    if channels.shape[-2] == 1:  # one client: the matched filter h / ||h|| is optimal
        return matched
    real = channels.real.dtype
    weights = torch.full(channels.shape[:-1], 1.0 / channels.shape[-2], dtype=real, device=channels.device)
    upper = torch.full_like(best_value, torch.inf)  # the best dual bound: the optimum lies in [best, upper]
    for t in range(iterations):
        v = _principal(channels * weights.sqrt().unsqueeze(-1).to(channels.dtype))
        q = _gains(v, channels).abs().square()  # [..., K]
        best, best_value = _best(v, q.amin(-1), best, best_value)
        level = (weights * q).sum(-1, keepdim=True)  # lambda_max(sum_k w_k h_k h_k^H), sum_k w_k = 1
        upper = torch.minimum(upper, level.squeeze(-1))
        if t % 10 == 9 and bool((best_value >= (1 - GAP) * upper).all()):
            return best  # optimal to within GAP everywhere
        ratio = q / torch.where(level > 0, level, 1)
        weights = weights * torch.exp(-(ratio - ratio.amin(-1, keepdim=True)) / (t + 1) ** 0.5)
        weights = weights / weights.sum(-1, keepdim=True)
    m, value = best, best_value
    step = torch.full_like(value, 0.1)
    for _ in range(polish):
        g = _gains(m, channels)  # [..., K]
        q = g.abs().square()
        low = q.amin(-1, keepdim=True)
        p = torch.softmax(-(q - low) / (0.05 * torch.where(low > 0, low, 1)), dim=-1)
        # d/d conj(m) of sum_k p_k |m^H h_k|^2 = sum_k p_k h_k conj(g_k); tangent part, unit length
        grad = (channels * (p * g.conj()).unsqueeze(-1)).sum(-2)
        grad = grad - m * (m.conj() * grad).sum(-1, keepdim=True)
        size = torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
        direction = grad / torch.where(size > 0, size, 1)
        trial = m + step.unsqueeze(-1).to(m.dtype) * direction
        trial = trial / torch.linalg.vector_norm(trial, dim=-1, keepdim=True)
        trial_value = _min_power(trial, channels)
        improved = trial_value > value
        m = torch.where(improved.unsqueeze(-1), trial, m)
        value = torch.where(improved, trial_value, value)
        step = torch.where(improved, step * 1.5, step * 0.5).clamp(1e-6, 1.0)
    best, best_value = _best(m, value, best, best_value)
    return best


BEAMFORMERS: dict[str, Callable[[Tensor], Tensor]] = {
    "matched": matched_beamformer,
    "eigen": eigen_beamformer,
    "maxmin": maxmin_beamformer,
}
"""The receive beamformers by their configuration name (``channel.beamformer``)."""

_DESIGNS: dict[str, Callable[[Tensor], Tensor]] = {
    "matched": _matched,
    "eigen": _principal,
    "maxmin": _maxmin,
}
""":data:`BEAMFORMERS` without their checks, for callers that check the channels themselves
(:meth:`channels.antennas.ReceiveArray.design`, which also checks the array's N)."""
