"""Digital (non-summable) compressors: each client's message is bits on its own orthogonal link.

Top-k supports, per-client norms and random rounding make these compressors non-linear, so the sum
of the clients' messages cannot be formed over the air. A
client's ``encode`` returns the message as the server decodes it (one flattened tensor per
parameter tensor, same dtype and device as the gradient, a new tensor) and records its exact size
in ``client.bits`` (:meth:`~laser.compressor.DigitalClient.message_bits`); the digital link
(``channels.digital``) turns bits into channel uses. The server (:class:`~laser.compressor.DigitalServer`,
or :class:`SignSGDServer` for the majority vote) decodes the mean of the delivered messages; it
keeps nothing between rounds and broadcasts nothing.

Bit conventions (:class:`~laser.compressor.DigitalCompressor`), per parameter tensor of d entries,
summed over tensors: a float 32 bits, an index ``ceil(log2 d)`` bits, a sign 1 bit, one of L levels
``ceil(log2 L)`` bits.

Client state: the error-feedback memory (top-k, top-k + dithering), the momentum (signSGD), the
bits of the last message and, for the methods that round at random (QSGD, natural compression,
natural dithering, top-k + dithering), the client's own CPU ``torch.Generator``, seeded with
:func:`~laser.compressor.client_seed` ``(seed, index)``: a client's draws depend on the method's
``seed`` and its index only, not on which other clients take part or in which order they encode.
Uniforms are drawn on the CPU in the gradient's dtype and moved to its device, so a run is
reproducible on any device.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor

from laser.compressor import (
    DigitalClient,
    DigitalCompressor,
    DigitalServer,
    Shared,
    check_params,
    client_seed,
)
from laser.sparse import check_fraction, keep_count, sparsify

__all__ = [
    "NaturalClient",
    "NaturalCompressor",
    "NaturalDitheringClient",
    "NaturalDitheringCompressor",
    "QSGDClient",
    "QSGDCompressor",
    "QSparseClient",
    "QSparseCompressor",
    "SignSGDClient",
    "SignSGDCompressor",
    "SignSGDServer",
    "TopKClient",
    "TopKCompressor",
    "TopKDitheringClient",
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


def _zeta(k: int, levels: int, p: float) -> float:
    """TopK-dithering's scale zeta = 1 + omega for k kept entries (see :class:`TopKDitheringCompressor`)."""
    r = min(p, 2.0)
    spread = k ** (1 / r) * 2.0 ** (1 - levels)
    return 1 + 1 / 8 + spread * min(1.0, spread)


def _check_levels(levels: int) -> int:
    if isinstance(levels, bool) or not isinstance(levels, Integral) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
    return int(levels)


def _check_p(p: float) -> float:
    if not isinstance(p, Real) or p not in (2, math.inf):
        raise ValueError(f"p must be 2 or inf (math.inf), got {p!r}")
    return float(p)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


class _DigitalClient(DigitalClient):
    """Checks shared by this module's clients: the blocks handed back to :meth:`undelivered`."""

    def _checked_blocks(self, blocks: Sequence[Tensor]) -> list[Tensor]:
        if isinstance(blocks, Tensor):
            raise TypeError(
                "blocks must be a sequence of 1-D tensors (the message encode returned), got one tensor"
            )
        blocks = list(blocks)
        expected = [math.prod(shape) for shape in self.shapes]
        sizes = [int(b.numel()) if isinstance(b, Tensor) else -1 for b in blocks]
        if sizes != expected:
            raise ValueError(
                f"blocks must be the message encode returned: got {len(blocks)} blocks of sizes {sizes[:8]}; "
                f"expected {len(expected)} of sizes {expected[:8]}"
            )
        return blocks


class _MessageClient(_DigitalClient):
    """A client whose message is a per-tensor ``_compress(i, v) -> (message, bits)`` of
    ``v = g + memory``, with optional error feedback (memory = v - message, per tensor, in the
    gradient domain) and, for the methods that round at random, its own generator."""

    def __init__(
        self, params: Iterable[Tensor], index: int, *, error_feedback: bool, seed: int | None
    ) -> None:
        tensors = check_params(params)
        super().__init__(tensors, index)
        self.error_feedback = bool(error_feedback)
        self.memory: list[Tensor | None] = [None] * len(tensors)  # None: zero, before the first encode
        self.generator = (
            None if seed is None else torch.Generator().manual_seed(client_seed(seed, self.index))
        )

    @abstractmethod
    def _compress(self, i: int, v: Tensor) -> tuple[Tensor, int]:
        """Tensor ``i``'s message (as the server decodes it, a new tensor) and its size in bits."""

    def _uniform(self, like: Tensor) -> Tensor:
        assert self.generator is not None
        return torch.rand(like.shape, generator=self.generator, dtype=like.dtype).to(like.device)

    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        grads = self._checked(grads)
        message, bits = [], 0
        for i, g in enumerate(grads):
            v = g.reshape(-1)
            memory = self.memory[i]
            if self.error_feedback and memory is not None:
                v = v + memory
            q, b = self._compress(i, v)
            if self.error_feedback:
                self.memory[i] = v - q  # a new tensor: never a view of the caller's gradient
            message.append(q)
            bits += b
        self.bits = bits
        return message

    def undelivered(self, blocks: Sequence[Tensor]) -> None:
        blocks = self._checked_blocks(blocks)
        if self.error_feedback:  # memory = v - message: back to v
            for i, q in enumerate(blocks):
                memory = self.memory[i]
                if memory is not None:
                    self.memory[i] = memory + q

    def _state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"bits": self.bits}
        if self.error_feedback:
            state["memory"] = [None if m is None else m.clone() for m in self.memory]
        if self.generator is not None:
            state["generator"] = self.generator.get_state()  # a copy
        return state

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        keys = (
            {"bits"}
            | ({"memory"} if self.error_feedback else set())
            | ({"generator"} if self.generator is not None else set())
        )
        if not isinstance(state, Mapping) or set(state) != keys:
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"state must be a {type(self).__name__}.state_dict() with keys {sorted(keys)}, got {found}"
            )
        memory = None
        if self.error_feedback:
            memory = list(state["memory"])
            sizes = [None if m is None else int(m.numel()) for m in memory]
            if len(memory) != len(self.shapes) or any(
                s is not None and s != math.prod(shape) for s, shape in zip(sizes, self.shapes)
            ):
                raise ValueError(
                    f"state's memory has sizes {sizes}; this client's tensors have {len(self.shapes)}"
                )
        self.bits = int(state["bits"])
        if memory is not None:
            self.memory = [None if m is None else m.clone() for m in memory]
        if self.generator is not None:
            self.generator.set_state(state["generator"].cpu())


class TopKClient(_MessageClient):
    """One client of :class:`TopKCompressor`: its error-feedback memory (one flattened tensor per
    parameter, ``None`` before its first encode) and the bits of its last message."""

    def __init__(self, method: TopKCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        super().__init__(params, index, error_feedback=method.error_feedback, seed=None)
        self.fraction = method.fraction

    def _compress(self, i: int, v: Tensor) -> tuple[Tensor, int]:
        d = v.numel()
        k = keep_count(self.fraction, d)
        bits = 32 * d if k == d else k * (32 + _index_bits(d))
        return sparsify(v, k), bits


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
        index = v.abs().topk(k, sorted=False).indices
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


def qsparse_beta(k: int, levels: int) -> float:
    """beta_{k,s} = min(k / s^2, sqrt(k) / s): QSGD's variance bound on a k-vector with s levels."""
    return min(k / levels**2, math.sqrt(k) / levels)


class QSparseClient(_MessageClient):
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
        index = v.abs().topk(k, sorted=False).indices
        kept = v[index]
        index_bits = 0 if k == d else _index_bits(d)
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
