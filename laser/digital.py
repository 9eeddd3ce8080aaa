"""Digital (non-summable) compressors: each client's message is bits on its own orthogonal link.

Top-k supports, per-client norms and random rounding make these compressors non-linear, so the sum
of the clients' messages cannot be formed over the air (METHODS.md sections 0, 2, 3 and 10). Each
``encode`` returns the message as the server decodes it (one flattened tensor per parameter tensor,
same dtype and device as the gradient) and records its exact size in ``self.bits[client]``; the
digital link (``channels.digital``) turns bits into channel uses.

Bit conventions (:class:`~laser.compressor.DigitalCompressor`), per parameter tensor of d entries,
summed over tensors: a float 32 bits, an index ``ceil(log2 d)`` bits, a sign 1 bit, one of L levels
``ceil(log2 L)`` bits.

Randomness: the stochastic compressors own one CPU ``torch.Generator`` seeded in ``setup`` from the
constructor's ``seed``; uniforms are drawn on the CPU in the gradient's dtype and moved to its
device, so a run is reproducible on any device. All clients draw from it in encode order.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from numbers import Integral, Real
from typing import ClassVar, cast

import torch
from torch import Tensor

from laser.baselines import SignumCompressor
from laser.compressor import DigitalCompressor
from laser.sparse import check_fraction, keep_count, sparsify

__all__ = [
    "NaturalCompressor",
    "NaturalDitheringCompressor",
    "QSGDCompressor",
    "SignSGDCompressor",
    "TopKCompressor",
    "TopKDitheringCompressor",
]


def _index_bits(d: int) -> int:
    """ceil(log2 d), exactly, for d >= 1 (0 for d == 1)."""
    return (d - 1).bit_length()


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


def _check_levels(levels: int) -> int:
    if isinstance(levels, bool) or not isinstance(levels, Integral) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
    return int(levels)


def _check_p(p: float) -> float:
    if not isinstance(p, Real) or p not in (2, math.inf):
        raise ValueError(f"p must be 2 or inf (math.inf), got {p!r}")
    return float(p)


class _MessageCompressor(DigitalCompressor):
    """Shared machinery: a per-tensor ``_compress(v) -> (message, bits)``, optional error feedback
    (memory_k = v - message, per client and tensor) and an owned generator (stochastic ones)."""

    error_feedback: bool = False
    seed: int | None = None  # None: deterministic, no generator

    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        super().setup(params, num_clients)
        self.memory: list[list[Tensor | None]] = [[None] * len(params) for _ in range(num_clients)]
        self.generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)

    @abstractmethod
    def _compress(self, v: Tensor) -> tuple[Tensor, int]:
        """One tensor's message (as the server decodes it) and its size in bits."""

    def _uniform(self, like: Tensor) -> Tensor:
        return torch.rand(like.shape, generator=self.generator, dtype=like.dtype).to(like.device)

    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        message, bits = [], 0
        for i, (g, shape) in enumerate(zip(grads, self.shapes, strict=True)):
            if g.shape != shape:
                raise ValueError(f"gradient {i} has shape {tuple(g.shape)}, expected {tuple(shape)}")
            v = g.reshape(-1)
            memory = self.memory[client][i]
            if self.error_feedback and memory is not None:
                v = v + memory
            q, b = self._compress(v)
            if self.error_feedback:
                self.memory[client][i] = v - q  # gradient domain: not scaled by the lr
            message.append(q)
            bits += b
        self.bits[client] = bits
        return message

    def undelivered(self, client: int, message: Sequence[Tensor]) -> None:
        if self.error_feedback:  # memory = v - message: back to v
            for i, q in enumerate(message):
                memory = self.memory[client][i]
                if memory is not None:
                    self.memory[client][i] = memory + q

    def state_dict(self) -> dict[str, object]:
        state: dict[str, object] = {"bits": list(self.bits)}
        if self.error_feedback:
            state["memory"] = [[None if m is None else m.clone() for m in row] for row in self.memory]
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.bits = list(cast(list[int], state["bits"]))
        if "memory" in state:
            memory = cast(list[list[Tensor | None]], state["memory"])
            self.memory = [[None if m is None else m.clone() for m in row] for row in memory]
        if "generator" in state:
            self.generator = torch.Generator()
            self.generator.set_state(cast(Tensor, state["generator"]).cpu())


class TopKCompressor(_MessageCompressor):
    """Top-k sparsification with error feedback ("Mem-SGD"; Stich, Cordonnier, Jaggi, "Sparsified
    SGD with memory", NeurIPS 2018).

    Per parameter tensor of d entries, with k = max(1, floor(fraction * d)) and memory e (zero at
    first):

        v = g + e,        message = top_k(v)  (the k largest |v_j| kept, the rest 0),        e <- v - message.

    The memory lives in the gradient domain (the paper's is lr-scaled: v = e + lr * g); with a
    constant learning rate the two are the same up to that factor.

    Bits per tensor: k * (32 + ceil(log2 d)) (value and index of each kept entry); if k == d the
    tensor is sent dense, d * 32 bits.

    Args:
        fraction: share of each tensor's entries kept, in (0, 1].
        error_feedback: keep the memory e (False: e = 0 always).

    Example:
        >>> topk = TopKCompressor(fraction=0.5)
        >>> topk.setup([torch.zeros(4)], num_clients=1)
        >>> topk.encode(0, [torch.tensor([1.0, -4.0, 3.0, 2.0])])[0].tolist()
        [0.0, -4.0, 3.0, 0.0]
        >>> topk.message_bits(0), topk.memory[0][0].tolist()     # 2 * (32 + 2)
        (68, [1.0, 0.0, 0.0, 2.0])
    """

    def __init__(self, fraction: float = 0.01, error_feedback: bool = True) -> None:
        self.fraction = check_fraction(fraction)
        self.error_feedback = bool(error_feedback)

    def _compress(self, v: Tensor) -> tuple[Tensor, int]:
        d = v.numel()
        k = keep_count(self.fraction, d)
        bits = 32 * d if k == d else k * (32 + _index_bits(d))
        return sparsify(v, k), bits


class QSGDCompressor(_MessageCompressor):
    """QSGD stochastic quantisation (Alistarh, Grubic, Li, Tomioka, Vojnovic, "QSGD:
    Communication-efficient SGD via gradient quantization and encoding", NeurIPS 2017).

    Per tensor v of d entries, with s = levels and l_j = floor(s |v_j| / ||v||_2):

        q_j = ||v||_2 sign(v_j) xi_j / s,    xi_j = l_j + 1 w.p. s |v_j| / ||v||_2 - l_j, else l_j,

    so E[q] = v (unbiased; no error feedback). A zero tensor is sent as zeros.

    Bits per tensor: 32 + d * (1 + ceil(log2(s + 1))): the norm, and a sign and one of s + 1 levels
    per entry, fixed-length coded (an upper bound on the paper's Elias coding).

    Example:
        >>> qsgd = QSGDCompressor(levels=5)
        >>> qsgd.setup([torch.zeros(2)], num_clients=1)
        >>> qsgd.encode(0, [torch.tensor([3.0, -4.0])])[0].tolist()   # s|v|/||v|| = 3, 4: on the grid
        [3.0, -4.0]
        >>> qsgd.message_bits(0)                                       # 32 + 2 * (1 + ceil(log2 6))
        40
    """

    def __init__(self, levels: int = 4, seed: int = 0) -> None:
        self.levels = _check_levels(levels)
        self.seed = int(seed)

    def _compress(self, v: Tensor) -> tuple[Tensor, int]:
        s = self.levels
        bits = 32 + v.numel() * (1 + _index_bits(s + 1))
        norm = torch.linalg.vector_norm(v)
        u = self._uniform(v)  # drawn even for a zero tensor: fixed stream
        if norm == 0:
            return torch.zeros_like(v), bits
        scaled = (s * v.abs() / norm).clamp(max=s)
        lower = scaled.floor()
        xi = lower + (u < scaled - lower).to(v.dtype)
        return norm * torch.sign(v) * xi / s, bits


class NaturalCompressor(_MessageCompressor):
    """Natural compression C_nat (Horváth, Ho, Horváth, Sahu, Canini, Richtárik, "Natural compression
    for distributed deep learning", arXiv 1905.10988, 2019; MSML 2022).

    Each nonzero entry t is rounded at random to a neighbouring signed power of two, without bias:

        C(t) = sign(t) 2^floor(log2|t|) w.p. 2 - |t| / 2^floor(log2|t|), else sign(t) 2^(floor(log2|t|)+1),

    e.g. 2.5 -> 2 w.p. 3/4 and 4 w.p. 1/4; powers of two and zeros are unchanged. Variance
    E||C(x) - x||^2 <= ||x||^2 / 8. No error feedback.

    Bits: 9 per entry (a sign and an 8-bit float32 exponent; the mantissa is dropped).

    Example:
        >>> nat = NaturalCompressor()
        >>> nat.setup([torch.zeros(3)], num_clients=1)
        >>> nat.encode(0, [torch.tensor([4.0, -0.5, 0.0])])[0].tolist()
        [4.0, -0.5, 0.0]
        >>> nat.message_bits(0)
        27
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def _compress(self, v: Tensor) -> tuple[Tensor, int]:
        return _natural_round(v, self._uniform(v)), 9 * v.numel()


class NaturalDitheringCompressor(_MessageCompressor):
    """Natural dithering D_nat^{p,s} (Horváth et al., "Natural compression for distributed deep
    learning", 2019/2022).

    Per tensor v, with y_j = |v_j| / ||v||_p and the s + 1 levels {0, 2^(1-s), 2^(2-s), ..., 1/2, 1}:

        D(v)_j = ||v||_p sign(v_j) level_j,

    where level_j is one of the two levels around y_j, drawn so that E[level_j] = y_j (unbiased; no
    error feedback). A zero tensor is sent as zeros.

    Bits per tensor: 32 + d * (1 + ceil(log2(s + 1))) (the norm; a sign and a level per entry).

    Args:
        levels: s >= 1 (s + 1 levels including 0).
        p: the norm, 2 or ``math.inf``.

    Example:
        >>> dither = NaturalDitheringCompressor(levels=3, p=math.inf)
        >>> dither.setup([torch.zeros(3)], num_clients=1)
        >>> dither.encode(0, [torch.tensor([-8.0, 2.0, 4.0])])[0].tolist()  # y = 1, 1/4, 1/2: on the grid
        [-8.0, 2.0, 4.0]
        >>> dither.message_bits(0)                                          # 32 + 3 * (1 + 2)
        41
    """

    def __init__(self, levels: int = 8, p: float = 2.0, seed: int = 0) -> None:
        self.levels = _check_levels(levels)
        self.p = _check_p(p)
        self.seed = int(seed)

    def _compress(self, v: Tensor) -> tuple[Tensor, int]:
        bits = 32 + v.numel() * (1 + _index_bits(self.levels + 1))
        return _natural_dither(v, self.levels, self.p, self._uniform(v)), bits


class TopKDitheringCompressor(_MessageCompressor):
    """Top-k followed by natural dithering, scaled into a contraction (Beznosikov, Horváth, Richtárik,
    Safaryan, "On biased compression for distributed learning", arXiv 2002.12410, JMLR 2023).

    Per tensor of d entries, with k = max(1, floor(fraction * d)), memory e and v = g + e:

        C(v) = D_nat^{p,s}(top_k(v)) / zeta,    zeta = 1 + omega,
        omega = 1/8 + k^(1/r) 2^(1-s) min(1, k^(1/r) 2^(1-s)),    r = min(p, 2),

    with D_nat applied to the k kept values (its norm is theirs) and e <- v - C(v) (gradient domain).
    omega bounds D_nat's variance on a k-vector, so C is biased, with E||C(v) - v||^2 <= (1 - k/(d
    zeta)) ||v||^2. Since p is 2 or inf, r = 2.

    Bits per tensor: 32 + k * (ceil(log2 d) + 1 + ceil(log2(s + 1))) (the norm; per kept entry an
    index, a sign and a level); no index bits when k == d.

    Example:
        >>> c = TopKDitheringCompressor(fraction=0.5, levels=2, p=math.inf)
        >>> c.setup([torch.zeros(4)], num_clients=1)
        >>> round(c.zetas[0], 12)                             # 1 + 1/8 + sqrt(2)/2 * min(1, sqrt(2)/2)
        1.625
        >>> [round(x, 4) for x in c.encode(0, [torch.tensor([0.0, -4.0, 2.0, 1.0])])[0].tolist()]
        [0.0, -2.4615, 1.2308, 0.0]
        >>> c.message_bits(0)                                 # 32 + 2 * (2 + 1 + 2)
        42
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
        self.seed = int(seed)

    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        super().setup(params, num_clients)
        self.zetas = [self._zeta(keep_count(self.fraction, p.numel())) for p in params]  # one per tensor

    def _zeta(self, k: int) -> float:
        r = min(self.p, 2.0)
        spread = k ** (1 / r) * 2.0 ** (1 - self.levels)
        return 1 + 1 / 8 + spread * min(1.0, spread)

    def _compress(self, v: Tensor) -> tuple[Tensor, int]:
        d = v.numel()
        k = keep_count(self.fraction, d)
        index = v.abs().topk(k, sorted=False).indices
        kept = v[index]
        values = _natural_dither(kept, self.levels, self.p, self._uniform(kept)) / self._zeta(k)
        message = torch.zeros_like(v).index_copy_(0, index, values)
        index_bits = 0 if k == d else _index_bits(d)
        return message, 32 + k * (index_bits + 1 + _index_bits(self.levels + 1))


class SignSGDCompressor(SignumCompressor, DigitalCompressor):
    """signSGD / Signum with majority vote (Bernstein, Wang, Azizzadenesheli, Anandkumar, "signSGD:
    Compressed optimisation for non-convex problems", ICML 2018; majority vote: ICLR 2019).

    Client k keeps m_k = momentum * m_k + (1 - momentum) * g (m_k = 0 at first; momentum 0 is plain
    signSGD, m_k = g) and sends sign(m_k), entries in {-1, 0, 1} (0 only where m_k is exactly 0).
    The server's estimate is the majority vote over the delivered messages:

        decode = sign(mean_k sign(m_k)) = sign(sum_k sign(m_k))   (0 on a tie).

    Bits: d per tensor (one sign per entry). The encoding and the vote are
    :class:`~laser.baselines.SignumCompressor`'s; only the link differs (exact bits instead of the
    noisy over-the-air sum).

    Example:
        >>> sign = SignSGDCompressor()
        >>> sign.setup([torch.zeros(3)], num_clients=3)
        >>> grads = [torch.tensor(g) for g in ([1.0, -2.0, 0.5], [-1.0, -1.0, 3.0], [2.0, 1.0, -1.0])]
        >>> msgs = [sign.encode(k, [g])[0] for k, g in enumerate(grads)]
        >>> sign.decode([torch.stack(msgs).mean(0)])[0].tolist(), sign.message_bits(0)
        ([1.0, -1.0, 1.0], 3)
    """

    analog: ClassVar[bool] = False

    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        super().setup(params, num_clients)  # Signum's buffers
        self.bits = [0] * num_clients

    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        message = super().encode(client, grads)
        self.bits[client] = sum(g.numel() for g in grads)
        return message

    def state_dict(self) -> dict[str, object]:
        return {**super().state_dict(), "bits": list(self.bits)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        super().load_state_dict(state)
        self.bits = list(cast(list[int], state["bits"]))
