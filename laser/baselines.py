"""LASER's analog baselines: Random-K, count-mean sketch and Signum with majority vote.

All three send real vectors that add up meaningfully over the air: Random-K and the sketch are
linear maps of the client's gradient whose randomness (the support, the hash and the signs) is
drawn by the server, freshly each round, and broadcast to every client before the round; Signum
sends sign vectors, whose sum is all the majority vote needs. They use the channel and the energy
allocation exactly as LASER does (LASER paper, section 4 and appendix; reference notes §4.3-4.5).

Sides (:mod:`laser.compressor`): the server (:class:`RandomKServer`, :class:`CountSketchServer`)
owns the one CPU generator, seeded with the method's ``seed``, and draws one round's random objects
tensor by tensor at the round's first :meth:`~laser.compressor.CompressorServer.broadcast` (or
``decode``); a client (:class:`RandomKClient`, :class:`CountSketchClient`) keeps only its own
error-feedback memory and encodes with what was broadcast, so a client that skips a round (partial
participation) stays in step. Signum's client (:class:`SignumClient`) keeps its momentum; its
server (:class:`SignumServer`) takes the vote and shares nothing.

References: Makkuva et al., "LASER: Linear Compression in Wireless Distributed Optimization",
ICML 2024 (baselines); Stich, Cordonnier, Jaggi, "Sparsified SGD with memory", NeurIPS 2018
(random-k with error feedback); Charikar, Chen, Farach-Colton, "Finding frequent items in data
streams", ICALP 2002 (count sketch); Bernstein et al., "signSGD: compressed optimisation for
non-convex problems", ICML 2018 (Signum, majority vote).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from typing import Any, ClassVar

import torch
from torch import Tensor

from laser.compressor import Compressor, CompressorClient, CompressorServer, Shared, check_params
from laser.sparse import check_fraction, keep_count

__all__ = [
    "RandomKCompressor",
    "RandomKClient",
    "RandomKServer",
    "CountSketchCompressor",
    "CountSketchClient",
    "CountSketchServer",
    "SignumCompressor",
    "SignumClient",
    "SignumServer",
    "count_sketch",
    "count_unsketch",
]

_Objects = tuple[Tensor, ...]  # one tensor's shared random objects for a round (support; hash, signs)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    return int(seed)


def _check_blocks(blocks: Sequence[Tensor], sizes: Sequence[int]) -> list[Tensor]:
    """``blocks`` as a list, if they are one client's blocks of the given sizes (else a ValueError)."""
    if isinstance(blocks, Tensor):
        raise TypeError("blocks must be a sequence of 1-D tensors, one per block, got one tensor")
    blocks = list(blocks)
    got = [int(b.numel()) if isinstance(b, Tensor) else -1 for b in blocks]
    if got != list(sizes):
        raise ValueError(
            f"blocks are not this client's last blocks: got {len(blocks)} of sizes {got[:8]}; "
            f"expected {len(sizes)} of sizes {list(sizes)[:8]}"
        )
    return blocks


def _scatter(block: Tensor, support: Tensor, numel: int, unbiased: bool) -> Tensor:
    """Random-K's reconstruction: ``block`` written at ``support`` (scaled by d / K if ``unbiased``)."""
    values = block * (numel / block.numel()) if unbiased else block
    return torch.zeros(numel, dtype=block.dtype, device=block.device).index_copy_(0, support, values)


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


# ------------------------------------------------------------------ shared per-round randomness
class _SharedRandomness(Compressor):
    """A method whose per-round randomness is common to all clients and the server (Random-K, sketch)."""

    def __init__(self, fraction: float, error_feedback: bool, seed: int) -> None:
        self.fraction = check_fraction(fraction)
        self.error_feedback = bool(error_feedback)
        self.seed = _check_seed(seed)


class _RoundClient(CompressorClient):
    """A client of a shared-randomness method: it encodes with the round's broadcast objects and
    keeps its error-feedback memory ``e`` (one flat tensor per parameter, created on first use).

    Error feedback: ``v = g + e`` and ``e <- v - expand(block)``. The client stores ``v`` and settles
    the subtraction at its next :meth:`encode` (:attr:`memory` and :meth:`state_dict` compute it
    without storing it), with the same operations, so the memory is bit for bit the eager one; until
    then :meth:`undelivered` can drop the subtraction of a block the channel did not hear, leaving
    ``v`` exactly, without a second copy of the model per client."""

    keys: ClassVar[tuple[str, ...]]  # what the client reads from the broadcast
    per_entry: ClassVar[tuple[bool, ...]]  # per key: one entry per gradient entry (True) or per kept one

    def __init__(self, method: _SharedRandomness, params: Iterable[Tensor], index: int = 0) -> None:
        tensors = check_params(params, data=True)
        super().__init__(tensors, index)
        self.error_feedback = method.error_feedback
        self.numels = [p.numel() for p in tensors]
        self.sizes = [keep_count(method.fraction, d) for d in self.numels]
        self.devices = [p.device for p in tensors]
        self._memory: list[Tensor | None] = [None] * len(tensors)
        # per tensor, after an encode with error feedback: (a copy of the block sent, the round's
        # objects) while the memory holds v, the intent, and the subtraction is not yet settled
        self._pending: list[tuple[Tensor, _Objects] | None] = [None] * len(tensors)

    @abstractmethod
    def _compress(self, v: Tensor, objects: _Objects, size: int) -> Tensor:
        """The block this client sends for one tensor (a new tensor)."""

    @abstractmethod
    def _expand(self, block: Tensor, objects: _Objects, numel: int) -> Tensor:
        """What the server would decode from this block alone (the client's view of its message)."""

    def _objects(self, shared: Shared | None) -> list[_Objects]:
        """The round's objects for each tensor, read from the broadcast (checked), on its device."""
        count = len(self.shapes)
        columns = []
        for key, per_entry in zip(self.keys, self.per_entry):
            value = None if shared is None else shared.get(key)
            if not isinstance(value, (list, tuple)) or len(value) != count:
                needs = ", ".join(repr(k) for k in self.keys)
                if shared is None or value is None:
                    got = "no shared" if shared is None else f"no {key!r} in shared"
                else:
                    got = f"shared[{key!r}] = {type(value).__name__}"
                    got += f" of {len(value)}" if isinstance(value, (list, tuple)) else ""
                raise ValueError(
                    f"shared must be the server's broadcast() for this round, with {needs}: {count} tensors "
                    f"each (one per parameter); got {got}"
                )
            expected = self.numels if per_entry else self.sizes
            for i, (t, n) in enumerate(zip(value, expected)):
                if not isinstance(t, Tensor) or t.dim() != 1 or t.numel() != n:
                    what = f"of shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
                    raise ValueError(f"shared[{key!r}][{i}] is {what}; expected a 1-D tensor of {n} entries")
            columns.append([t.to(device) for t, device in zip(value, self.devices)])
        return [tuple(column[i] for column in columns) for i in range(count)]

    def _residual(self, i: int) -> Tensor | None:
        """Tensor ``i``'s memory with its pending subtraction done (a new tensor then; no state change)."""
        v, pending = self._memory[i], self._pending[i]
        if pending is None:
            return v
        assert v is not None  # error feedback sets the memory of every tensor it sends
        block, objects = pending
        return v - self._expand(block, objects, v.numel())  # what it wanted to send minus what it sent

    def _settled(self) -> list[Tensor | None]:
        """Every memory with the pending subtractions done (no state change)."""
        return [self._residual(i) for i in range(len(self._memory))]

    @property
    def memory(self) -> list[Tensor | None]:
        """The error-feedback memories (flat, one per parameter; ``None`` before the first encode or
        without error feedback). Read-only: :meth:`state_dict` gives copies."""
        return self._settled()

    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        grads = self._checked(grads)
        objects = self._objects(shared)
        memories = self._memory = self._settled()  # settles the previous round's subtraction
        self._pending = [None] * len(memories)
        blocks = []
        for i, (g, objs, size) in enumerate(zip(grads, objects, self.sizes, strict=True)):
            v = g.reshape(-1)
            memory = memories[i]
            if memory is not None:
                v = v + memory
            blocks.append(self._compress(v, objs, size))
            if self.error_feedback:
                self._memory[i] = v if memory is not None else v.clone()  # v is a view of g otherwise
        if self.error_feedback:  # copies: the caller may scale its blocks in place
            self._pending = [(b.clone(), objs) for b, objs in zip(blocks, objects)]
        return blocks

    def undelivered(self, blocks: Sequence[Tensor]) -> None:
        """The channel did not hear this client's last ``blocks`` (all of them, or those not zero: a
        block the channel heard is given as zeros). With error feedback the memory takes each
        unheard block back: for a block as :meth:`encode` returned it, the memory becomes exactly
        ``v = g + e``, the part of the message the client meant to send; any other block b adds
        ``expand(b)`` (linear). Without error feedback nothing is kept: the message is lost."""
        blocks = _check_blocks(blocks, self.sizes)
        if not self.error_feedback:
            return
        if all(p is None for p in self._pending):
            raise ValueError(
                "undelivered(blocks) must follow this client's encode of the round, once (no message pending)"
            )
        sent = [p is not None and torch.equal(b, p[0]) for b, p in zip(blocks, self._pending)]
        given = [not ok and bool(b.any()) for b, ok in zip(blocks, sent)]  # neither the block sent nor 0
        for i, (p, extra) in enumerate(zip(self._pending, given)):
            if extra and p is None:
                raise ValueError(f"blocks[{i}] was already given back (undelivered) this round")
        for i, (b, ok, extra) in enumerate(zip(blocks, sent, given)):
            if ok:
                self._pending[i] = None  # the memory holds v
            elif extra:
                pending = self._pending[i]
                assert pending is not None
                residual = self._residual(i)
                assert residual is not None
                self._memory[i] = residual + self._expand(b, pending[1], self.numels[i])
                self._pending[i] = None

    def _state_dict(self) -> dict[str, Any]:
        settled = self._settled()  # a settled residual is a new tensor already; the others are copied
        memory = [m if p is not None or m is None else m.clone() for m, p in zip(settled, self._pending)]
        return {"memory": memory}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        memory = list(state["memory"])
        if len(memory) != len(self._memory):
            raise ValueError(
                f"state holds {len(memory)} memories; this client has {len(self._memory)} tensors"
            )
        for i, (m, d) in enumerate(zip(memory, self.numels)):
            if m is not None and (not isinstance(m, Tensor) or m.numel() != d):
                raise ValueError(f"state['memory'][{i}] must be None or a flat tensor of {d} entries")
        self._memory = [
            None if m is None else m.to(dev, copy=True).reshape(-1) for m, dev in zip(memory, self.devices)
        ]
        self._pending = [None] * len(self._memory)


class _RoundServer(CompressorServer):
    """The server of a shared-randomness method: one CPU generator seeded with the method's ``seed``,
    advanced by one round's draws (tensor by tensor) at the round's first :meth:`broadcast` or
    :meth:`decode`, so the draws depend neither on the device nor on how many clients take part.
    The objects are moved to the parameters' device and broadcast; ``decode`` ends the round."""

    keys: ClassVar[tuple[str, ...]]

    def __init__(self, method: _SharedRandomness, params: Iterable[Tensor]) -> None:
        tensors = check_params(params, data=True)
        super().__init__(tensors)
        self.numels = [p.numel() for p in tensors]
        self.sizes = [keep_count(method.fraction, d) for d in self.numels]
        self.device = tensors[0].device
        self.generator = torch.Generator().manual_seed(method.seed)
        self._round: list[_Objects] | None = None
        self._round_start: Tensor | None = None  # the generator's state before this round's draws

    @abstractmethod
    def _draw(self, numel: int, size: int) -> _Objects:
        """The round's shared random objects for one tensor of ``numel`` entries (on the CPU)."""

    @abstractmethod
    def _expand(self, block: Tensor, objects: _Objects, numel: int) -> Tensor:
        """The (linear) reconstruction of one tensor from a block (a new flat tensor)."""

    def objects(self) -> list[_Objects]:
        """This round's shared random objects, one tuple per parameter tensor (drawn once a round)."""
        if self._round is None:
            self._round_start = self.generator.get_state()
            self._round = [
                tuple(t.to(self.device) for t in self._draw(d, size))
                for d, size in zip(self.numels, self.sizes)
            ]
        return self._round

    def broadcast(self) -> dict[str, Any]:
        objects = self.objects()
        return {key: [objs[j] for objs in objects] for j, key in enumerate(self.keys)}

    def block_sizes(self) -> list[int]:
        return list(self.sizes)

    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor]:
        grads = [
            self._expand(b, objs, d).reshape(shape)
            for b, objs, d, shape in zip(blocks, self.objects(), self.numels, self.shapes, strict=True)
        ]
        self._round = self._round_start = None
        return grads

    def _state_dict(self) -> dict[str, Any]:
        """``{"generator": state}``: the generator at the start of the current round (its draws are
        redone identically after loading, so a state saved after the clients encoded and before
        ``decode`` continues bit-identically too)."""
        if self._round_start is not None:
            return {"generator": self._round_start.clone()}
        return {"generator": self.generator.get_state()}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = state["generator"]
        if not isinstance(saved, Tensor):
            raise TypeError(
                f"state['generator'] must be a generator state tensor, got {type(saved).__name__}"
            )
        self.generator.set_state(saved.cpu())
        self._round = self._round_start = None


# -------------------------------------------------------------------------------------- Random-K
class RandomKClient(_RoundClient):
    """One client of Random-K: sends ``v[S]`` for the round's broadcast supports
    ``{"supports": [S per parameter]}``; keeps its memory ``e <- v - scatter_S(v[S])``."""

    keys = ("supports",)
    per_entry = (False,)

    def __init__(self, method: RandomKCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        super().__init__(method, params, index)
        self.unbiased = method.unbiased

    def _compress(self, v: Tensor, objects: _Objects, size: int) -> Tensor:
        return v[objects[0]]

    def _expand(self, block: Tensor, objects: _Objects, numel: int) -> Tensor:
        return _scatter(block, objects[0], numel, self.unbiased)


class RandomKServer(_RoundServer):
    """Random-K's server: draws each round's supports (``randperm(d)[:K]`` per tensor) and writes the
    received mean back at them; state ``{"generator": ...}``."""

    keys = ("supports",)

    def __init__(self, method: RandomKCompressor, params: Iterable[Tensor]) -> None:
        super().__init__(method, params)
        self.unbiased = method.unbiased

    def _draw(self, numel: int, size: int) -> _Objects:
        return (torch.randperm(numel, generator=self.generator)[:size],)

    def _expand(self, block: Tensor, objects: _Objects, numel: int) -> Tensor:
        return _scatter(block, objects[0], numel, self.unbiased)


class RandomKCompressor(_SharedRandomness):
    """Random-K: per tensor, the same K = max(1, floor(fraction * d)) random coordinates for every
    client, a fresh support each round; error feedback on by default (LASER paper's baseline).

    Client k sends ``v_k[S]`` with ``v_k = g_k + e_k`` and keeps ``e_k <- v_k - scatter_S(v_k[S])``;
    the server writes the received mean back at S and zeros elsewhere. Values are sent unscaled
    (a contraction, as the reference does); ``unbiased=True`` scales the decoded values by d / K,
    which makes ``E[decode(encode(g))] = g`` over the random support (usually without error feedback).
    The support is a uniformly random K-subset (``randperm``), drawn by the server and broadcast as
    ``{"supports": [S per parameter]}``, so the channel's sum of the clients' blocks is the block of
    their sum (linearity under the shared support).

    Example:
        >>> rk = RandomKCompressor(fraction=0.5, seed=0)
        >>> params = [torch.zeros(4)]
        >>> client, server = rk.make_client(params), rk.make_server(params)
        >>> shared = server.broadcast()                   # {"supports": [2 of the 4 indices]}
        >>> block, = client.encode([torch.tensor([1.0, 2.0, 3.0, 4.0])], shared)
        >>> sent = server.decode([block])[0]              # two coordinates, the rest zero
        >>> block.numel(), (sent + client.memory[0]).tolist()   # error feedback keeps the rest
        (2, [1.0, 2.0, 3.0, 4.0])
    """

    def __init__(
        self, fraction: float = 0.1, error_feedback: bool = True, unbiased: bool = False, seed: int = 0
    ) -> None:
        super().__init__(fraction, error_feedback, seed)
        self.unbiased = bool(unbiased)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> RandomKClient:
        return RandomKClient(self, params, index)

    def make_server(self, params: Iterable[Tensor]) -> RandomKServer:
        return RandomKServer(self, params)

    def __repr__(self) -> str:
        return (
            f"RandomKCompressor(fraction={self.fraction}, error_feedback={self.error_feedback}, "
            f"unbiased={self.unbiased}, seed={self.seed})"
        )


# ---------------------------------------------------------------------------------- count sketch
class CountSketchClient(_RoundClient):
    """One client of the count-mean sketch: sends ``S(v)`` (:func:`count_sketch`) with the round's
    broadcast hash and signs ``{"buckets": [h per parameter], "signs": [sigma per parameter]}``;
    with error feedback keeps ``e <- v - unsketch(S(v))``."""

    keys = ("buckets", "signs")
    per_entry = (True, True)

    def _compress(self, v: Tensor, objects: _Objects, size: int) -> Tensor:
        return count_sketch(v, objects[0], objects[1], size)

    def _expand(self, block: Tensor, objects: _Objects, numel: int) -> Tensor:
        return count_unsketch(block, objects[0], objects[1])


class CountSketchServer(_RoundServer):
    """The sketch's server: draws each round's hash (``randint(s, (d,))``) and signs (int8, +-1) per
    tensor and decodes with :func:`count_unsketch`; state ``{"generator": ...}``."""

    keys = ("buckets", "signs")

    def _draw(self, numel: int, size: int) -> _Objects:
        buckets = torch.randint(size, (numel,), generator=self.generator)
        signs = torch.randint(2, (numel,), generator=self.generator, dtype=torch.int8) * 2 - 1
        return buckets, signs

    def _expand(self, block: Tensor, objects: _Objects, numel: int) -> Tensor:
        return count_unsketch(block, objects[0], objects[1])


class CountSketchCompressor(_SharedRandomness):
    """Count-mean sketch: per tensor a one-row count sketch of width s = max(1, floor(fraction * d))
    with a hash h: [d] -> [s] and signs sigma: [d] -> {+1, -1} drawn uniformly, shared by all clients
    and fresh each round; no error feedback by default (the LASER paper's baseline: with it, their
    runs did not converge).

    Client k sends ``S(g_k)`` (:func:`count_sketch`); the server decodes the received mean with
    :func:`count_unsketch`, ``g_i ~ sigma(i) S[h(i)]``, whose expectation over the hash is the mean
    gradient. With ``error_feedback=True`` a client keeps ``v_k - unsketch(S(v_k))``. The server
    draws h and sigma and broadcasts them, ``{"buckets": [...], "signs": [...]}``.

    Example:
        >>> cs = CountSketchCompressor(fraction=0.5, seed=0)
        >>> params = [torch.zeros(6)]
        >>> server, clients = cs.make_server(params), [cs.make_client(params, k) for k in range(2)]
        >>> shared = server.broadcast()                   # this round's hash and signs
        >>> a, = clients[0].encode([torch.ones(6)], shared)
        >>> b, = clients[1].encode([2 * torch.ones(6)], shared)
        >>> a.numel(), torch.equal(a + b, 3 * a)          # linear: one shared hash this round
        (3, True)
        >>> server.decode([(a + b) / 2])[0].shape
        torch.Size([6])
    """

    def __init__(self, fraction: float = 0.1, error_feedback: bool = False, seed: int = 0) -> None:
        super().__init__(fraction, error_feedback, seed)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> CountSketchClient:
        return CountSketchClient(self, params, index)

    def make_server(self, params: Iterable[Tensor]) -> CountSketchServer:
        return CountSketchServer(self, params)

    def __repr__(self) -> str:
        return (
            f"CountSketchCompressor(fraction={self.fraction}, error_feedback={self.error_feedback}, "
            f"seed={self.seed})"
        )


# ---------------------------------------------------------------------------------------- Signum
class SignumClient(CompressorClient):
    """One client of Signum: its momentum buffers ``m`` (flat, one per parameter, created on first
    use when ``momentum > 0``); sends ``sign(m)`` (``sign(g)`` at momentum 0). Needs no broadcast.

    :meth:`undelivered` has nothing to undo: the momentum is a running average of the client's own
    gradients, updated whatever was sent, and a sign carries no residual to keep (no error
    feedback), so a message the channel did not hear is simply lost."""

    def __init__(self, method: SignumCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        tensors = check_params(params)
        super().__init__(tensors, index)
        self.momentum = method.momentum
        self.numels = [p.numel() for p in tensors]
        self.buffers: list[Tensor | None] = [None] * len(tensors)

    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        grads = self._checked(grads)
        if self.momentum == 0:
            return [torch.sign(g.reshape(-1)) for g in grads]
        blocks = []
        for i, g in enumerate(grads):
            previous = self.buffers[i]
            g = g.reshape(-1)
            m = (
                g * (1 - self.momentum)
                if previous is None
                else previous * self.momentum + g * (1 - self.momentum)
            )
            self.buffers[i] = m
            blocks.append(torch.sign(m))
        return blocks

    def undelivered(self, blocks: Sequence[Tensor]) -> None:
        """Nothing to undo (see the class): only checks that ``blocks`` are this client's."""
        _check_blocks(blocks, self.numels)

    def _state_dict(self) -> dict[str, Any]:
        return {"buffers": [None if m is None else m.clone() for m in self.buffers]}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        buffers = list(state["buffers"])
        if len(buffers) != len(self.buffers):
            raise ValueError(
                f"state holds {len(buffers)} buffers; this client has {len(self.buffers)} tensors"
            )
        for i, (m, d) in enumerate(zip(buffers, self.numels)):
            if m is not None and (not isinstance(m, Tensor) or m.numel() != d):
                raise ValueError(f"state['buffers'][{i}] must be None or a flat tensor of {d} entries")
        self.buffers = [None if m is None else m.clone().reshape(-1) for m in buffers]


class SignumServer(CompressorServer):
    """Signum's server: the majority vote ``sign(mean block)`` per tensor; no state, no broadcast."""

    def __init__(self, params: Iterable[Tensor]) -> None:
        super().__init__(check_params(params))

    def block_sizes(self) -> list[int]:
        return [math.prod(shape) for shape in self.shapes]

    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor]:
        return [torch.sign(b).reshape(shape) for b, shape in zip(blocks, self.shapes, strict=True)]


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
        >>> params = [torch.zeros(3)]
        >>> server, clients = signum.make_server(params), [signum.make_client(params, k) for k in range(3)]
        >>> grads = [torch.tensor(g) for g in ([1.0, -2.0, 0.5], [3.0, 1.0, -1.0], [-1.0, -1.0, -2.0])]
        >>> blocks = [c.encode([g], server.broadcast())[0] for c, g in zip(clients, grads)]
        >>> server.decode([torch.stack(blocks).mean(0)])[0]
        tensor([ 1., -1., -1.])
    """

    def __init__(self, momentum: float = 0.0) -> None:
        if isinstance(momentum, bool) or not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> SignumClient:
        return SignumClient(self, params, index)

    def make_server(self, params: Iterable[Tensor]) -> SignumServer:
        return SignumServer(params)

    def __repr__(self) -> str:
        return f"SignumCompressor(momentum={self.momentum})"
