"""The options of an over-the-air pass, as one object: :class:`PassOptions`, which
:func:`laser.transmit_round` and :func:`laser.transmit_blocks` take (or the same values as keyword
arguments), and to which the next options of a pass are added as fields."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from channels._checks import check_probability
from channels.nr import OFDMAUplink
from channels.processes import Processes
from laser.allocation import ALLOCATIONS, Allocation

__all__ = ["PassOptions"]


@dataclass(frozen=True)
class PassOptions:
    """How a round goes over the air, apart from who sends what: the clients' budgets, their split
    over the blocks, the server's weighted mean, what an unheard client keeps, and the processes the
    clients are split over. :func:`transmit_round` and :func:`transmit_blocks` take one (or the same
    values as keyword arguments); a run builds it once and changes what varies by round with
    :meth:`replace`, and a method's extra pass takes its share of the budget with :meth:`share`.

    Attributes:
        energy: each client's energy for the round (a float, or ``[K]``), shared by the round's
            passes in proportion to their channel uses; or
        snr_db: a per-channel-use SNR (the round's energy grows with its channel uses). Exactly one
            of the two.
        allocation: the split of a budget over a pass's blocks (``norm``, LASER's;
            ``norm_sqrt_dim``; ``uniform``).
        budget_scale: ``[K]`` multipliers of the budgets (heterogeneous clients).
        weights: ``[K]`` client weights w_k > 0 in the order of the clients (this process's with
            ``processes``): the server estimates the weighted mean of what it hears. ``None``: the
            plain mean.
        keep_unheard: give a client the blocks of the last pass it was not heard in back to its
            error feedback (needs the client sides).
        processes: the clients split over processes (``federated.distributed``): ``clients`` and
            their blocks are this process's, the result every client's.
        clip: privacy mode (docs/physics.md, section 14): every client clips each block of what it
            transmits to C_b = C sqrt(d_b / sum d) (:func:`channels.privacy.block_clips`), the budget
            is split over the blocks as E_b = E C_b^2 / C^2 (``allocation`` and the method's energy
            groups are set aside: they would read the clients' norms), the scale is fixed from the
            clips (``channel.transmit(clips=)``) and each pass records its noise multiplier. Needs
            uniform weights and an analog method. ``None``: off.
        keep_clipped: with ``clip``: give each client the part of its last pass's blocks that the
            clip cut off back to its error feedback (:meth:`~laser.compressor.CompressorClient.keep_clipped`;
            needs the client sides). Default False: the clipped-off part is lost, as in DP-FedAvg
            (with a fixed clip, keeping it lets the memory grow by what the clip holds back).
        min_noise_multiplier: with ``clip``: the round's noise multiplier the clients keep to at
            least, lowering their energy where the channel's noise alone would fall short (each of the
            method's P passes to at least sqrt(P) times it, so that the round's composition meets it).
        min_energy_scale: with ``min_noise_multiplier``: the fraction of their budget the clients'
            signals keep at least, alpha_f in (0, 1]; the clients send the rest of the noise the floor
            needs as artificial noise, counted in their energy (``channel.transmit(min_energy_scale=)``).
            ``None``: the energy is lowered as far as the floor needs.
        central: with ``clip``: Flower-style central DP instead of the channel's noise (Flower's
            ``DifferentialPrivacyServerSideFixedClipping``): each client's blocks are clipped as one
            vector to norm C (:func:`channels.privacy.flat_clip`), the channel carries them (a
            noiseless one: the exact mean), and the server adds Gaussian noise of standard deviation
            nu C / K to every entry of the mean, K the pass's clients, nu this noise multiplier (each
            of the method's P passes sqrt(P) nu, so that the round composes to nu). The server is
            trusted to add it: a weaker threat model than the channel's noise. ``None``: off.
        participation: with ``clip``: hidden participation. The clients sampled themselves, each with
            this probability q in (0, 1], and the server cannot tell who did: the pass's clients are
            the whole population (an absent client sends zeros and spends nothing), its scale is fixed
            from every client's clip and channel, and the server divides by q times the clients that
            could be heard on a symbol, the expected count (``channel.transmit(participation=)``).
            Single-pass analog methods only; ``None``: the server knows who takes part.
        uplink: a digital method's link in physical units (:class:`channels.OFDMAUplink`: OFDMA with
            equal resource-block shares, each message at the Shannon rate or over a 5G NR PUSCH link
            with link adaptation, transport blocks and HARQ); ``None``: the normalised orthogonal
            Shannon link (:func:`channels.digital_link`). Digital methods only, one process.

    Example:
        >>> options = PassOptions(energy=100.0, allocation="uniform")
        >>> options.share(0.2).energy, options.replace(energy=None, snr_db=10.0).snr_db
        (20.0, 10.0)
        >>> PassOptions(energy=1.0, allocation="equal")
        Traceback (most recent call last):
        ...
        ValueError: allocation = 'equal' is not accepted; expected one of norm, norm_sqrt_dim, uniform
    """

    energy: float | Tensor | None = None
    snr_db: float | None = None
    allocation: Allocation = "norm"
    budget_scale: Tensor | None = None
    weights: Tensor | None = None
    keep_unheard: bool = False
    processes: Processes | None = None
    clip: float | None = None
    keep_clipped: bool = False
    min_noise_multiplier: float | None = None
    min_energy_scale: float | None = None
    central: float | None = None
    participation: float | None = None
    uplink: OFDMAUplink | None = None

    def __post_init__(self) -> None:
        if (self.energy is None) == (self.snr_db is None):
            raise ValueError("give exactly one of energy (per client and round) or snr_db (per channel use)")
        if self.allocation not in ALLOCATIONS:
            raise ValueError(
                f"allocation = {self.allocation!r} is not accepted; expected one of {', '.join(ALLOCATIONS)}"
            )
        for name in ("keep_unheard", "keep_clipped"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {type(getattr(self, name)).__name__}")
        if self.clip is not None:
            if not _positive(self.clip):
                raise ValueError(
                    f"clip = {self.clip!r} is out of range; expected a finite number > 0, or None"
                )
            if self.weights is not None:
                raise ValueError("clip needs weights None: a clipped pass sends uniform weights")
        elif self.keep_clipped:
            raise ValueError("keep_clipped needs a clip (it gives back what the clip cut off)")
        for name in ("min_noise_multiplier", "central"):  # a noise multiplier, of a clipped pass
            value = getattr(self, name)
            if value is not None and (self.clip is None or not _positive(value)):
                raise ValueError(f"{name} = {value!r}: expected a finite number > 0, and a clip with it")
        if self.min_energy_scale is not None:
            check_probability(self.min_energy_scale, "min_energy_scale")  # a fraction in (0, 1]
            if self.min_noise_multiplier is None:
                raise ValueError(
                    "min_energy_scale needs a min_noise_multiplier (the floor it keeps the energy for)"
                )
        if self.central is not None and (
            self.min_noise_multiplier is not None or self.participation is not None
        ):
            raise ValueError(
                "central (the server adds the noise) excludes min_noise_multiplier and participation "
                "(the channel's noise and hidden participation)"
            )
        if self.uplink is not None and not isinstance(self.uplink, OFDMAUplink):
            raise TypeError(f"uplink must be a channels.OFDMAUplink, got {type(self.uplink).__name__}")
        if self.uplink is not None and self.processes is not None:
            raise ValueError("uplink (physical units' digital link) needs the clients on one process")
        if self.participation is not None:
            check_probability(self.participation, "participation")
            if self.clip is None:
                raise ValueError("participation needs a clip (hidden participation is a clipped pass)")

    def replace(self, **changes: object) -> PassOptions:
        """These options with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def share(self, fraction: float) -> PassOptions:
        """The options of a pass that spends ``fraction`` of the round's energy (an SNR per channel
        use stays as it is)."""
        return self if self.energy is None else self.replace(energy=self.energy * fraction)


def _positive(value: object) -> bool:
    """A finite real number > 0 (not a bool)."""
    return (
        not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    )


def _is_default(value: object, default: object) -> bool:
    return value is None if default is None else isinstance(value, type(default)) and value == default


def _options(options: PassOptions | None, **given: Any) -> PassOptions:
    """``options``, or the options of the keyword arguments ``given`` (a call gives one or the other:
    a keyword left at its default, PassOptions' own, is not given)."""
    if options is None:
        return PassOptions(**given)
    if not isinstance(options, PassOptions):
        raise TypeError(f"options must be a PassOptions, got {type(options).__name__}")
    defaults = {f.name: f.default for f in dataclasses.fields(PassOptions)}
    also = [name for name, value in given.items() if not _is_default(value, defaults[name])]
    if also:
        raise TypeError(
            f"options and {', '.join(also)} both given: pass the pass options either as a PassOptions or "
            "as keyword arguments"
        )
    return options
