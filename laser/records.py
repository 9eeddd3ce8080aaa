"""What an over-the-air pass and round delivered and cost: the records :func:`laser.transmit_round`
and :func:`laser.transmit_blocks` return, and the error a pass raises when nothing finite can be
decoded.

Example (a record's totals over its passes):
    >>> import torch
    >>> both, first = torch.tensor([True, True]), torch.tensor([True, False])
    >>> one = PassRecord([torch.zeros(3)], torch.tensor([2.0, 1.0]), 3, torch.tensor([0.5]), both)
    >>> two = PassRecord([torch.zeros(2)], torch.tensor([1.0, 1.0]), 2, torch.tensor([0.25]), first)
    >>> result = RoundResult([torch.zeros(5)], [one, two])
    >>> result.energy_used.tolist(), result.channel_uses, result.noise_var.tolist(), one.noise_energy
    ([3.0, 2.0], 5, [0.5, 0.25], 1.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from channels.nr import LinkOutcome
from channels.privacy import round_noise_multiplier

__all__ = ["NonFiniteNoiseError", "PassRecord", "RoundResult"]


class NonFiniteNoiseError(ArithmeticError):
    """A pass's effective noise variance is not finite: some client's signal is so large for its
    energy and gain that the alignment scale eta underflowed (noise_var / eta^2 overflows). Nothing
    finite can be decoded; in training it means the updates have diverged."""


@dataclass(frozen=True)
class PassRecord:
    """What the server received in one channel pass, and what it cost.

    Attributes:
        estimates: the server's estimate of the mean (weighted mean, with weights) of each block (B
            tensors ``[d_b]``).
        energy_used: ``[K]`` float64, each client's energy over all its blocks in this pass.
        channel_uses: real channel uses of the pass (analog: shared by all clients; digital: the
            sum of the clients' orthogonal allocations).
        noise_var: ``[B]`` float64, the effective per-entry noise variance of each decoded block.
        active: ``[K]`` bool, the clients heard in at least one block.
        bits: ``[K]`` float64, digital only: each client's message size in bits.
        heard: ``[K, B]`` bool, whether each client was heard in each block (digital: its message
            delivered, on every block); ``None`` for a record built without it.
        noise_multiplier: a clipped pass's (``PassOptions.clip``): the noise standard deviation over
            the largest client's add/remove sensitivity of what the server received; ``None`` without.
        energy_scale: with ``PassOptions.min_noise_multiplier``: the fraction of their budget the
            clients' signals kept (1: the channel's noise alone met the floor); ``None`` without.
        artificial_noise_var: the clients' artificial noise at the antenna, per real dimension
            (``PassOptions.min_energy_scale``); 0: none.
        link: a digital pass over :class:`channels.OFDMAUplink` (physical units): what the link did
            per client (air time, joules, MCS, transport blocks, retransmissions); ``None`` otherwise.
    """

    estimates: list[Tensor]
    energy_used: Tensor
    channel_uses: int
    noise_var: Tensor
    active: Tensor
    bits: Tensor | None = None
    heard: Tensor | None = None
    noise_multiplier: float | None = None
    energy_scale: float | None = None
    artificial_noise_var: float = 0.0
    link: LinkOutcome | None = None

    @property
    def noise_energy(self) -> float:
        """Expected squared error of all decoded blocks together, sum_b d_b * noise_var_b."""
        dims = torch.tensor([e.numel() for e in self.estimates], dtype=torch.float64)
        return float((dims * self.noise_var.cpu()).sum())


@dataclass(frozen=True)
class RoundResult:
    """A round's decoded tensors and its record, summed over the method's channel passes.

    Attributes:
        gradient: the server's estimate of the clients' mean (weighted mean, with weights), shaped like
            the parameters.
        passes: what each channel pass received and cost (:class:`PassRecord`).
    """

    gradient: list[Tensor]
    passes: list[PassRecord]

    @property
    def noise_multiplier(self) -> float | None:
        """The round's passes composed into one Gaussian mechanism, (sum_p nu_p^-2)^(-1/2)
        (:func:`channels.privacy.round_noise_multiplier`); ``None`` unless its passes were clipped."""
        values = [p.noise_multiplier for p in self.passes if p.noise_multiplier is not None]
        if not values:
            return None
        if any(v == 0 for v in values):
            return 0.0  # a noiseless pass: no privacy
        return round_noise_multiplier(values)

    @property
    def energy_used(self) -> Tensor:
        """``[K]`` float64: each client's energy over the round."""
        return torch.stack([p.energy_used.double().cpu() for p in self.passes]).sum(0)

    @property
    def channel_uses(self) -> int:
        """Real channel uses of the round, all passes."""
        return sum(p.channel_uses for p in self.passes)

    @property
    def noise_var(self) -> Tensor:
        """``[B]`` float64: the effective per-entry noise variance of every block, passes in order."""
        return torch.cat([p.noise_var.double().cpu() for p in self.passes])

    @property
    def active(self) -> Tensor:
        """``[K]`` bool: the clients heard in at least one block of the round."""
        return torch.stack([p.active.cpu() for p in self.passes]).any(0)

    @property
    def bits(self) -> Tensor | None:
        """``[K]``: each client's message bits (digital methods), else None."""
        return self.passes[0].bits

    @property
    def heard(self) -> Tensor | None:
        """``[K, B]`` bool: whether each client was heard in each block of the round's last pass (what
        ``keep_unheard`` gives back; a client living apart from the server gets its row and calls
        :meth:`~laser.compressor.CompressorClient.keep_unheard`)."""
        return self.passes[-1].heard
