"""A round's blocks as the channel carries them: every client's blocks one after another, packed
into complex I/Q symbols (:class:`SignalBlocks`), and what the server decodes from them
(:class:`BlocksOutput`, returned by :meth:`channels.FadingChannel.transmit`)."""

from __future__ import annotations

import itertools
import reprlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from channels._checks import brief, check_data
from channels.noise import to_symbols

__all__ = ["SignalBlocks", "BlocksOutput"]

_REPR = reprlib.Repr()
_REPR.maxlist = 8


class SignalBlocks:
    """Every client's blocks of one round, in the order they follow each other on the channel.

    Block b of every client occupies the same ``ceil(d_b / 2)`` complex symbols (I/Q pairs; an odd
    block ends with a zero Q). Small rounds are packed into one real ``[K, sum_b 2 ceil(d_b / 2)]``
    tensor, so the channel treats all blocks in a few batched operations; a round with more than
    ``pack_limit`` entries (K full gradients of a large model) is left as it is and packed one client
    at a time, so that no second copy of every client's signal is ever held.

    Args:
        client_blocks: ``client_blocks[k][b]``, client k's block b (1-D, the same lengths for every
            client), or a ``[K, d]`` tensor (one block).
        pack_limit: the most entries packed at once.

    Example:
        >>> blocks = SignalBlocks([[torch.tensor([3.0, 4.0, 0.0]), torch.tensor([1.0])],
        ...                        [torch.tensor([0.0, 0.0, 1.0]), torch.tensor([2.0])]])
        >>> blocks.dims, blocks.symbols, blocks.norms().tolist()
        ([3, 1], [2, 1], [[5.0, 1.0], [1.0, 2.0]])
    """

    def __init__(self, client_blocks: Sequence[Sequence[Tensor]] | Tensor, pack_limit: int = 1 << 24) -> None:
        if isinstance(client_blocks, Tensor):
            self.name = "signals"  # the argument the checks name: a [K, d] tensor is a channel call's
            if client_blocks.dim() != 2:
                raise ValueError(f"signals must have shape [K, d], got {tuple(client_blocks.shape)}")
            _check_signal(client_blocks, "signals")
            if 0 in client_blocks.shape:
                raise ValueError(
                    f"signals must have at least one client and one entry (K >= 1, d >= 1), "
                    f"got shape {tuple(client_blocks.shape)}"
                )
            tensor, client_blocks = client_blocks, [[row] for row in client_blocks]
        else:
            self.name = "client_blocks"
            tensor = None
            if isinstance(client_blocks, (str, bytes)) or not isinstance(client_blocks, Sequence):
                raise TypeError(
                    f"client_blocks must be a [K, d] tensor or a list of each client's list of 1-D "
                    f"tensors, got {brief(client_blocks)}"
                )
            if len(client_blocks) == 0:
                raise ValueError("client_blocks must hold at least one client's blocks (K >= 1), got none")
        first = client_blocks[0]
        if tensor is None:
            if isinstance(first, (str, bytes)) or not isinstance(first, (Sequence, Tensor)):
                raise TypeError(
                    f"client_blocks[0] must be a list of 1-D tensors (client 0's blocks), got {brief(first)}"
                )
            if len(first) == 0:
                raise ValueError("client_blocks[0] must hold at least one block, got none")
            for b, block in enumerate(first):
                _check_signal(block, f"client_blocks[0][{b}]")
                if block.dim() != 1 or block.numel() == 0:
                    raise ValueError(
                        f"client_blocks[0][{b}] must be 1-D with at least one entry, "
                        f"got shape {tuple(block.shape)}"
                    )
        self.num_clients = len(client_blocks)
        self.dims = [int(b.numel()) for b in first]
        self.symbols = [(d + 1) // 2 for d in self.dims]
        self.starts = [0, *itertools.accumulate(self.symbols)][:-1]  # each block's first symbol
        self.block_dtypes = [b.dtype for b in first]  # the estimates come back in these
        self.dtype = torch.float64 if torch.float64 in self.block_dtypes else torch.float32
        self.device = first[0].device
        self._blocks = client_blocks
        self._norms: Tensor | None = None
        if tensor is not None and tensor.shape[1] % 2 == 0:  # already packed: no copy
            self.packed: Tensor | None = tensor.to(self.dtype)
        elif tensor is not None or self.num_clients * 2 * sum(self.symbols) <= pack_limit:
            self.packed = self._pack(range(self.num_clients))
        else:
            self.packed = None

    def _pack(self, clients: Sequence[int]) -> Tensor:
        """Real ``[len(clients), 2 S]``: each client's blocks one after another, odd ones padded."""
        zero = torch.zeros(1, dtype=self.dtype, device=self.device)
        parts = []
        for k in clients:
            blocks = self._blocks[k]
            if len(blocks) != len(self.dims):
                raise ValueError(
                    f"{self.name}[{k}] must be a list of {len(self.dims)} blocks (client 0 has "
                    f"{len(self.dims)}), got {brief(blocks)}"
                )
            for b, (block, d) in enumerate(zip(blocks, self.dims)):
                if not isinstance(block, Tensor) or not block.is_floating_point() or block.is_meta:
                    _check_signal(block, f"{self.name}[{k}][{b}]")
                if block.dim() != 1 or block.numel() != d:
                    raise ValueError(
                        f"every client's blocks must be 1-D with the lengths of client 0's, {self.dims}; "
                        f"client {k} has one of shape {tuple(block.shape)}"
                    )
                parts.append(block)
                if d % 2:
                    parts.append(zero)
        return torch.cat(parts).to(self.dtype).reshape(len(clients), -1)

    def check_finite(self) -> None:
        """Refuse NaN and infinite entries: a ``ValueError`` naming the signals and the clients that
        hold them.

        A sum with a NaN or infinite term is NaN or infinite in any order of summation, so a finite
        sum proves every entry finite: the check is one sum over the packed signals (over each
        block when they are not packed), a reduction pass without a temporary. A non-finite sum (such
        an entry, or finite entries whose sum overflows) is settled entry by entry with
        ``torch.isfinite(...).all()``, so the answer is exact either way.
        """
        if self.packed is not None:
            if bool(torch.isfinite(self.packed.sum())) or bool(torch.isfinite(self.packed).all()):
                return
            bad = (~torch.isfinite(self.packed).all(1)).nonzero().flatten().tolist()
        else:
            sums = torch.stack([b.sum().to(self.dtype) for blocks in self._blocks for b in blocks])
            if bool(torch.isfinite(sums).all()):
                return
            bad = [
                k
                for k, blocks in enumerate(self._blocks)
                if not all(bool(torch.isfinite(b).all()) for b in blocks)
            ]
            if not bad:
                return
        raise ValueError(
            f"{self.name} must be finite, got NaN or inf entries in client(s) {_REPR.repr(bad)} (a channel "
            f"built with check_finite=False skips this check; see FadingChannel)"
        )

    def norms(self) -> Tensor:
        """``[K, B]`` float64: the Euclidean norm of each client's block (computed once; the energy
        split and, over unit gains, the channel's alignment both need it)."""
        if self._norms is None:
            self._norms = self._compute_norms()
        return self._norms

    def _compute_norms(self) -> Tensor:
        # a slice converted to float64, then its norm: the bits of vector_norm(..., dtype=float64),
        # whose CPU kernel is slower on the packed signals' strided slices
        if self.packed is not None:
            return torch.stack(
                [
                    torch.linalg.vector_norm(self.packed[:, 2 * a : 2 * a + d].double(), dim=1)
                    for a, d in zip(self.starts, self.dims)
                ],
                dim=1,
            )
        return torch.stack(
            [
                torch.stack([torch.linalg.vector_norm(b, dtype=torch.float64) for b in blocks])
                for blocks in self._blocks
            ]
        )

    def chunks(self) -> Iterator[tuple[slice, Tensor]]:
        """``(clients, symbols)``: complex ``[c, S]`` symbols of consecutive clients (all at once when
        packed, else one client at a time)."""
        if self.packed is not None:
            yield slice(0, self.num_clients), to_symbols(self.packed)
            return
        for k in range(self.num_clients):
            yield slice(k, k + 1), to_symbols(self._pack([k]))


def _check_signal(signal: object, name: str) -> None:
    """Refuse a signal the channel cannot carry: not a tensor, not real floating point (complex
    values would lose their imaginary part, integers and bools come back truncated), or no data."""
    if not isinstance(signal, Tensor):
        raise TypeError(f"{name} must be a tensor, got {brief(signal)}")
    if not signal.is_floating_point():  # False for complex, integer and bool dtypes
        raise TypeError(
            f"{name} must be real floating point (float16, bfloat16, float32 or float64), got {signal.dtype}"
        )
    check_data(signal, name)


@dataclass(frozen=True)
class BlocksOutput:
    """What the server decodes from one round's blocks (:meth:`FadingChannel.transmit`).

    Attributes:
        estimates: B tensors ``[d_b]``, the server's estimate of the mean of each block (the weighted
            mean sum_A w_k u_k / sum_A w_k of the clients heard, with ``weights``).
        energy_used: ``[K, B]``, each client's energy per block (``inf`` for a non-zero signal with
            an infinite budget).
        noise_var: ``[B]`` float64, the per-entry variance of each estimate's error, noise_var /
            (eta_b K_a)^2 or, with weights, noise_var / (eta_b sum_A w_k)^2, averaged over the block's
            symbols; 0 when noiseless (the shape of every round's noise_var: one value per block).
        active: ``[K, B]`` bool, who was heard in each block.
        scale: ``[B]``, each block's alignment scale eta (``inf`` when noiseless).
        noise_multiplier: a clipped pass's (``clips``): the noise standard deviation over the largest
            client's add/remove sensitivity of everything the server received
            (:func:`channels.privacy.noise_multiplier`; 0 when noiseless); ``None`` without clips.
        energy_scale: with ``min_noise_multiplier``: alpha, the fraction of their energy the clients'
            signals kept (1: the channel's noise alone met it; ``None`` without).
        artificial_noise_var: the clients' artificial noise at the antenna, per real dimension (0:
            none; ``min_energy_scale``).
    """

    estimates: list[Tensor]
    energy_used: Tensor
    noise_var: Tensor
    active: Tensor
    scale: Tensor
    noise_multiplier: float | None = None
    energy_scale: float | None = None
    artificial_noise_var: float = 0.0
