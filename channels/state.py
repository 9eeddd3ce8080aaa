"""What a round's channel is (:class:`ChannelState`: every client's gains and channel estimates over
the round's coherence blocks and subcarriers) and what one block delivered (:class:`ChannelOutput`).
:meth:`channels.FadingChannel.realize` draws the state; ``transmit`` and ``forward`` use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ChannelOutput", "ChannelState"]


@dataclass(frozen=True)
class ChannelOutput:
    """What the server decodes from one block, and what it cost.

    Attributes:
        estimate: ``[d]``, the server's estimate of the mean of the active clients' signals (their
            weighted mean with ``weights``).
        energy_used: ``[K]``, the energy each client transmitted for this block (sum of squares of
            its channel input); ``inf`` for a client with a non-zero signal and an infinite budget.
        noise_var: 0-dim tensor, the per-entry variance of ``estimate - mean``; 0 when noiseless
            (noise_var / (eta K_a)^2, or noise_var / (eta sum_A w)^2 with weights).
        active: ``[K]`` bool, the clients that were heard (a non-zero budget, and on at least one
            symbol allowed to transmit by the power-control policy).
        scale: 0-dim tensor, the common alignment scale eta (``inf`` when the block is noiseless); with
            weights, the scale of the weighted signals w_k u_k.
    """

    estimate: Tensor
    energy_used: Tensor
    noise_var: Tensor
    active: Tensor
    scale: Tensor


@dataclass(frozen=True)
class ChannelState:
    """One round's channel: ``gains`` and ``csi`` are complex ``[K, C, N]`` (clients, coherence
    blocks, subcarriers); a symbol at position j of the round uses coherence block
    ``j // symbols_per_block`` and subcarrier ``j % N``. With many receive antennas ``gains`` are the
    effective gains m^H h_k and ``vector_norms`` the norms ||h_k|| of the channel vectors (``[K, C,
    N]`` real; ``None``: one antenna, ||h_k|| = |h_k|), what a privacy bound needs (the server could
    combine toward any one client)."""

    gains: Tensor
    csi: Tensor
    symbols_per_block: int
    vector_norms: Tensor | None = None

    def at(self, symbol_offset: int, num_symbols: int) -> tuple[Tensor, Tensor]:
        """``(gains, csi)`` of symbols ``offset .. offset + num_symbols - 1``: ``[K, S]`` or ``[K, 1]``."""
        return self._at(self.gains, symbol_offset, num_symbols), self._at(
            self.csi, symbol_offset, num_symbols
        )

    def _at(self, values: Tensor, symbol_offset: int, num_symbols: int) -> Tensor:
        num_blocks, num_carriers = values.shape[1:]
        if num_blocks == 1 and num_carriers == 1:
            return values[:, 0]
        j = torch.arange(symbol_offset, symbol_offset + num_symbols, device=values.device)
        block = (j // self.symbols_per_block).clamp(max=num_blocks - 1)
        return values[:, block, j % num_carriers]

    def gain_ratio(self, symbol_offset: int, num_symbols: int) -> Tensor:
        """``[K, S]`` or ``[K, 1]`` float64: ||h_kj|| / |g_hat_kj| on each symbol, the norm of client k's
        channel vector over the (estimated) gain it inverts: what its clipped signal's amplitude at the
        antennas is multiplied by (|h| / |h_hat| with one antenna: 1 with perfect CSI; inf where the
        estimate is 0)."""
        known = self._at(self.csi, symbol_offset, num_symbols).abs().double()
        if self.vector_norms is None:
            norms = self._at(self.gains, symbol_offset, num_symbols).abs().double()
        else:
            norms = self._at(self.vector_norms, symbol_offset, num_symbols).double()
        return torch.where(known > 0, norms / torch.where(known > 0, known, 1.0), torch.inf)

    def clients(self, index: slice | Tensor | Sequence[int]) -> ChannelState:
        """The state of the clients ``index``: a slice (a process's share of them), or client indices
        (an integer tensor or a list; a bool mask picks the clients where it is True), their rows in
        that order (the round's participants, chosen after seeing the channel).

        >>> gains = torch.tensor([[[1.0 + 0j]], [[2.0 + 0j]], [[3.0 + 0j]]])
        >>> ChannelState(gains, gains, 1).clients([2, 0]).gains.flatten().real.tolist()
        [3.0, 1.0]
        """
        norms = self.vector_norms
        if isinstance(index, slice):
            return ChannelState(
                self.gains[index],
                self.csi[index],
                self.symbols_per_block,
                None if norms is None else norms[index],
            )
        num_clients = self.gains.shape[0]
        rows = torch.as_tensor(index, device=self.gains.device)
        if rows.numel() == 0:
            rows = rows.long()  # [] comes as float32
        if rows.dim() != 1 or rows.is_floating_point() or rows.is_complex():
            raise TypeError(f"index must be a slice or a 1-D tensor or list of client indices, got {index!r}")
        if rows.dtype == torch.bool:
            if rows.numel() != num_clients:
                raise ValueError(
                    f"a bool index needs one entry per client ({num_clients}), got {rows.numel()}"
                )
            rows = rows.nonzero().flatten()
        if not bool(((rows >= 0) & (rows < num_clients)).all()):
            raise IndexError(f"client indices must be in [0, {num_clients}), got {rows.tolist()}")
        return ChannelState(
            self.gains[rows], self.csi[rows], self.symbols_per_block, None if norms is None else norms[rows]
        )

    def quality(self) -> Tensor:
        """``[K]`` float64: each client's mean channel power gain over the round's coherence blocks and
        subcarriers, mean_{c, n} |h_kcn|^2 (large-scale gain included; what channel-aware client
        sampling ranks the clients by, and the gain of a digital client's link).

        >>> gains = torch.tensor([[[1.0 + 0j, 0.0 + 1j]], [[2.0 + 0j, 0.0 + 0j]]])  # [K=2, C=1, N=2]
        >>> ChannelState(gains, gains, 1).quality().tolist()
        [1.0, 2.0]
        """
        return (self.gains.abs().to(torch.float64) ** 2).flatten(1).mean(1)
