"""Transmit budgets: the energy-limited regime (the paper's) and the power-limited regime (SNR).

- Energy-limited: each client may spend ``energy`` per round, summed over all its channel uses
  (the LASER paper's "power" P; with ``noise_var = 1`` the numbers are the paper's).
- Power-limited: a per-channel-use SNR, ``snr_db = 10 log10(P_use / noise_var)``; a round that needs
  ``n`` real channel uses then has the energy ``n * noise_var * 10^(snr_db / 10)``, so a compressor
  that sends fewer values gets less energy, but at the same SNR per use.
"""

from __future__ import annotations

import math

from channels._checks import check_number

__all__ = ["db_to_linear", "energy_for_snr_db", "snr_db_for_energy"]


def db_to_linear(value_db: float) -> float:
    """10^(value_db / 10).

    >>> db_to_linear(20.0)
    100.0
    """
    if math.isnan(check_number(value_db, "value_db")):
        raise ValueError("value_db must not be NaN")
    try:
        return 10.0 ** (value_db / 10.0)
    except OverflowError:
        return math.inf


def energy_for_snr_db(snr_db: float, channel_uses: int, noise_var: float) -> float:
    """Energy of ``channel_uses`` real channel uses at a per-use SNR: ``n * noise_var * 10^(snr_db/10)``.

    A noiseless channel (``noise_var == 0``) has an infinite SNR at any power: the energy is ``inf``.

    >>> energy_for_snr_db(10.0, channel_uses=50, noise_var=1.0)
    500.0
    """
    if math.isnan(check_number(snr_db, "snr_db")):
        raise ValueError("snr_db must not be NaN")
    _check_uses_and_noise(channel_uses, noise_var)
    if noise_var == 0:
        return math.inf
    return channel_uses * noise_var * db_to_linear(snr_db)


def snr_db_for_energy(energy: float, channel_uses: int, noise_var: float) -> float:
    """The average per-use SNR (dB) of spending ``energy`` over ``channel_uses`` real channel uses.

    >>> snr_db_for_energy(500.0, channel_uses=50, noise_var=1.0)
    10.0
    """
    if math.isnan(check_number(energy, "energy")):
        raise ValueError("energy must not be NaN")
    _check_uses_and_noise(channel_uses, noise_var)
    if energy <= 0 or channel_uses == 0:
        return -math.inf
    if noise_var == 0 or math.isinf(energy):
        return math.inf
    return 10.0 * math.log10(energy / (channel_uses * noise_var))


def _check_uses_and_noise(channel_uses: int, noise_var: float) -> None:
    """Refuse what no budget can be computed from: channel_uses < 0 or NaN, noise_var < 0, NaN or
    infinite, and non-numbers (TypeError), naming the argument."""
    if not check_number(channel_uses, "channel_uses") >= 0:
        raise ValueError(f"channel_uses must be >= 0, got {channel_uses}")
    variance = check_number(noise_var, "noise_var")
    if not (math.isfinite(variance) and variance >= 0):
        raise ValueError(f"noise_var must be a finite number >= 0, got {noise_var}")
