"""How the clients' signals add up over the air in one pass (:meth:`channels.FadingChannel.transmit`):
their weights brought to a safe scale, each chunk of clients precoded by its channel estimate, the
common alignment scale eta from every client's need and budget, and the sum the antenna receives.

The physics (derived in :meth:`~channels.FadingChannel.transmit`): client k sends
x_k = m_k (eta / h_hat_k) w_k u_k; the server receives y = sum_k h_k x_k + z and divides by eta
times the weight of the clients heard on each symbol."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from channels._checks import check_weights
from channels.blocks import SignalBlocks
from channels.power_control import PowerControl
from channels.processes import Processes
from channels.state import ChannelState

__all__ = ["Precoded", "alignment", "normalised_weights"]


def normalised_weights(
    weights: Tensor | Sequence[float] | None, blocks: SignalBlocks, reduce: Processes | None
) -> tuple[Tensor | None, int]:
    """Client weights w_k checked, as float64 for the needs and the heard weight W_j, brought to a
    largest weight in [1, 2) by a power of two 2^shift (exact: the result is that of the weights
    given, and no product leaves the float range; the common scale is reported back in their units);
    (None, 0) without weights."""
    if weights is None:
        return None, 0
    weight = check_weights(weights, blocks.num_clients, blocks.device)
    largest = weight.max() if reduce is None else -reduce.min(-weight.max())
    shift = int(torch.frexp(largest).exponent) - 1
    return torch.ldexp(weight, torch.tensor(-shift, device=weight.device)), shift


def alignment(need: Tensor, energy: Tensor, reduce: Processes | None) -> tuple[Tensor, Tensor, Tensor]:
    """The common scale eta_b = min_k sqrt(E_kb) / need_kb of each block (float64, over every process's
    clients with ``reduce``; inf where nobody needs energy), where it is finite, and what each client
    spends on each block, eta^2 need^2 (inf: an infinite budget)."""
    ratio = torch.where(need > 0, energy.double().sqrt() / need, math.inf)
    eta = ratio.min(0).values if reduce is None else reduce.min(ratio.min(0).values)  # [B] float64
    finite = torch.isfinite(eta)
    eta_tx = torch.where(finite, eta, 1.0)
    energy_used = torch.where(finite, eta_tx.square() * need.square(), torch.where(need > 0, math.inf, 0.0))
    return eta, finite, energy_used


class Precoded:
    """A pass's signals as the clients precode them for one channel state: each chunk of clients'
    symbols inverted by their channel estimate, m_k u_k / h_hat_k (m_k: where the power-control
    policy lets them send), their norms per block and, once the scale is known, their sum as the
    antenna receives it."""

    def __init__(
        self, policy: PowerControl, blocks: SignalBlocks, state: ChannelState, energy: Tensor, offset: int
    ) -> None:
        self.policy, self.blocks, self.state, self.energy, self.offset = policy, blocks, state, energy, offset
        self.cdtype = torch.complex128 if blocks.dtype == torch.float64 else torch.complex64
        self.spans = [slice(a, a + s) for a, s in zip(blocks.starts, blocks.symbols)]
        self.block_of = torch.repeat_interleave(
            torch.arange(len(self.spans), device=blocks.device),
            torch.tensor(blocks.symbols, device=blocks.device),
        )  # [S]: the block of each symbol
        self.total = sum(blocks.symbols)
        # every gain and its estimate exactly 1 (AWGN): dividing by h_hat and multiplying by h are
        # exact identities, skipped (they are the costly complex passes of an uncompressed round)
        self.unit = bool((state.gains == 1).all()) and bool((state.csi == 1).all())
        self.actual: Tensor | None = None  # a clipped pass's actual needs (set by needs)

    def precode(self, clients: slice, symbols: Tensor) -> tuple[Tensor, Tensor, Tensor, bool]:
        """This chunk's true gains, its inverted symbols m_k u_k / h_hat_k, where it sends, and
        whether it sends everywhere (then the mask is the policy's, ``[c, 1]`` over a flat state: no
        ``[c, S]`` mask is made for a chunk that sends every symbol)."""
        gains, csi = self.state.clients(clients).at(self.offset, self.total)
        gains, csi = gains.to(self.cdtype), csi.to(self.cdtype)
        sends = self.policy.transmits(csi) & (csi != 0)  # the shape of csi: [c, S] or [c, 1]
        budget = self.energy[clients] > 0  # [c, B]
        if bool(sends.all()) and bool(budget.all()):
            return gains, (symbols if self.unit else symbols / csi), sends, True
        mask = sends & budget[:, self.block_of]
        inverted = symbols if self.unit else symbols / torch.where(csi != 0, csi, 1)
        return gains, torch.where(mask, inverted, 0), mask, False

    def block_norms(self, clients: slice, inverted: Tensor, everywhere: bool) -> Tensor:
        """``[c, B]`` float64: ||m_k u_k / h_hat_k|| per block, from the real I/Q values (over
        unit gains with every client sending, the signal's own norms, computed once)."""
        if self.unit and everywhere:
            return self.blocks.norms()[clients]
        pairs = torch.view_as_real(inverted)  # [c, S, 2], a view
        return torch.stack(
            [torch.linalg.vector_norm(pairs[:, span].double(), dim=(1, 2)) for span in self.spans],
            1,
        )

    def bound(self, clients: slice, mask: Tensor, clips: Tensor) -> Tensor:
        """``[c, B]`` float64: a clipped pass's public need C_b max_{j in b} m_kj / |h_hat_kj|, the most
        a block of norm at most C_b can need (no client's data enters it)."""
        _, csi = self.state.clients(clients).at(self.offset, self.total)
        size = csi.abs().double()
        inverse = torch.where(mask & (size > 0), 1 / torch.where(size > 0, size, 1.0), 0.0)
        if inverse.shape[1] == 1:  # flat over the pass: one value for every block
            largest = inverse.expand(-1, len(self.spans))
        else:
            largest = torch.stack([inverse[:, span].max(1).values for span in self.spans], 1)
        return largest * clips.to(largest.device)[None, :]

    def noise_energy(self, variance: float, count: Tensor) -> Tensor:
        """``[K, B]`` float64: what each client spends sending its share of an artificial noise of
        per-real-dimension ``variance`` at the antenna, split evenly over the ``count`` K_j of the
        clients heard on each symbol: client k sends CN(0, 2 variance / K_j) / h_hat_kj on each symbol
        j it sends on, 2 variance / (K_j |h_hat_kj|^2) in expectation, summed over the block."""
        _, csi = self.state.at(self.offset, self.total)
        sends = self.policy.transmits(csi) & (csi != 0)
        mask = sends & (self.energy > 0)[:, self.block_of]  # [K, S]
        size = csi.abs().double().square()
        inverse = torch.where(mask, 1 / torch.where(size > 0, size, 1.0), 0.0)  # [K, S]
        share = 2 * variance / count.clamp(min=1).double().to(inverse.device)  # [S]
        spent = inverse * share[None, :]
        return torch.stack([spent[:, span].sum(1) for span in self.spans], 1)

    def needs(
        self, weight: Tensor | None, clips: Tensor | None = None
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor, bool] | None]:
        """Every client's need ||w_k m_k u_k / h_hat_k|| per block ``[K, B]`` float64 (w_k = 1 without
        weights; with ``clips``, the public bound of :meth:`bound` instead); on each symbol the count
        K_a of the clients heard (long) or, with weights, their weight W (float64); and the precoded
        chunk, kept when the signals are one packed chunk."""
        blocks = self.blocks
        needs: list[Tensor] = []
        actual: list[Tensor] = []
        count_dtype = torch.long if weight is None else torch.float64
        count = torch.zeros(self.total, dtype=count_dtype, device=blocks.device)
        kept: tuple[Tensor, Tensor, Tensor, bool] | None = None
        for clients, symbols in blocks.chunks():
            gains, inverted, mask, everywhere = self.precode(clients, symbols)
            norms = self.block_norms(clients, inverted, everywhere)
            if clips is not None:  # the public bound sets the scale; the norms, what is spent
                actual.append(norms)
                norms = self.bound(clients, mask, clips)
            if weight is None:
                needs.append(norms)
                count += mask.shape[0] if everywhere else mask.sum(0)
            else:
                needs.append(norms * weight[clients, None])
                count += weight[clients].sum() if everywhere else (mask * weight[clients, None]).sum(0)
            kept = (gains, inverted, mask, everywhere) if blocks.packed is not None else None
        self.actual = torch.cat(actual) if actual else None  # [K, B] with clips: ||m u / h_hat||
        return torch.cat(needs), count, kept

    def superpose(
        self, weight: Tensor | None, kept: tuple[Tensor, Tensor, Tensor, bool] | None
    ) -> tuple[Tensor, list[Tensor]]:
        """The sum over this process's clients of h_k w_k m_k u_k / h_hat_k per symbol (eta is common
        to the clients of a symbol: the sum is scaled once, later), and who was heard in each block."""
        blocks, spans = self.blocks, self.spans
        weight_work = None if weight is None else weight.to(blocks.dtype)
        summed: Tensor | None = None
        active: list[Tensor] = []
        for clients, symbols in blocks.chunks():
            gains, inverted, mask, everywhere = kept if kept is not None else self.precode(clients, symbols)
            if everywhere:
                active.append(torch.ones(mask.shape[0], len(spans), dtype=torch.bool, device=blocks.device))
            else:
                active.append(torch.stack([mask[:, span].any(1) for span in spans], 1))
            received = inverted if self.unit else gains * inverted
            if weight_work is not None:  # w_k times I and Q: real products, exact for w_k = 1
                scaled = torch.view_as_real(received) * weight_work[clients, None, None]
                received = torch.view_as_complex(scaled)
            part = received.sum(0)
            summed = part if summed is None else summed + part
        assert summed is not None  # blocks.chunks() yields at least one chunk
        return summed, active
