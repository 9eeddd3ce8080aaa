"""A link budget in physical units: an NR carrier's bandwidth, noise power, symbol rate and air
time, and the conversion between a client's transmit power in dBm and the normalised energy of the
rest of the simulator.

The simulator's normalised mode measures a round's energy E in units of the noise variance per real
channel use (``channel.noise_var``, 1 by default): a client with energy E spread over n real uses
has an SNR per use of E / (noise_var n). This module says what that is in a real uplink.

**The carrier** (3GPP TS 38.211): ``resource_blocks`` of 12 subcarriers spaced
``subcarrier_spacing_hz`` (15 kHz x 2^mu, mu = 0..4); the occupied bandwidth is
B = 12 x resource_blocks x spacing. With a normal cyclic prefix a slot holds 14 OFDM symbols and
lasts 1 ms / 2^mu, so each subcarrier carries 14 x spacing / 15 kHz symbols per millisecond, and the
carrier 12 x resource_blocks x spacing x 14 / 15 resource elements (REs) per second.

**What a pass costs** (the over-the-air aggregation's overhead, stated): ``pilot_symbols`` of the
14 OFDM symbols of a slot carry the demodulation reference signal (DMRS, 1 by default: one
front-loaded single-symbol DMRS, which is how the receiver learns the channel it inverts) and no
data; nothing else is counted (the grant and the power headroom travel on control channels
outside the band). A pass of d real values takes ceil(d / 2) complex symbols on the data REs, so its
air time is ceil(d / 2) / (12 x resource_blocks x spacing x (14 - pilot_symbols) / 15 kHz x 1 ms),
the data symbol rate :attr:`LinkBudget.symbol_rate`.

**Noise**: thermal noise -174 dBm/Hz (290 K) raised by the base station's noise figure F, so the
band's noise power is -174 + 10 log10(B) + F dBm. Per resource element (one complex symbol, whose
duration times its subcarrier's bandwidth is 1 without the cyclic prefix) the noise energy is
N0 F joules, N0 F / 2 per real dimension: the normalised mode's ``noise_var`` in joules.

**Energy**: a client transmitting at power P watts for a round's air time T spends P T joules (its
pilots included); its data REs carry P / (the carrier's RE rate) joules each. Received through a
coupling gain G (path loss, shadowing and antenna gains; 10 log10 G = -coupling loss in dB), a pass of
n real uses sees the SNR per use

    snr = G P / RE_rate / (N0 F)        (per complex symbol; the same per real use: both halve),

and :meth:`LinkBudget.normalised_energy` is the energy E of the normalised mode with the same SNR:
E = snr x n x noise_var.

>>> budget = LinkBudget()   # 3.5 GHz, 30 kHz, 51 resource blocks (20 MHz channel), F = 5 dB
>>> round(budget.bandwidth_hz / 1e6, 2), round(budget.noise_power_dbm, 2)
(18.36, -96.36)
>>> budget.symbol_rate   # 12 x 51 x 13 data symbols a slot, 2,000 slots a second
15912000.0
>>> round(budget.air_time_s(28_298) * 1e6, 1)   # µs: the MNIST-1D CNN's uncompressed pass, 14,149 symbols
889.2
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "SUBCARRIER_SPACINGS_HZ",
    "THERMAL_NOISE_DBM_PER_HZ",
    "LinkBudget",
    "dbm_to_watts",
    "watts_to_dbm",
]

THERMAL_NOISE_DBM_PER_HZ = -174.0  # k T at 290 K, in dBm per hertz
SUBCARRIER_SPACINGS_HZ = (15e3, 30e3, 60e3, 120e3, 240e3)  # NR numerologies mu = 0..4
SYMBOLS_PER_SLOT = 14  # normal cyclic prefix
MAX_RESOURCE_BLOCKS = 275  # TS 38.101: the widest NR carrier


def dbm_to_watts(dbm: float) -> float:
    """Power in watts of ``dbm`` (0 dBm = 1 mW).

    >>> dbm_to_watts(30.0), dbm_to_watts(0.0)
    (1.0, 0.001)
    """
    return 10.0 ** ((dbm - 30.0) / 10.0)


def watts_to_dbm(watts: float) -> float:
    """Power in dBm of ``watts`` (> 0).

    >>> watts_to_dbm(0.2)   # a phone's 23 dBm
    23.010299956639813
    """
    if not (math.isfinite(watts) and watts > 0):
        raise ValueError(f"watts must be a finite number > 0, got {watts!r}")
    return 10.0 * math.log10(watts) + 30.0


def _number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} = {value!r} is out of range; expected a number in [{low:g}, {high:g}]")
    return float(value)


@dataclass(frozen=True)
class LinkBudget:
    """An NR uplink carrier seen by the base station: see the module docstring for every formula.

    Args:
        carrier_frequency_hz: the carrier (path loss depends on it; 0.5-100 GHz, TR 38.901's range).
        subcarrier_spacing_hz: 15, 30, 60, 120 or 240 kHz (NR numerology mu = 0..4).
        resource_blocks: 1..275 resource blocks of 12 subcarriers.
        noise_figure_db: the base station's receiver noise figure F (0..30 dB).
        pilot_symbols: OFDM symbols of the 14 in a slot that carry DMRS and no data (0..13).
    """

    carrier_frequency_hz: float = 3.5e9
    subcarrier_spacing_hz: float = 30e3
    resource_blocks: int = 51
    noise_figure_db: float = 5.0
    pilot_symbols: int = 1

    def __post_init__(self) -> None:
        _number(self.carrier_frequency_hz, "carrier_frequency_hz", 0.5e9, 100e9)
        if self.subcarrier_spacing_hz not in SUBCARRIER_SPACINGS_HZ:
            raise ValueError(
                f"subcarrier_spacing_hz = {self.subcarrier_spacing_hz!r} is not an NR spacing; expected "
                "one of 15e3, 30e3, 60e3, 120e3, 240e3"
            )
        for name, value, low, high in (
            ("resource_blocks", self.resource_blocks, 1, MAX_RESOURCE_BLOCKS),
            ("pilot_symbols", self.pilot_symbols, 0, SYMBOLS_PER_SLOT - 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} = {value} is out of range; expected an integer in {low}..{high}")
        _number(self.noise_figure_db, "noise_figure_db", 0.0, 30.0)

    @property
    def subcarriers(self) -> int:
        """12 per resource block."""
        return 12 * self.resource_blocks

    @property
    def bandwidth_hz(self) -> float:
        """The occupied bandwidth B = 12 x resource blocks x subcarrier spacing."""
        return self.subcarriers * self.subcarrier_spacing_hz

    @property
    def slots_per_second(self) -> float:
        """1,000 x 2^mu: a slot lasts 1 ms / 2^mu."""
        return 1000.0 * self.subcarrier_spacing_hz / 15e3

    @property
    def re_rate(self) -> float:
        """Resource elements per second over the whole carrier, pilots included."""
        return self.subcarriers * SYMBOLS_PER_SLOT * self.slots_per_second

    @property
    def symbol_rate(self) -> float:
        """Complex data symbols per second: the REs not taken by pilots."""
        return self.subcarriers * (SYMBOLS_PER_SLOT - self.pilot_symbols) * self.slots_per_second

    @property
    def noise_power_dbm(self) -> float:
        """The band's noise power at the receiver: -174 + 10 log10(B) + F dBm."""
        return THERMAL_NOISE_DBM_PER_HZ + 10.0 * math.log10(self.bandwidth_hz) + self.noise_figure_db

    @property
    def noise_energy_j(self) -> float:
        """The noise energy per complex symbol (resource element), N0 F joules."""
        return dbm_to_watts(THERMAL_NOISE_DBM_PER_HZ + self.noise_figure_db)

    @property
    def noise_var_j(self) -> float:
        """The noise variance per real channel use in joules, N0 F / 2: ``channel.noise_var``'s unit."""
        return self.noise_energy_j / 2.0

    def air_time_s(self, real_uses: int) -> float:
        """The air time of a pass of ``real_uses`` real values: ceil(real_uses / 2) complex symbols at
        :attr:`symbol_rate` (pilots counted in the rate)."""
        if isinstance(real_uses, bool) or not isinstance(real_uses, int) or real_uses < 0:
            raise ValueError(f"real_uses must be an integer >= 0, got {real_uses!r}")
        return math.ceil(real_uses / 2) / self.symbol_rate

    def energy_j(self, power_dbm: float, real_uses: int) -> float:
        """What a client transmitting at ``power_dbm`` spends on a pass of ``real_uses``: power x air
        time, in joules (its pilots' share included)."""
        return dbm_to_watts(_dbm(power_dbm)) * self.air_time_s(real_uses)

    def received_energy_j(self, power_dbm: float, coupling_gain_db: float, real_uses: int) -> float:
        """The energy the base station receives on a pass's data symbols from a client at
        ``power_dbm`` through ``coupling_gain_db``: G P / RE_rate per symbol, ceil(real_uses / 2)
        symbols (the energy of a :class:`~channels.FadingChannel` transmission whose ``noise_var`` is
        :attr:`noise_var_j`)."""
        gain = _number(coupling_gain_db, "coupling_gain_db", -300.0, 100.0)
        if isinstance(real_uses, bool) or not isinstance(real_uses, int) or real_uses < 0:
            raise ValueError(f"real_uses must be an integer >= 0, got {real_uses!r}")
        return dbm_to_watts(_dbm(power_dbm) + gain) / self.re_rate * math.ceil(real_uses / 2)

    def snr_per_use(self, power_dbm: float, coupling_gain_db: float) -> float:
        """The received SNR per channel use (linear) of a client at ``power_dbm`` through a coupling
        gain of ``coupling_gain_db`` (minus the coupling loss): its power per RE over N0 F."""
        gain = _number(coupling_gain_db, "coupling_gain_db", -300.0, 100.0)
        per_re = dbm_to_watts(_dbm(power_dbm) + gain) / self.re_rate
        return per_re / self.noise_energy_j

    def normalised_energy(
        self, power_dbm: float, coupling_gain_db: float, real_uses: int, noise_var: float = 1.0
    ) -> float:
        """The normalised mode's energy E of a pass of ``real_uses`` with the SNR per use of this
        client (:meth:`snr_per_use`): E = snr x real_uses x noise_var, so that a run in normalised units
        sees the same signal-to-noise ratio."""
        if isinstance(real_uses, bool) or not isinstance(real_uses, int) or real_uses < 1:
            raise ValueError(f"real_uses must be an integer >= 1, got {real_uses!r}")
        _number(noise_var, "noise_var", 0.0, math.inf)
        return self.snr_per_use(power_dbm, coupling_gain_db) * real_uses * noise_var

    def power_dbm_for(
        self, energy: float, coupling_gain_db: float, real_uses: int, noise_var: float = 1.0
    ) -> float:
        """The transmit power in dBm that :meth:`normalised_energy` maps to ``energy`` (> 0): what a
        normalised table's energy means for a client of this coupling gain."""
        if not (math.isfinite(energy) and energy > 0):
            raise ValueError(f"energy must be a finite number > 0, got {energy!r}")
        unit = self.normalised_energy(0.0, coupling_gain_db, real_uses, noise_var)  # at 0 dBm
        return 10.0 * math.log10(energy / unit)


def _dbm(power_dbm: float) -> float:
    """A transmit power in dBm, checked: -100..60 dBm (0.1 fW to 1 kW)."""
    return _number(power_dbm, "power_dbm", -100.0, 60.0)
