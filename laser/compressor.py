"""The compressor interface, and Z-SGD (no compression) as its simplest member.

A compressor turns each client's gradient into *blocks*: real vectors whose meaning is the same for
every client, so that the channel's sum of the clients' blocks is meaningful. The server decodes the
channel's estimate of the mean block back into a gradient. One object holds the state of all
clients (their error-feedback memories) and the server's shared state; nothing is sent between them
but the blocks, and the side information the docstrings name.

Two families share the interface:

* **analog** (``analog = True``): the blocks are linear in the client's data given shared
  randomness, so the multiple-access channel's superposition is the sum of the messages (LASER,
  Z-SGD, Random-K, count sketch, A-DSGD; Signum, whose majority vote needs only the sum of signs).
* **digital** (:class:`DigitalCompressor`, ``analog = False``): each client's message is a bit
  string sent on its own orthogonal link; ``encode`` returns the message *as the server decodes it*
  and :meth:`DigitalCompressor.message_bits` its size, which the link turns into channel uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor

__all__ = ["Compressor", "DigitalCompressor", "ZSGDCompressor"]


class Compressor(ABC):
    """Encode per client, decode at the server; state that can be saved and restored.

    Life cycle: ``setup(params, num_clients)`` once; then per round ``encode(k, grads_k)`` for each
    participating client k (in any order), the channel, and one ``decode(mean_blocks)``, which ends
    the round (shared state such as LASER's warm-started factors is updated there).

    A compressor that needs more than one channel pass per round (PowerSGD as published sends P,
    then Q computed from the received P) has ``passes > 1``: after ``decode`` of pass p returns
    ``None``, the loop collects ``encode_pass(k, p + 1)`` from every client, sends it, and decodes
    again; the last pass's ``decode`` returns the gradient.
    """

    analog: ClassVar[bool] = True  # blocks add up over the air (False: digital, one link per client)
    passes: int = 1  # channel passes per round

    @abstractmethod
    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        """Allocate state for ``num_clients`` clients of a model whose parameters have these shapes,
        dtype and device."""

    @abstractmethod
    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        """Client ``client``'s blocks for this round (1-D tensors); updates its error feedback."""

    def encode_many(self, clients: Sequence[int], grads: Sequence[Tensor]) -> list[list[Tensor]]:
        """:meth:`encode` for several clients at once, ``grads[i]`` stacking their gradients of
        parameter ``i`` as ``[len(clients), *shape]`` (the vectorised clients' layout). This default
        encodes one client after another; a compressor may batch them (to float rounding)."""
        return [self.encode(k, tuple(g[j] for g in grads)) for j, k in enumerate(clients)]

    def encode_pass(self, client: int, pass_index: int) -> list[Tensor]:
        """Client ``client``'s blocks for pass ``pass_index >= 1`` of this round (``passes > 1`` only)."""
        raise NotImplementedError(f"{type(self).__name__} sends one pass per round")

    @abstractmethod
    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor] | None:
        """The server's gradient estimate (shaped like the parameters) from the mean blocks.

        ``noise_var`` (optional side information from the channel) is the per-entry noise variance
        of each received block; decoders that weigh noise (A-DSGD's MMSE estimate) use it.
        Returns ``None`` after a pass that is not the round's last (``passes > 1``).
        """

    def pass_shares(self) -> list[float]:
        """The share of the round's energy budget each pass may spend (one per pass, summing to 1)."""
        return [1.0]

    def energy_groups(self) -> tuple[list[int], float] | None:
        """Blocks that share one energy budget, for the uplink's allocation: ``(group of each block,
        exponent e)``. The group gets its share as one block (norm of the concatenation) and splits
        it over its blocks in proportion to ``||block||^e``. ``None``: every block is its own group."""
        return None

    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue bit-identically (tensors, ints and lists of tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, object]) -> None:  # noqa: B027 (stateless by default)
        """Restore what :meth:`state_dict` returned."""


class DigitalCompressor(Compressor):
    """A compressor whose messages are bits on orthogonal links (not summable over the air).

    ``encode(k, grads)`` returns client k's message as the server reconstructs it (one flattened
    block per parameter tensor; exact, since the digital link is error-free) and records its size
    for :meth:`message_bits`. The link delivers each client's message on its own channel uses (their
    number follows from the bits and the link's Shannon rate); the server averages the delivered
    messages and ``decode`` turns that mean into the gradient estimate.

    Bit-count conventions (every subclass): a float costs 32 bits, an index into a tensor of d
    entries ``ceil(log2 d)`` bits, a sign 1 bit, one of L quantisation levels ``ceil(log2 L)`` bits.
    """

    analog: ClassVar[bool] = False

    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        self.shapes = [p.shape for p in params]
        self.bits = [0] * num_clients

    def message_bits(self, client: int) -> int:
        """Bits of the message ``encode`` last returned for ``client``."""
        return self.bits[client]

    def undelivered(self, client: int, message: Sequence[Tensor]) -> None:
        """The link could not carry ``message`` (outage; the client knew and stayed silent): undo
        what ``encode`` assumed was sent (error feedback keeps it for the next round)."""

    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor]:
        """The mean of the delivered messages, reshaped (override for a non-linear server step)."""
        return [b.reshape(shape) for b, shape in zip(blocks, self.shapes, strict=True)]


class ZSGDCompressor(Compressor):
    """Z-SGD: every gradient entry is sent, one block per parameter tensor; no error feedback.

    Over a noisy channel this is uncompressed analog over-the-air SGD (LASER paper, Z-SGD); over a
    noiseless channel it is plain synchronous SGD, the reference line.

    Example:
        >>> import torch
        >>> zsgd = ZSGDCompressor()
        >>> zsgd.setup([torch.zeros(2, 3), torch.zeros(3)], num_clients=1)
        >>> [b.shape for b in zsgd.encode(0, [torch.ones(2, 3), torch.ones(3)])]
        [torch.Size([6]), torch.Size([3])]
        >>> [g.shape for g in zsgd.decode([torch.ones(6), torch.ones(3)])]
        [torch.Size([2, 3]), torch.Size([3])]
    """

    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        self.shapes = [p.shape for p in params]

    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        return [g.reshape(-1) for g in grads]

    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor]:
        return [b.reshape(shape) for b, shape in zip(blocks, self.shapes, strict=True)]
