"""The compressor interface, and Z-SGD (no compression) as its simplest member.

A compressor turns each client's gradient into *blocks*: real vectors whose meaning is the same for
every client, so that the channel's sum of the clients' blocks is meaningful. The server decodes the
channel's estimate of the mean block back into a gradient. One object holds the state of all
clients (their error-feedback memories) and the server's shared state; nothing is sent between them
but the blocks, and the side information the docstrings name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Compressor", "ZSGDCompressor"]


class Compressor(ABC):
    """Encode per client, decode at the server; state that can be saved and restored.

    Life cycle: ``setup(params, num_clients)`` once; then per round ``encode(k, grads_k)`` for each
    participating client k (in any order), the channel, and one ``decode(mean_blocks)``, which ends
    the round (shared state such as LASER's warm-started factors is updated there).
    """

    @abstractmethod
    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        """Allocate state for ``num_clients`` clients of a model whose parameters have these shapes,
        dtype and device."""

    @abstractmethod
    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        """Client ``client``'s blocks for this round (1-D tensors); updates its error feedback."""

    @abstractmethod
    def decode(self, blocks: Sequence[Tensor]) -> list[Tensor]:
        """The server's gradient estimate (shaped like the parameters) from the mean blocks."""

    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue bit-identically (tensors, ints and lists of tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned."""


class ZSGDCompressor(Compressor):
    """Z-SGD: every gradient entry is sent, one block per parameter tensor; no error feedback.

    Over a noisy channel this is uncompressed analog over-the-air SGD (LASER paper, Z-SGD); over a
    noiseless channel it is plain synchronous SGD, the reference line.

    Example:
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

    def decode(self, blocks: Sequence[Tensor]) -> list[Tensor]:
        return [b.reshape(shape) for b, shape in zip(blocks, self.shapes, strict=True)]
