"""The digital sparsifiers, with error feedback: top-k (:class:`TopKCompressor`) and top-k followed
by natural dithering (:class:`TopKDitheringCompressor`).
"""

from __future__ import annotations

import math  # noqa: F401  (the examples use math.inf)
from collections.abc import Iterable

import torch
from torch import Tensor

from laser.compressor import DigitalCompressor, check_params
from laser.digital.common import (
    _check_levels,
    _check_p,
    _check_seed,
    _index_bits,
    _MessageClient,
    _SparseMessageClient,
)
from laser.digital.quantisers import _natural_dither
from laser.sparse import check_fraction, keep_count, sparsify, top_indices

__all__ = [
    "TopKClient",
    "TopKCompressor",
    "TopKDitheringClient",
    "TopKDitheringCompressor",
]


class TopKClient(_SparseMessageClient):
    """One client of :class:`TopKCompressor`: its error-feedback memory (one flattened tensor per
    parameter, ``None`` before its first encode) and the bits of its last message."""

    def __init__(self, method: TopKCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        super().__init__(params, index, error_feedback=method.error_feedback, seed=None)
        self.fraction = method.fraction

    def _compress(self, i: int, v: Tensor) -> tuple[Tensor, int]:
        d = v.numel()
        k = keep_count(self.fraction, d)
        index = top_indices(v, k)
        self._keep_layout(i, 0, 32 if k == d else 32 + _index_bits(d), index)
        bits = 32 * d if k == d else k * (32 + _index_bits(d))
        return sparsify(v, k, index), bits


class TopKCompressor(DigitalCompressor):
    """Top-k sparsification with error feedback ("Mem-SGD"; Stich, Cordonnier, Jaggi, "Sparsified
    SGD with memory", NeurIPS 2018).

    Per parameter tensor of d entries, with k = max(1, floor(fraction * d)) and memory e (zero at
    first):

        v = g + e,        message = top_k(v)  (the k largest |v_j| kept, the rest 0),        e <- v - message.

    The memory lives in the gradient domain (the paper's is lr-scaled: v = e + lr * g); with a
    constant learning rate the two are the same up to that factor. A message the link could not
    carry (``undelivered``) goes back into the memory: e <- v.

    Bits per tensor: k * (32 + ceil(log2 d)) (value and index of each kept entry); if k == d the
    tensor is sent dense, d * 32 bits.

    Args:
        fraction: share of each tensor's entries kept, in (0, 1].
        error_feedback: keep the memory e (False: e = 0 always).

    Example:
        >>> topk = TopKCompressor(fraction=0.5)
        >>> params = [torch.zeros(4)]
        >>> client, server = topk.make_client(params), topk.make_server(params)
        >>> message = client.encode([torch.tensor([1.0, -4.0, 3.0, 2.0])])
        >>> message[0].tolist()
        [0.0, -4.0, 3.0, 0.0]
        >>> client.message_bits(), client.memory[0].tolist()     # 2 * (32 + 2)
        (68, [1.0, 0.0, 0.0, 2.0])
        >>> server.decode(message)[0].tolist()                  # one client: the mean is its message
        [0.0, -4.0, 3.0, 0.0]
    """

    def __init__(self, fraction: float = 0.01, error_feedback: bool = True) -> None:
        self.fraction = check_fraction(fraction)
        self.error_feedback = bool(error_feedback)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> TopKClient:
        return TopKClient(self, params, index)

    def __repr__(self) -> str:
        return f"TopKCompressor(fraction={self.fraction}, error_feedback={self.error_feedback})"


def _zeta(k: int, levels: int, p: float) -> float:
    """TopK-dithering's scale zeta = 1 + omega for k kept entries (see :class:`TopKDitheringCompressor`)."""
    r = min(p, 2.0)
    spread = k ** (1 / r) * 2.0 ** (1 - levels)
    return 1 + 1 / 8 + spread * min(1.0, spread)


class TopKDitheringClient(_MessageClient):
    """One client of :class:`TopKDitheringCompressor`: its error-feedback memory, its generator and
    the bits of its last message; ``zetas`` holds each tensor's scale (a constant of the method)."""

    def __init__(self, method: TopKDitheringCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        tensors = check_params(params)
        super().__init__(tensors, index, error_feedback=method.error_feedback, seed=method.seed)
        self.fraction = method.fraction
        self.levels = method.levels
        self.p = method.p
        self.zetas = [method.zeta(keep_count(self.fraction, p.numel())) for p in tensors]  # one per tensor

    def _compress(self, i: int, v: Tensor) -> tuple[Tensor, int]:
        d = v.numel()
        k = keep_count(self.fraction, d)
        index = top_indices(v, k)
        kept = v[index]
        values = _natural_dither(kept, self.levels, self.p, self._uniform(kept)) / self.zetas[i]
        message = torch.zeros_like(v).index_copy_(0, index, values)
        index_bits = 0 if k == d else _index_bits(d)
        return message, 32 + k * (index_bits + 1 + _index_bits(self.levels + 1))


class TopKDitheringCompressor(DigitalCompressor):
    """Top-k followed by natural dithering, scaled into a contraction (Beznosikov, Horváth, Richtárik,
    Safaryan, "On biased compression for distributed learning", arXiv 2002.12410, JMLR 2023).

    Per tensor of d entries, with k = max(1, floor(fraction * d)), memory e and v = g + e:

        C(v) = D_nat^{p,s}(top_k(v)) / zeta,    zeta = 1 + omega,
        omega = 1/8 + k^(1/r) 2^(1-s) min(1, k^(1/r) 2^(1-s)),    r = min(p, 2),

    with D_nat applied to the k kept values (its norm is theirs) and e <- v - C(v) (gradient domain;
    an undelivered message goes back into the memory, e <- v). omega bounds D_nat's variance on a
    k-vector, so C is biased, with E||C(v) - v||^2 <= (1 - k/(d zeta)) ||v||^2. Since p is 2 or inf,
    r = 2. Each client dithers with its own generator.

    Bits per tensor: 32 + k * (ceil(log2 d) + 1 + ceil(log2(s + 1))) (the norm; per kept entry an
    index, a sign and a level); no index bits when k == d.

    Example:
        >>> c = TopKDitheringCompressor(fraction=0.5, levels=2, p=math.inf)
        >>> params = [torch.zeros(4)]
        >>> client, server = c.make_client(params), c.make_server(params)
        >>> round(client.zetas[0], 12)                       # 1 + 1/8 + sqrt(2)/2 * min(1, sqrt(2)/2)
        1.625
        >>> message = client.encode([torch.tensor([0.0, -4.0, 2.0, 1.0])])
        >>> [round(x, 4) for x in message[0].tolist()]
        [0.0, -2.4615, 1.2308, 0.0]
        >>> client.message_bits(), [round(x, 4) for x in client.memory[0].tolist()]  # 32 + 2 * 5; v - C(v)
        (42, [0.0, -1.5385, 0.7692, 1.0])
    """

    def __init__(
        self,
        fraction: float = 0.01,
        levels: int = 8,
        p: float = 2.0,
        error_feedback: bool = True,
        seed: int = 0,
    ) -> None:
        self.fraction = check_fraction(fraction)
        self.levels = _check_levels(levels)
        self.p = _check_p(p)
        self.error_feedback = bool(error_feedback)
        self.seed = _check_seed(seed)

    def zeta(self, k: int) -> float:
        """The scale zeta = 1 + omega of a tensor of which k entries are kept."""
        return _zeta(k, self.levels, self.p)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> TopKDitheringClient:
        return TopKDitheringClient(self, params, index)

    def __repr__(self) -> str:
        return (
            f"TopKDitheringCompressor(fraction={self.fraction}, levels={self.levels}, p={self.p}, "
            f"error_feedback={self.error_feedback}, seed={self.seed})"
        )
