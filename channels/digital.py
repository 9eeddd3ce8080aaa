"""The orthogonal digital link: bits to real channel uses at the Shannon rate (docs/physics.md, section 8).

Each client sends its message on its own channel uses (orthogonal access: the round's channel uses
are the sum over clients). A real AWGN channel use at SNR gamma carries at most

    C(gamma) = 0.5 log2(1 + gamma)   bits,

and the link is error-free at any rate up to capacity (ideal coding). Two budgets, as for the analog
channel (``channels.budget``):

- energy-limited: client k spreads its energy E_k evenly over m uses, each at SNR E_k g_k / (m
  noise_var) (g_k = |h_k|^2 is its power gain), so m uses carry m C(E_k g_k / (m noise_var)) bits.
  This grows with m towards E_k g_k / (2 ln 2 noise_var): a message of that many bits or more never
  fits, and the client stays silent (outage).
- power-limited: every use is sent at SNR 10^(snr_db/10) (received: times g_k), so m = ceil(bits /
  C(snr g_k)) uses and the energy is m noise_var 10^(snr_db/10).

A noiseless link (``noise_var == 0``, infinite energy or ``snr_db = inf``) is free: 0 channel uses
and 0 energy for any message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from channels._checks import brief_values, check_number, real_tensor
from channels.budget import db_to_linear

__all__ = ["DigitalRound", "bit_limit", "digital_link", "shannon_rate", "uses_at_snr", "uses_for_bits"]

F64 = torch.float64
_LN2 = math.log(2.0)
_MAX_USES = 2.0**53  # float64 counts integers exactly below this


def _f64(x: Tensor | float, name: str) -> Tensor:
    """``x`` as float64, refusing non-numbers (strings, bools, complex: TypeError), meta tensors,
    NaN and negative values (ValueError), naming ``name``."""
    x = real_tensor(x, name, dtype=F64)
    if torch.isnan(x).any():
        raise ValueError(f"{name} must not be NaN, got {brief_values(x)}")
    if (x < 0).any():
        raise ValueError(f"{name} must be >= 0, got {brief_values(x)}")
    return x


def shannon_rate(snr: Tensor | float) -> Tensor:
    """Capacity of a real AWGN channel use, C(snr) = 0.5 log2(1 + snr) bits (float64, snr's shape).

    Computed as 0.5 log1p(snr) / ln 2, accurate at small SNR.

    >>> shannon_rate(torch.tensor([0.0, 3.0, 15.0])).tolist()
    [0.0, 1.0, 2.0]
    """
    return _rate(_f64(snr, "snr"))


def bit_limit(energy: Tensor | float, gain: Tensor | float, noise_var: Tensor | float) -> Tensor:
    """The most bits energy E can carry with unlimited channel uses: E g / (2 ln 2 noise_var).

    It is the limit of m C(E g / (m noise_var)) as m -> inf, never reached; ``inf`` where
    ``noise_var == 0``. Inputs broadcast; float64 output.

    >>> round(float(bit_limit(2 * math.log(2), 1.0, 1.0)), 12)
    1.0
    """
    energy, gain, noise_var = _f64(energy, "energy"), _f64(gain, "gain"), _f64(noise_var, "noise_var")
    limit = energy * gain / (2 * _LN2 * noise_var)
    return torch.where(noise_var == 0, torch.full_like(limit, math.inf), limit)


def _rate(snr: Tensor) -> Tensor:
    return 0.5 * torch.log1p(snr) / _LN2


def _bits_carried(uses: Tensor, energy_gain: Tensor, noise_var: Tensor) -> Tensor:
    """m C(E g / (m noise_var)): the bits of m uses sharing the energy E (0 at m = 0)."""
    rate = _rate(energy_gain / (uses.clamp(min=1) * noise_var))
    return torch.where(uses > 0, uses * rate, torch.zeros_like(rate))


def uses_for_bits(
    bits: Tensor | float, energy: Tensor | float, gain: Tensor | float, noise_var: Tensor | float
) -> Tensor:
    """The fewest integer channel uses m with m C(E g / (m noise_var)) >= bits, the energy E spread
    evenly over the m uses (float64; inputs broadcast).

    The left side increases with m towards :func:`bit_limit`, so m is found by bisection over the
    integers in float64, keeping "m satisfies the inequality, m - 1 does not" exactly as evaluated,
    as ``m * shannon_rate(E * g / (m * noise_var))``. Special cases: 0 where bits == 0; 0 on a
    noiseless link (``noise_var == 0`` or ``E == inf``: free); ``inf`` (infeasible) where bits >=
    bit_limit, or so close to it that no m below 2^53 reaches it in float64.

    >>> uses_for_bits(torch.tensor([0.0, 1.0, 2.0, 3.0]), 3.0, 1.0, 1.0).tolist()   # limit 2.16 bits
    [0.0, 1.0, 18.0, inf]
    """
    bits, energy, gain, noise_var = (
        _f64(x, name)
        for x, name in ((bits, "bits"), (energy, "energy"), (gain, "gain"), (noise_var, "noise_var"))
    )
    # torch.broadcast_tensors is untyped (returns Any); it returns a tuple of tensors
    bits, energy, gain, noise_var = cast(
        tuple[Tensor, ...], torch.broadcast_tensors(bits, energy, gain, noise_var)
    )
    noiseless = (noise_var == 0) | torch.isinf(energy)
    limit = bit_limit(energy, gain, noise_var)
    active = (bits > 0) & ~noiseless & (bits < limit)
    energy_gain = torch.where(active, energy * gain, 1.0)
    noise_var = torch.where(active, noise_var, 1.0)
    target = torch.where(active, bits, 0.0)
    # Upper bound: ln(1 + x) >= x / (1 + x) gives m C(G/m) >= limit m / (m + G) >= bits for
    # m >= bits G / (limit - bits), G = E g / noise_var; then double while rounding leaves it short.
    gap = torch.where(active, limit - bits, 1.0)
    hi = torch.clamp(torch.ceil(target * (energy_gain / noise_var) / gap) + 1, min=1, max=_MAX_USES)
    short = active & (_bits_carried(hi, energy_gain, noise_var) < target)
    while (grow := short & (hi < _MAX_USES)).any():
        hi = torch.where(grow, torch.clamp(2 * hi, max=_MAX_USES), hi)
        short = active & (_bits_carried(hi, energy_gain, noise_var) < target)
    lo = torch.zeros_like(hi)  # m = 0 carries 0 < bits
    searching = active & ~short
    while (searching & (hi - lo > 1)).any():
        mid = torch.floor((lo + hi) / 2)
        fits = _bits_carried(mid, energy_gain, noise_var) >= target
        hi = torch.where(searching & fits, mid, hi)
        lo = torch.where(searching & ~fits, mid, lo)
    uses = torch.where(searching, hi, torch.zeros_like(hi))
    infeasible = (bits > 0) & ~noiseless & ~searching
    return torch.where(infeasible, torch.full_like(uses, math.inf), uses)


def uses_at_snr(
    bits: Tensor | float, snr_db: float, gain: Tensor | float, noise_var: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Power-limited regime: every use at transmit SNR 10^(snr_db/10), received SNR times ``gain``.

        m = ceil(bits / C(10^(snr_db/10) g)),        energy = m noise_var 10^(snr_db/10).

    Returns ``(uses, energy)`` (float64, broadcast shape); 0 uses where bits == 0; ``inf`` uses and
    energy where gain == 0 and bits > 0. The ceiling is checked, so m C >= bits > (m - 1) C exactly.

    >>> uses, energy = uses_at_snr(torch.tensor([0.0, 1.0, 5.0]), snr_db=10 * math.log10(3), gain=1.0)
    >>> uses.tolist(), [round(e, 9) for e in energy.tolist()]
    ([0.0, 1.0, 5.0], [0.0, 3.0, 15.0])
    """
    if not math.isfinite(check_number(snr_db, "snr_db")):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    bits, gain = _f64(bits, "bits"), _f64(gain, "gain")
    noise_var = float(_f64(noise_var, "noise_var"))
    snr = db_to_linear(snr_db)
    rate = shannon_rate(snr * gain)
    rate, bits = cast(tuple[Tensor, ...], torch.broadcast_tensors(rate, bits))  # untyped in torch
    uses = torch.ceil(bits / rate)
    uses = torch.where((uses * rate < bits), uses + 1, uses)  # rounding fix-ups
    uses = torch.where((uses > 0) & ((uses - 1) * rate >= bits), uses - 1, uses)
    uses = torch.where(bits == 0, torch.zeros_like(uses), uses)
    return uses, uses * noise_var * snr


@dataclass
class DigitalRound:
    """One round of the orthogonal digital link, per client k (all ``[K]``).

    Fields:
        delivered: bool, the server decodes client k's message (False: outage, the client is silent).
        channel_uses: float64, real channel uses client k occupies (0 when not delivered).
        energy_used: float64, energy client k spends (0 when not delivered).
    """

    delivered: Tensor
    channel_uses: Tensor
    energy_used: Tensor

    @property
    def total_channel_uses(self) -> float:
        """The round's channel uses: the clients' links are orthogonal, so they add up."""
        return float(self.channel_uses.sum())


def digital_link(
    bits: Tensor,
    gains: Tensor,
    *,
    energy: Tensor | float | None = None,
    snr_db: float | None = None,
    noise_var: float = 1.0,
) -> DigitalRound:
    """Send each client's ``bits[k]`` on its own link with power gain ``gains[k]`` (both ``[K]``).

    Exactly one budget:

    - ``energy`` (float or ``[K]``): a client whose message fits (bits < :func:`bit_limit`) spends
      its whole energy over :func:`uses_for_bits` uses and is delivered; one whose message does not
      fit (including gain 0 or energy 0) stays silent: not delivered, 0 uses, 0 energy.
    - ``snr_db``: every client with gain > 0 is delivered, with :func:`uses_at_snr`'s uses and
      energy; gain 0 is an outage.

    A client with bits == 0 is delivered with 0 uses and 0 energy. A noiseless link (``noise_var ==
    0``, infinite energy, or ``snr_db == inf``) delivers everything with 0 uses and 0 energy.

    >>> out = digital_link(torch.tensor([1.0, 2.0, 4.0, 0.0]), torch.tensor([1.0, 1.0, 1.0, 0.0]), energy=3.0)
    >>> out.delivered.tolist(), out.channel_uses.tolist(), out.energy_used.tolist()
    ([True, True, False, True], [1.0, 18.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0])
    """
    if (energy is None) == (snr_db is None):
        raise ValueError(f"give exactly one of energy and snr_db, got energy={energy!r}, snr_db={snr_db!r}")
    bits, gains = _f64(bits, "bits"), _f64(gains, "gains")
    if bits.dim() != 1 or gains.shape != bits.shape:
        raise ValueError(f"bits and gains must both be [K], got {tuple(bits.shape)} and {tuple(gains.shape)}")
    if torch.isinf(bits).any() or torch.isinf(gains).any():
        raise ValueError(f"bits and gains must be finite, got {brief_values(bits)} and {brief_values(gains)}")
    if not (math.isfinite(check_number(noise_var, "noise_var")) and noise_var >= 0):
        raise ValueError(f"noise_var must be finite and >= 0, got {noise_var}")
    zeros = torch.zeros_like(bits)
    if snr_db is not None:
        if math.isnan(check_number(snr_db, "snr_db")):
            raise ValueError("snr_db must not be NaN")
        if noise_var == 0 or snr_db == math.inf:
            return DigitalRound(torch.ones_like(bits, dtype=torch.bool), zeros, zeros.clone())
        uses, spent = uses_at_snr(bits, snr_db, gains, noise_var)
        delivered = (bits == 0) | (gains > 0)
    else:
        assert energy is not None  # exactly one of energy and snr_db, checked above
        energy = _f64(energy, "energy")
        if energy.dim() > 0 and energy.shape != bits.shape:
            raise ValueError(
                f"energy must be a float or [K] = {tuple(bits.shape)}, got {tuple(energy.shape)}"
            )
        energy = energy.expand_as(bits)
        uses = uses_for_bits(bits, energy, gains, noise_var)
        delivered = torch.isfinite(uses)
        spent = torch.where((bits > 0) & (noise_var > 0) & torch.isfinite(energy), energy, zeros)
    uses = torch.where(delivered, uses, zeros)
    spent = torch.where(delivered, spent, zeros)
    return DigitalRound(delivered, uses, spent)
