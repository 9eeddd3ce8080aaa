"""What the digital compressors share: the bit count of an index, the argument checks and the
clients' common part (:class:`_DigitalClient`: the blocks handed back to ``undelivered``;
:class:`_MessageClient`: a per-tensor message with optional error feedback and, for the methods
that round at random, the client's own generator). The conventions are in :mod:`laser.digital`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor

from laser.compressor import DigitalClient, Shared, check_params, client_seed


def _index_bits(d: int) -> int:
    """ceil(log2 d), exactly, for d >= 1 (0 for d == 1)."""
    return (d - 1).bit_length()


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


class _SparseMessageClient(_MessageClient):
    """A client whose message is, per tensor, a header then one item per kept entry, in index order
    (``_layout``: header bits, bits an item, the kept indices); a lost bit loses the items it falls
    in, and a lost header its tensor's items (:meth:`lost_part`): the entries are decoded one by
    one, so the rest of the message still arrives."""

    partial_delivery = True

    def __init__(
        self, params: Iterable[Tensor], index: int, *, error_feedback: bool, seed: int | None
    ) -> None:
        super().__init__(params, index, error_feedback=error_feedback, seed=seed)
        self._layout: list[tuple[int, int, Tensor]] = []

    def _keep_layout(self, i: int, header: int, item: int, index: Tensor) -> None:
        """Tensor ``i``'s part of the message being encoded: ``header`` bits, then ``len(index)``
        items of ``item`` bits for the entries ``index`` (sent in ascending order)."""
        if i == 0:
            self._layout = []
        self._layout.append((header, item, index.sort().values.cpu()))

    def lost_part(self, message: Sequence[Tensor], lost: Sequence[tuple[int, int]]) -> list[Tensor]:
        message = list(message)
        parts = [torch.zeros_like(b) for b in message]
        if not lost:
            return parts
        if len(self._layout) != len(message):
            raise ValueError(
                f"message has {len(message)} blocks; the last encode's layout has {len(self._layout)}: "
                "lost_part reads the message encode last returned"
            )
        ranges = torch.tensor(list(lost), dtype=torch.long)
        offset = 0
        for part, block, (header, item, index) in zip(parts, message, self._layout):
            size = header + item * len(index)
            hit = (ranges[:, 0] < offset + size) & (ranges[:, 1] > offset)
            if bool(hit.any()):
                s, e = ranges[hit, 0], ranges[hit, 1]
                if header > 0 and bool(((s < offset + header) & (e > offset)).any()):  # the header: all
                    gone = index
                else:
                    start = offset + header + item * torch.arange(len(index))
                    overlap = (start[:, None] < e[None, :]) & (start[:, None] + item > s[None, :])
                    gone = index[overlap.any(1)]
                gone = gone.to(block.device)
                part[gone] = block[gone]
            offset += size
        return parts
