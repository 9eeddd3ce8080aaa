"""Qsparse-local-SGD's composed compressors (:class:`QSparseCompressor`): top-k, then QSGD or the
sign, scaled into a contraction, with error feedback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from laser.compressor import DigitalCompressor
from laser.digital.common import _check_levels, _check_seed, _index_bits, _SparseMessageClient
from laser.digital.quantisers import _qsgd_round
from laser.sparse import check_fraction, keep_count, top_indices

__all__ = [
    "QSparseClient",
    "QSparseCompressor",
    "qsparse_beta",
]


def qsparse_beta(k: int, levels: int) -> float:
    """beta_{k,s} = min(k / s^2, sqrt(k) / s): QSGD's variance bound on a k-vector with s levels."""
    return min(k / levels**2, math.sqrt(k) / levels)


class QSparseClient(_SparseMessageClient):
    """One client of :class:`QSparseCompressor`: its error-feedback memory, its generator (``qsgd``
    only: the sign quantizer draws nothing) and the bits of its last message."""

    def __init__(self, method: QSparseCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        seed = method.seed if method.quantizer == "qsgd" else None
        super().__init__(params, index, error_feedback=method.error_feedback, seed=seed)
        self.fraction = method.fraction
        self.levels = method.levels
        self.quantizer = method.quantizer

    def _compress(self, i: int, v: Tensor) -> tuple[Tensor, int]:
        d = v.numel()
        k = keep_count(self.fraction, d)
        index = top_indices(v, k)
        kept = v[index]
        index_bits = 0 if k == d else _index_bits(d)
        self._keep_layout(
            i, 32, index_bits + 1 + (0 if self.quantizer == "sign" else _index_bits(self.levels + 1)), index
        )
        if self.quantizer == "sign":
            values = torch.sign(kept) * (kept.abs().sum() / k)
            bits = 32 + k * (index_bits + 1)
        else:
            s = self.levels
            values = _qsgd_round(kept, s, self._uniform(kept)) / (1 + qsparse_beta(k, s))
            bits = 32 + k * (index_bits + 1 + _index_bits(s + 1))
        return torch.zeros_like(v).index_copy_(0, index, values), bits


class QSparseCompressor(DigitalCompressor):
    """The composed compressors of Qsparse-local-SGD (Basu, Data, Karakus, Diggavi, "Qsparse-local-SGD:
    Distributed SGD with quantization, sparsification, and local computations", NeurIPS 2019), with
    error feedback; with local steps (``clients.lr``, ``clients.local_steps``) the vector compressed
    is the accumulated local change plus the memory, as in the paper's synchronous algorithm.

    Per tensor of d entries, with k = max(1, floor(fraction * d)), memory e, v = g + e and
    T = top_k(v) (the k entries largest in magnitude; the others 0):

    - ``quantizer="qsgd"`` (Q_s o Top_k): C(v) = Q_s(T) / (1 + beta_{k,s}), Q_s QSGD with s levels on
      the kept values (their norm), beta_{k,s} = min(k / s^2, sqrt(k) / s). Then
      E||C(v) - v||^2 = ||v||^2 - ||T||^2 / (1 + beta) <= (1 - k / (d (1 + beta))) ||v||^2;
    - ``quantizer="sign"`` (Sign o Top_k): C(v) = sign(T) ||T||_1 / k (deterministic), so
      ||C(v) - v||^2 = ||v||^2 - ||T||_1^2 / k <= (1 - 1/d) ||v||^2;

    and e <- v - C(v) (an undelivered message goes back into the memory: e <- v). Each client rounds
    with its own generator (``qsgd``).

    Bits per tensor (no index bits when k == d): ``qsgd`` 32 + k (ceil(log2 d) + 1 + ceil(log2(s + 1)))
    (the norm; per kept entry an index, a sign and a level); ``sign`` 32 + k (ceil(log2 d) + 1) (the
    scale ||T||_1 / k; per kept entry an index and a sign).

    Args:
        fraction: share of each tensor's entries kept, in (0, 1].
        levels: s >= 1 (``qsgd``).
        quantizer: ``"qsgd"`` or ``"sign"``.
        error_feedback: keep the memory e (False: e = 0 always).
        seed: the seed of the clients' generators (client k's: ``client_seed(seed, k)``).

    Example:
        >>> c = QSparseCompressor(fraction=0.5, quantizer="sign")
        >>> params = [torch.zeros(4)]
        >>> client, server = c.make_client(params), c.make_server(params)
        >>> client.encode([torch.tensor([0.0, -4.0, 2.0, 1.0])])[0].tolist()   # (4 + 2) / 2 = 3
        [0.0, -3.0, 3.0, 0.0]
        >>> client.message_bits(), client.memory[0].tolist()                     # 32 + 2 * (2 + 1)
        (38, [0.0, -1.0, -1.0, 1.0])
    """

    def __init__(
        self,
        fraction: float = 0.01,
        levels: int = 8,
        quantizer: str = "qsgd",
        error_feedback: bool = True,
        seed: int = 0,
    ) -> None:
        self.fraction = check_fraction(fraction)
        self.levels = _check_levels(levels)
        if quantizer not in ("qsgd", "sign"):
            raise ValueError(f"quantizer must be 'qsgd' or 'sign', got {quantizer!r}")
        self.quantizer = quantizer
        self.error_feedback = bool(error_feedback)
        self.seed = _check_seed(seed)

    def contraction(self, d: int) -> float:
        """gamma of the bound E||C(v) - v||^2 <= (1 - gamma) ||v||^2 on a tensor of d entries:
        k / (d (1 + beta_{k,s})) (``qsgd``), 1 / d (``sign``)."""
        k = keep_count(self.fraction, d)
        return 1 / d if self.quantizer == "sign" else k / (d * (1 + qsparse_beta(k, self.levels)))

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> QSparseClient:
        return QSparseClient(self, params, index)

    def __repr__(self) -> str:
        return (
            f"QSparseCompressor(fraction={self.fraction}, levels={self.levels}, "
            f"quantizer={self.quantizer!r}, error_feedback={self.error_feedback}, seed={self.seed})"
        )
