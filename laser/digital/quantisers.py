"""The digital quantisers: every entry sent, each rounded to a few bits. QSGD (:class:`QSGDCompressor`),
natural compression (:class:`NaturalCompressor`), natural dithering
(:class:`NaturalDitheringCompressor`) and signSGD with majority vote (:class:`SignSGDCompressor`),
with the rounding maps that the sparsifiers and Qsparse-local-SGD apply to their kept entries.
"""

from __future__ import annotations

import math  # noqa: F401  (the examples use math.inf)
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from laser.compressor import DigitalCompressor, DigitalServer, Shared, check_params
from laser.digital.common import (
    _check_levels,
    _check_p,
    _check_seed,
    _DigitalClient,
    _index_bits,
    _MessageClient,
)

__all__ = [
    "NaturalClient",
    "NaturalCompressor",
    "NaturalDitheringClient",
    "NaturalDitheringCompressor",
    "QSGDClient",
    "QSGDCompressor",
    "SignSGDClient",
    "SignSGDCompressor",
    "SignSGDServer",
]


def _natural_round(x: Tensor, u: Tensor) -> Tensor:
    """C_nat: unbiased random rounding of each entry to a signed power of two (``u`` ~ U[0, 1))."""
    magnitude = x.abs()
    _, exponent = torch.frexp(magnitude)  # |x| = mantissa * 2^exponent, mantissa in [0.5, 1)
    lower = torch.exp2((exponent - 1).to(x.dtype))  # 2^floor(log2 |x|)
    prob_up = magnitude / lower - 1  # in [0, 1); 0 for exact powers of two
    rounded = torch.where(u < prob_up, 2 * lower, lower)
    return torch.where(magnitude > 0, torch.sign(x) * rounded, torch.zeros_like(x))


def _natural_dither(v: Tensor, levels: int, p: float, u: Tensor) -> Tensor:
    """D_nat^{p,s}: ||v||_p sign(v_j) times y_j = |v_j| / ||v||_p rounded at random, without bias, to
    a neighbouring level of {0, 2^(1-s), ..., 1/2, 1}."""
    norm = torch.linalg.vector_norm(v, ord=p)
    if norm == 0:
        return torch.zeros_like(v)
    y = (v.abs() / norm).clamp(max=1.0)  # rounding can push y a hair above 1
    _, exponent = torch.frexp(y)
    lower = torch.exp2((exponent - 1).to(v.dtype))  # 2^floor(log2 y)
    smallest = 2.0 ** (1 - levels)
    lower = torch.where((lower < smallest) | (y == 0), torch.zeros_like(y), lower)
    upper = torch.where(lower == 0, torch.full_like(y, smallest), 2 * lower)
    prob_up = (y - lower) / (upper - lower)
    level = torch.where(u < prob_up, upper, lower)
    return norm * torch.sign(v) * level


def _qsgd_round(v: Tensor, levels: int, u: Tensor) -> Tensor:
    """Q_s: QSGD's unbiased rounding of |v_j| / ||v||_2 to one of the s + 1 levels {0, 1/s, ..., 1}
    (``u`` ~ U[0, 1), one per entry), times ||v||_2 sign(v_j); zeros for a zero ``v``."""
    s = levels
    norm = torch.linalg.vector_norm(v)
    if norm == 0:
        return torch.zeros_like(v)
    scaled = (s * v.abs() / norm).clamp(max=s)
    lower = scaled.floor()
    xi = lower + (u < scaled - lower).to(v.dtype)
    return norm * torch.sign(v) * xi / s


class QSGDClient(_MessageClient):
    """One client of :class:`QSGDCompressor`: its generator and the bits of its last message."""

    def __init__(self, method: QSGDCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        super().__init__(params, index, error_feedback=False, seed=method.seed)
        self.levels = method.levels

    def _compress(self, i: int, v: Tensor) -> tuple[Tensor, int]:
        s = self.levels
        bits = 32 + v.numel() * (1 + _index_bits(s + 1))
        return _qsgd_round(v, s, self._uniform(v)), bits  # drawn even for a zero tensor: fixed stream


class QSGDCompressor(DigitalCompressor):
    """QSGD stochastic quantisation (Alistarh, Grubic, Li, Tomioka, Vojnovic, "QSGD:
    Communication-efficient SGD via gradient quantization and encoding", NeurIPS 2017).

    Per tensor v of d entries, with s = levels and l_j = floor(s |v_j| / ||v||_2):

        q_j = ||v||_2 sign(v_j) xi_j / s,    xi_j = l_j + 1 w.p. s |v_j| / ||v||_2 - l_j, else l_j,

    so E[q] = v (unbiased; no error feedback), with E||q - v||^2 <= min(d / s^2, sqrt(d) / s) ||v||^2.
    A zero tensor is sent as zeros. Each client rounds with its own generator, seeded with
    ``client_seed(seed, index)``.

    Bits per tensor: 32 + d * (1 + ceil(log2(s + 1))): the norm, and a sign and one of s + 1 levels
    per entry, fixed-length coded (an upper bound on the paper's Elias coding).

    Example:
        >>> qsgd = QSGDCompressor(levels=5)
        >>> params = [torch.zeros(2)]
        >>> client, server = qsgd.make_client(params, index=0), qsgd.make_server(params)
        >>> message = client.encode([torch.tensor([3.0, -4.0])])
        >>> message[0].tolist()                    # s|v|/||v|| = 3, 4: on the grid, nothing to round
        [3.0, -4.0]
        >>> client.message_bits()                  # 32 + 2 * (1 + ceil(log2 6))
        40
        >>> server.decode(message)[0].tolist()
        [3.0, -4.0]
    """

    def __init__(self, levels: int = 4, seed: int = 0) -> None:
        self.levels = _check_levels(levels)
        self.seed = _check_seed(seed)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> QSGDClient:
        return QSGDClient(self, params, index)

    def __repr__(self) -> str:
        return f"QSGDCompressor(levels={self.levels}, seed={self.seed})"


class NaturalClient(_MessageClient):
    """One client of :class:`NaturalCompressor`: its generator and the bits of its last message."""

    def __init__(self, method: NaturalCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        super().__init__(params, index, error_feedback=False, seed=method.seed)

    def _compress(self, i: int, v: Tensor) -> tuple[Tensor, int]:
        return _natural_round(v, self._uniform(v)), 9 * v.numel()


class NaturalCompressor(DigitalCompressor):
    """Natural compression C_nat (Horváth, Ho, Horváth, Sahu, Canini, Richtárik, "Natural compression
    for distributed deep learning", arXiv 1905.10988, 2019; MSML 2022).

    Each nonzero entry t is rounded at random to a neighbouring signed power of two, without bias:

        C(t) = sign(t) 2^floor(log2|t|) w.p. 2 - |t| / 2^floor(log2|t|), else sign(t) 2^(floor(log2|t|)+1),

    e.g. 2.5 -> 2 w.p. 3/4 and 4 w.p. 1/4; powers of two and zeros are unchanged. Variance
    E||C(x) - x||^2 <= ||x||^2 / 8. No error feedback; each client rounds with its own generator.

    Bits: 9 per entry (a sign and an 8-bit float32 exponent; the mantissa is dropped).

    Example:
        >>> nat = NaturalCompressor(seed=0)
        >>> params = [torch.zeros(3)]
        >>> client, server = nat.make_client(params), nat.make_server(params)
        >>> message = client.encode([torch.tensor([4.0, -0.5, 0.0])])
        >>> message[0].tolist(), client.message_bits()          # powers of two: unchanged; 9 * 3 bits
        ([4.0, -0.5, 0.0], 27)
        >>> server.decode(message)[0].tolist()
        [4.0, -0.5, 0.0]
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = _check_seed(seed)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> NaturalClient:
        return NaturalClient(self, params, index)

    def __repr__(self) -> str:
        return f"NaturalCompressor(seed={self.seed})"


class NaturalDitheringClient(_MessageClient):
    """One client of :class:`NaturalDitheringCompressor`: its generator and the bits of its last
    message."""

    def __init__(self, method: NaturalDitheringCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        super().__init__(params, index, error_feedback=False, seed=method.seed)
        self.levels = method.levels
        self.p = method.p

    def _compress(self, i: int, v: Tensor) -> tuple[Tensor, int]:
        bits = 32 + v.numel() * (1 + _index_bits(self.levels + 1))
        return _natural_dither(v, self.levels, self.p, self._uniform(v)), bits


class NaturalDitheringCompressor(DigitalCompressor):
    """Natural dithering D_nat^{p,s} (Horváth et al., "Natural compression for distributed deep
    learning", 2019/2022).

    Per tensor v, with y_j = |v_j| / ||v||_p and the s + 1 levels {0, 2^(1-s), 2^(2-s), ..., 1/2, 1}:

        D(v)_j = ||v||_p sign(v_j) level_j,

    where level_j is one of the two levels around y_j, drawn (with the client's own generator) so
    that E[level_j] = y_j (unbiased; no error feedback). A zero tensor is sent as zeros.

    Bits per tensor: 32 + d * (1 + ceil(log2(s + 1))) (the norm; a sign and a level per entry).

    Args:
        levels: s >= 1 (s + 1 levels including 0).
        p: the norm, 2 or ``math.inf``.
        seed: the seed of the clients' generators (client k's: ``client_seed(seed, k)``).

    Example:
        >>> dither = NaturalDitheringCompressor(levels=3, p=math.inf)
        >>> params = [torch.zeros(3)]
        >>> client, server = dither.make_client(params), dither.make_server(params)
        >>> message = client.encode([torch.tensor([-8.0, 2.0, 4.0])])
        >>> message[0].tolist()                    # y = 1, 1/4, 1/2: on the grid
        [-8.0, 2.0, 4.0]
        >>> client.message_bits()                  # 32 + 3 * (1 + 2)
        41
        >>> dither
        NaturalDitheringCompressor(levels=3, p=inf, seed=0)
    """

    def __init__(self, levels: int = 8, p: float = 2.0, seed: int = 0) -> None:
        self.levels = _check_levels(levels)
        self.p = _check_p(p)
        self.seed = _check_seed(seed)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> NaturalDitheringClient:
        return NaturalDitheringClient(self, params, index)

    def __repr__(self) -> str:
        return f"NaturalDitheringCompressor(levels={self.levels}, p={self.p}, seed={self.seed})"


class SignSGDClient(_DigitalClient):
    """One client of :class:`SignSGDCompressor`: its momentum ``buffers`` m_k (one flattened tensor
    per parameter, ``None`` before its first encode and always with momentum 0) and the bits of its
    last message. An undelivered message changes nothing: the momentum is not error feedback."""

    def __init__(self, method: SignSGDCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        tensors = check_params(params)
        super().__init__(tensors, index)
        self.momentum: float = method.momentum
        self.buffers: list[Tensor | None] = [None] * len(tensors)

    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        grads = self._checked(grads)
        beta = self.momentum
        if beta == 0:
            message = [torch.sign(g.reshape(-1)) for g in grads]
        else:
            message = []
            for i, g in enumerate(grads):
                previous, g = self.buffers[i], g.reshape(-1)
                m = g * (1 - beta) if previous is None else previous * beta + g * (1 - beta)  # new tensors
                self.buffers[i] = m
                message.append(torch.sign(m))
        self.bits = sum(g.numel() for g in grads)
        return message

    def undelivered(self, blocks: Sequence[Tensor]) -> None:
        self._checked_blocks(blocks)

    def _state_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "buffers": [None if m is None else m.clone() for m in self.buffers]}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or set(state) != {"bits", "buffers"}:
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"state must be a SignSGDClient.state_dict() with keys ['bits', 'buffers'], got {found}"
            )
        buffers = list(state["buffers"])
        if len(buffers) != len(self.shapes):
            raise ValueError(
                f"state holds {len(buffers)} momentum buffers; this client has {len(self.shapes)} tensors"
            )
        self.bits = int(state["bits"])
        self.buffers = [None if m is None else m.clone() for m in buffers]


class SignSGDServer(DigitalServer):
    """The majority vote: the sign of the mean of the delivered sign messages (0 on a tie)."""

    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor]:
        return [torch.sign(b).reshape(shape) for b, shape in zip(blocks, self.shapes, strict=True)]


class SignSGDCompressor(DigitalCompressor):
    """signSGD / Signum with majority vote (Bernstein, Wang, Azizzadenesheli, Anandkumar, "signSGD:
    Compressed optimisation for non-convex problems", ICML 2018; majority vote: ICLR 2019).

    Client k keeps m_k = momentum * m_k + (1 - momentum) * g (m_k = 0 at first; momentum 0 is plain
    signSGD, m_k = g) and sends sign(m_k), entries in {-1, 0, 1} (0 only where m_k is exactly 0).
    The server's estimate is the majority vote over the delivered messages:

        decode = sign(mean_k sign(m_k)) = sign(sum_k sign(m_k))   (0 on a tie).

    Bits: d per tensor (one sign per entry). The encoding and the vote are those of
    :class:`~laser.baselines.SignumCompressor`; only the link differs (exact bits on orthogonal
    links instead of the noisy over-the-air sum).

    Args:
        momentum: beta in [0, 1).

    Example:
        >>> sign = SignSGDCompressor()
        >>> params = [torch.zeros(3)]
        >>> clients, server = [sign.make_client(params, k) for k in range(3)], sign.make_server(params)
        >>> grads = [torch.tensor(g) for g in ([1.0, -2.0, 0.5], [-1.0, -1.0, 3.0], [2.0, 1.0, -1.0])]
        >>> msgs = [client.encode([g])[0] for client, g in zip(clients, grads)]
        >>> server.decode([torch.stack(msgs).mean(0)])[0].tolist(), clients[0].message_bits()
        ([1.0, -1.0, 1.0], 3)
    """

    def __init__(self, momentum: float = 0.0) -> None:
        if isinstance(momentum, bool) or not (isinstance(momentum, Real) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
        self.momentum: float = float(momentum)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> SignSGDClient:
        return SignSGDClient(self, params, index)

    def make_server(self, params: Iterable[Tensor]) -> SignSGDServer:
        return SignSGDServer(params)

    def __repr__(self) -> str:
        return f"SignSGDCompressor(momentum={self.momentum})"
