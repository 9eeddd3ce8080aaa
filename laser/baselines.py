"""LASER's analog baselines: Random-K, count-mean sketch and Signum with majority vote.

All three send real vectors that add up meaningfully over the air: Random-K and the sketch are
linear maps of the client's gradient whose randomness (the support, the hash and the signs) is
drawn from one generator shared by every client and the server, freshly each round; Signum sends
sign vectors, whose sum is all the majority vote needs. They use the channel and the energy
allocation exactly as LASER does (LASER paper, section 4 and appendix; reference notes §4.3-4.5).

References: Makkuva et al., "LASER: Linear Compression in Wireless Distributed Optimization",
ICML 2024 (baselines); Stich, Cordonnier, Jaggi, "Sparsified SGD with memory", NeurIPS 2018
(random-k with error feedback); Charikar, Chen, Farach-Colton, "Finding frequent items in data
streams", ICALP 2002 (count sketch); Bernstein et al., "signSGD: compressed optimisation for
non-convex problems", ICML 2018 (Signum, majority vote).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from laser.compressor import Compressor
from laser.sparse import check_fraction, keep_count

__all__ = ["RandomKCompressor", "CountSketchCompressor", "SignumCompressor", "count_sketch", "count_unsketch"]


class _SharedRandomness(Compressor):
    """Per-round randomness common to all clients and the server: one CPU generator seeded with
    ``seed``, advanced once per round (drawn lazily by the first ``encode`` or ``decode`` of the
    round), so the draws do not depend on the device or on how many clients take part."""

    def __init__(self, fraction: float, error_feedback: bool, seed: int) -> None:
        self.fraction = check_fraction(fraction)
        self.error_feedback = bool(error_feedback)
        self.seed = int(seed)

    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        self.shapes = [p.shape for p in params]
        self.sizes = [keep_count(self.fraction, p.numel()) for p in params]
        self.device = params[0].device if params else torch.device("cpu")
        self.generator = torch.Generator().manual_seed(self.seed)
        self.memory: list[list[Tensor | None]] = [[None] * len(params) for _ in range(num_clients)]
        self._round: list[tuple[Tensor, ...]] | None = None

    @abstractmethod
    def _draw(self, numel: int, size: int) -> tuple[Tensor, ...]:
        """The round's shared random objects for one tensor of ``numel`` entries."""

    def shared(self) -> list[tuple[Tensor, ...]]:
        """This round's shared random objects, one tuple per parameter tensor."""
        if self._round is None:
            self._round = [
                tuple(t.to(self.device) for t in self._draw(math.prod(shape), size))
                for shape, size in zip(self.shapes, self.sizes)
            ]
        return self._round

    @abstractmethod
    def _compress(self, v: Tensor, shared: tuple[Tensor, ...], size: int) -> Tensor:
        """The block one client sends for one tensor."""

    @abstractmethod
    def _expand(self, block: Tensor, shared: tuple[Tensor, ...], numel: int) -> Tensor:
        """The server's (linear) reconstruction of one tensor from a block."""

    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        blocks = []
        for i, (g, shared, size) in enumerate(zip(grads, self.shared(), self.sizes, strict=True)):
            v = g.reshape(-1)
            memory = self.memory[client][i]
            if memory is not None:
                v = v + memory
            block = self._compress(v, shared, size)
            if self.error_feedback:  # what the client wanted to send minus what it sent
                self.memory[client][i] = v - self._expand(block, shared, v.numel())
            blocks.append(block)
        return blocks

    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor]:
        grads = [
            self._expand(b, shared, math.prod(shape)).reshape(shape)
            for b, shared, shape in zip(blocks, self.shared(), self.shapes, strict=True)
        ]
        self._round = None
        return grads

    def state_dict(self) -> dict[str, object]:
        if self._round is not None:
            raise ValueError(
                "cannot save a compressor in the middle of a round (after encode, before decode)"
            )
        return {"generator": self.generator.get_state(), "memory": [list(m) for m in self.memory]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.generator.set_state(cast(Tensor, state["generator"]).cpu())
        self.memory = [list(m) for m in cast(list[list[Tensor | None]], state["memory"])]
        self._round = None


class RandomKCompressor(_SharedRandomness):
    """Random-K: per tensor, the same K = max(1, floor(fraction * d)) random coordinates for every
    client, a fresh support each round; error feedback on by default (LASER paper's baseline).

    Client k sends ``v_k[S]`` with ``v_k = g_k + e_k`` and keeps ``e_k <- v_k - scatter_S(v_k[S])``;
    the server writes the received mean back at S and zeros elsewhere. Values are sent unscaled
    (a contraction, as the reference does); ``unbiased=True`` scales the decoded values by d / K,
    which makes ``E[decode(encode(g))] = g`` over the random support (usually without error feedback).
    The support is a uniformly random K-subset (``randperm``), so the channel's sum of the clients'
    blocks is the block of their sum (linearity under the shared seed).

    Example:
        >>> rk = RandomKCompressor(fraction=0.5, seed=0)
        >>> rk.setup([torch.zeros(4)], num_clients=1)
        >>> block, = rk.encode(0, [torch.tensor([1.0, 2.0, 3.0, 4.0])])
        >>> sent = rk.decode([block])[0]                  # two coordinates, the rest zero
        >>> block.numel(), (sent + rk.memory[0][0]).tolist()   # error feedback keeps the rest
        (2, [1.0, 2.0, 3.0, 4.0])
    """

    def __init__(
        self, fraction: float = 0.1, error_feedback: bool = True, unbiased: bool = False, seed: int = 0
    ) -> None:
        super().__init__(fraction, error_feedback, seed)
        self.unbiased = bool(unbiased)

    def _draw(self, numel: int, size: int) -> tuple[Tensor, ...]:
        return (torch.randperm(numel, generator=self.generator)[:size],)

    def _compress(self, v: Tensor, shared: tuple[Tensor, ...], size: int) -> Tensor:
        return v[shared[0]]

    def _expand(self, block: Tensor, shared: tuple[Tensor, ...], numel: int) -> Tensor:
        values = block * (numel / block.numel()) if self.unbiased else block
        return torch.zeros(numel, dtype=block.dtype, device=block.device).index_copy_(0, shared[0], values)


def count_sketch(v: Tensor, buckets: Tensor, signs: Tensor, width: int) -> Tensor:
    """One-row count sketch of ``v``: ``S[j] = sum_{i: h(i) = j} sigma(i) v_i`` (``width`` buckets).

    >>> signs = torch.tensor([1.0, 1.0, -1.0])
    >>> count_sketch(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 1, 0]), signs, 2)
    tensor([-2.,  2.])
    """
    return torch.zeros(width, dtype=v.dtype, device=v.device).index_add_(0, buckets, signs.to(v.dtype) * v)


def count_unsketch(sketch: Tensor, buckets: Tensor, signs: Tensor) -> Tensor:
    """The count-mean estimate of each coordinate, ``v_i ~ sigma(i) S[h(i)]`` (one row: unbiased over
    the random hash and signs, with collision noise).

    >>> count_unsketch(torch.tensor([-2.0, 2.0]), torch.tensor([0, 1, 0]), torch.tensor([1.0, 1.0, -1.0]))
    tensor([-2.,  2.,  2.])
    """
    return signs.to(sketch.dtype) * sketch[buckets]


class CountSketchCompressor(_SharedRandomness):
    """Count-mean sketch: per tensor a one-row count sketch of width s = max(1, floor(fraction * d))
    with a hash h: [d] -> [s] and signs sigma: [d] -> {+1, -1} drawn uniformly, shared by all clients
    and fresh each round; no error feedback by default (the LASER paper's baseline: with it, their
    runs did not converge).

    Client k sends ``S(g_k)`` (:func:`count_sketch`); the server decodes the received mean with
    :func:`count_unsketch`, ``g_i ~ sigma(i) S[h(i)]``, whose expectation over the hash is the mean
    gradient. With ``error_feedback=True`` a client keeps ``v_k - unsketch(S(v_k))``.

    Example:
        >>> cs = CountSketchCompressor(fraction=0.5, seed=0)
        >>> cs.setup([torch.zeros(6)], num_clients=2)
        >>> a, = cs.encode(0, [torch.ones(6)]); b, = cs.encode(1, [2 * torch.ones(6)])
        >>> a.numel(), torch.equal(a + b, 3 * a)          # linear: one shared hash this round
        (3, True)
    """

    def __init__(self, fraction: float = 0.1, error_feedback: bool = False, seed: int = 0) -> None:
        super().__init__(fraction, error_feedback, seed)

    def _draw(self, numel: int, size: int) -> tuple[Tensor, ...]:
        buckets = torch.randint(size, (numel,), generator=self.generator)
        signs = torch.randint(2, (numel,), generator=self.generator, dtype=torch.int8) * 2 - 1
        return buckets, signs

    def _compress(self, v: Tensor, shared: tuple[Tensor, ...], size: int) -> Tensor:
        return count_sketch(v, shared[0], shared[1], size)

    def _expand(self, block: Tensor, shared: tuple[Tensor, ...], numel: int) -> Tensor:
        return count_unsketch(block, shared[0], shared[1])


class SignumCompressor(Compressor):
    """Signum with majority vote over the air: every client sends the signs of its gradient (or of
    its momentum), one block per tensor; the server takes the sign of the received mean.

    ``m_k <- beta m_k + (1 - beta) g_k`` (``beta = momentum``; 0 sends ``sign(g_k)``, the LASER
    reference's setting, whose server optimizer then adds its own momentum), block ``sign(m_k)`` with
    entries in {-1, 0, +1}; decode ``sign(mean_k sign(m_k) + noise)``: the majority vote, perturbed
    only where the vote is close. The energy is accounted for the vector actually transmitted: the
    uplink allocates and scales by the sign vector's norm sqrt(nnz) (about sqrt(d_b)), the physically
    consistent variant of the reference's GPT-2 script (its CIFAR script used the gradient norms of
    a vector it did not send).

    Example:
        >>> signum = SignumCompressor()
        >>> signum.setup([torch.zeros(3)], num_clients=3)
        >>> grads = [torch.tensor(g) for g in ([1.0, -2.0, 0.5], [3.0, 1.0, -1.0], [-1.0, -1.0, -2.0])]
        >>> blocks = [signum.encode(k, [g])[0] for k, g in enumerate(grads)]
        >>> signum.decode([torch.stack(blocks).mean(0)])[0]
        tensor([ 1., -1., -1.])
    """

    def __init__(self, momentum: float = 0.0) -> None:
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)

    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        self.shapes = [p.shape for p in params]
        self.buffers: list[list[Tensor | None]] = [[None] * len(params) for _ in range(num_clients)]

    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        if self.momentum == 0:
            return [torch.sign(g.reshape(-1)) for g in grads]
        blocks = []
        for i, g in enumerate(grads):
            previous = self.buffers[client][i]
            g = g.reshape(-1)
            m = (
                g * (1 - self.momentum)
                if previous is None
                else previous * self.momentum + g * (1 - self.momentum)
            )
            self.buffers[client][i] = m
            blocks.append(torch.sign(m))
        return blocks

    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor]:
        return [torch.sign(b).reshape(shape) for b, shape in zip(blocks, self.shapes, strict=True)]

    def state_dict(self) -> dict[str, object]:
        return {"buffers": [[None if m is None else m.clone() for m in row] for row in self.buffers]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        buffers = cast(list[list[Tensor | None]], state["buffers"])
        self.buffers = [[None if m is None else m.clone() for m in row] for row in buffers]
