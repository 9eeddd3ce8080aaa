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

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "effective_gains",
    "min_power",
    "matched_beamformer",
    "eigen_beamformer",
    "maxmin_beamformer",
    "BEAMFORMERS",
]


def _check_channels(channels: Tensor) -> None:
    if not isinstance(channels, Tensor) or channels.dim() < 2 or not channels.is_complex():
        shown = tuple(channels.shape) if isinstance(channels, Tensor) else type(channels).__name__
        raise ValueError(f"channels must be a complex [..., K, N] tensor, got {shown}")
    if channels.shape[-2] < 1 or channels.shape[-1] < 1:
        raise ValueError(f"channels needs K >= 1 clients and N >= 1 antennas, got {tuple(channels.shape)}")


def effective_gains(beamformer: Tensor, channels: Tensor) -> Tensor:
    """g_k = m^H h_k: ``beamformer`` ``[..., N]`` and ``channels`` ``[..., K, N]`` -> ``[..., K]``.

    >>> h = torch.tensor([[1.0 + 0j, 1j], [2.0 + 0j, 0j]])          # K = 2 clients, N = 2 antennas
    >>> effective_gains(torch.tensor([0j, 1.0 + 0j]), h).tolist()
    [1j, 0j]
    """
    return (channels * beamformer.conj().unsqueeze(-2)).sum(-1)


def min_power(beamformer: Tensor, channels: Tensor) -> Tensor:
    """min_k |m^H h_k|^2, ``[...]`` real: the weakest client's power gain after combining."""
    return effective_gains(beamformer, channels).abs().square().amin(-1)


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
    norms = torch.linalg.vector_norm(channels, dim=-1, keepdim=True)
    directions = torch.where(norms > 0, channels / torch.where(norms > 0, norms, 1), 0)
    total = directions.sum(-2)
    length = torch.linalg.vector_norm(total, dim=-1, keepdim=True)
    usable = length > 0
    beamformer = total / torch.where(usable, length, 1)
    if not bool(usable.all()):
        beamformer = torch.where(usable, beamformer, eigen_beamformer(channels))
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
    matched = matched_beamformer(channels)
    best, best_value = matched, min_power(matched, channels)
    eigen = eigen_beamformer(channels)
    best, best_value = _best(eigen, min_power(eigen, channels), best, best_value)
    if channels.shape[-2] == 1:  # one client: the matched filter h / ||h|| is optimal
        return matched
    real = channels.real.dtype
    weights = torch.full(channels.shape[:-1], 1.0 / channels.shape[-2], dtype=real, device=channels.device)
    upper = torch.full_like(best_value, torch.inf)  # the best dual bound: the optimum lies in [best, upper]
    for t in range(iterations):
        v = _principal(channels * weights.sqrt().unsqueeze(-1).to(channels.dtype))
        q = effective_gains(v, channels).abs().square()  # [..., K]
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
        g = effective_gains(m, channels)  # [..., K]
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
        trial_value = min_power(trial, channels)
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
