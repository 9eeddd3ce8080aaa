"""Channel gains h_k of the K clients: small-scale fading (Rayleigh, Rician, 3GPP TDL) and the
large-scale path gain of a 3GPP UMi street canyon.

A fading model draws one block-fading realization per call: complex gains ``[K, N]`` with
E|h|^2 = 1, N = 1 for flat fading and N = ``num_subcarriers`` for the broadband TDL model. The
large-scale :class:`PathLoss` is drawn once per run and multiplies the power, |h_k|^2 g_k.

Randomness comes only from the ``torch.Generator`` passed to the call: the Sionna blocks used here
are subclassed so that their ``torch_rng`` is that generator (never Sionna's global one, never
torch's). Outputs live on ``generator.device``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from channels._sionna import generator_block, sionna_args, sionna_channel

__all__ = ["RayleighFading", "RicianFading", "TDLFading", "PathLoss", "umi_path_loss_db", "FADING_MODELS"]

TDL_PROFILES = ("A", "B", "C", "D", "E")  # the scalable TR 38.901 profiles (Sionna's names)
SPEED_OF_LIGHT_M_S = 3.0e8  # the value TR 38.901 uses for the breakpoint


def _rayleigh(blocks: dict, num_clients: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """g ~ CN(0, 1), ``[K, 1]``, drawn by Sionna's block for this (precision, device), cached."""
    key = sionna_args(generator, dtype)
    if key not in blocks:
        precision, device = key
        blocks[key] = generator_block("RayleighBlockFading")(
            num_rx=1, num_rx_ant=1, num_tx=1, num_tx_ant=1, precision=precision, device=device
        )
    block = blocks[key]
    block.generator = generator
    a, _ = block(batch_size=num_clients, num_time_steps=1)  # [K, 1, 1, 1, 1, 1, 1]
    return a.reshape(num_clients, 1).to(dtype)


class RayleighFading(torch.nn.Module):
    """Flat Rayleigh block fading: h_k ~ CN(0, 1) i.i.d. over clients, so E|h|^2 = 1 and |h|^2 ~ Exp(1).

    Drawn with Sionna's ``RayleighBlockFading`` (one transmitter = one client per batch example).

    Call:
        ``fading(num_clients, generator, dtype=torch.complex64)`` -> ``[K, 1]`` complex ``dtype``
        on ``generator.device``.

    Example:
        >>> h = RayleighFading()(4, torch.Generator().manual_seed(0))
        >>> h.shape, h.dtype
        (torch.Size([4, 1]), torch.complex64)
    """

    num_subcarriers = 1

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict = {}  # (precision, device) -> Sionna block; not submodules

    def forward(
        self, num_clients: int, generator: torch.Generator, dtype: torch.dtype = torch.complex64
    ) -> Tensor:
        """``[num_clients, 1]`` complex gains h ~ CN(0, 1), drawn from ``generator``."""
        return _rayleigh(self._blocks, num_clients, generator, dtype)


class RicianFading(torch.nn.Module):
    """Flat Rician block fading with K-factor ``k_factor`` (linear, LOS power / scattered power):

        h = sqrt(K / (K + 1)) e^{j phi} + sqrt(1 / (K + 1)) g,        g ~ CN(0, 1),

    so E[h] = sqrt(K / (K + 1)), Var[h] = E|h - E h|^2 = 1 / (K + 1) and E|h|^2 = 1. K = 0 is
    Rayleigh. The LOS phase is phi = 0: with perfect-CSI precoding (alpha_k = eta / h_k) a phase
    common to a client's whole block is undone by the transmitter, so its value does not matter.
    The scattered part g is drawn by Sionna's ``RayleighBlockFading``.

    Args:
        k_factor: K >= 0, finite.

    Call:
        ``fading(num_clients, generator, dtype=torch.complex64)`` -> ``[K, 1]`` complex ``dtype``.

    Example:
        >>> h = RicianFading(k_factor=3.0)(2, torch.Generator().manual_seed(0), torch.complex128)
        >>> h.shape, h.dtype
        (torch.Size([2, 1]), torch.complex128)
    """

    num_subcarriers = 1

    def __init__(self, k_factor: float) -> None:
        super().__init__()
        if not (math.isfinite(k_factor) and k_factor >= 0):  # also rejects NaN
            raise ValueError(f"k_factor must be a finite number >= 0, got {k_factor}")
        self.k_factor = float(k_factor)
        self._blocks: dict = {}

    def extra_repr(self) -> str:
        return f"k_factor={self.k_factor}"

    def forward(
        self, num_clients: int, generator: torch.Generator, dtype: torch.dtype = torch.complex64
    ) -> Tensor:
        """``[num_clients, 1]`` complex Rician gains (E|h|^2 = 1), drawn from ``generator``."""
        g = _rayleigh(self._blocks, num_clients, generator, dtype)
        k = self.k_factor
        return math.sqrt(k / (k + 1)) + math.sqrt(1 / (k + 1)) * g


class TDLFading(torch.nn.Module):
    """Frequency-selective block fading from a 3GPP TR 38.901 TDL profile, per OFDM subcarrier:

        h_k[n] = sum_m a_{k,m} exp(-j 2 pi f_n tau_m),        f_n = (n - floor(N/2)) * spacing,

    with tap delays tau_m = (normalised profile delay) * ``delay_spread_s`` and one independent
    tap realization a_{k,.} per client (Sionna's ``TDL`` with batch = clients, one time step, static
    clients; ``subcarrier_frequencies`` and ``cir_to_ofdm_channel`` give h). Sionna normalises each
    profile's tap powers to sum to 1 (the LOS component of D and E included), and the taps are
    independent with E|a_m|^2 = P_m, so E|h_k[n]|^2 = 1 on every subcarrier. Each client's own
    wideband power still fades (Sionna's per-realization ``normalize`` option is not used, as it
    would remove that). A tap is Sionna's sum of 20 sinusoids with random phases: close to, not
    exactly, complex Gaussian.

    Args:
        profile: one of "A", "B", "C" (NLOS) or "D", "E" (LOS).
        delay_spread_s: RMS delay spread in seconds (TR 38.901 Table 7.7.3-1: 10 ns to 1000 ns).
        carrier_frequency_hz: carrier frequency (only enters through the Doppler shift, which
            is zero for static clients).
        num_subcarriers: N >= 1.
        subcarrier_spacing_hz: the OFDM subcarrier spacing in Hz (> 0).

    Call:
        ``fading(num_clients, generator, dtype=torch.complex64)`` -> ``[K, N]`` complex ``dtype``.

    Example:
        >>> fading = TDLFading("C", delay_spread_s=300e-9, num_subcarriers=12)
        >>> h = fading(3, torch.Generator().manual_seed(0))
        >>> h.shape, h.dtype
        (torch.Size([3, 12]), torch.complex64)
    """

    def __init__(
        self,
        profile: str = "A",
        delay_spread_s: float = 100e-9,
        carrier_frequency_hz: float = 3.5e9,
        num_subcarriers: int = 64,
        subcarrier_spacing_hz: float = 30e3,
    ) -> None:
        super().__init__()
        if profile not in TDL_PROFILES:
            raise ValueError(f"profile must be one of {list(TDL_PROFILES)}, got {profile!r}")
        for name, value in [
            ("delay_spread_s", delay_spread_s),
            ("carrier_frequency_hz", carrier_frequency_hz),
            ("subcarrier_spacing_hz", subcarrier_spacing_hz),
        ]:
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if int(num_subcarriers) != num_subcarriers or num_subcarriers < 1:
            raise ValueError(f"num_subcarriers must be an integer >= 1, got {num_subcarriers}")
        self.profile = profile
        self.delay_spread_s = float(delay_spread_s)
        self.carrier_frequency_hz = float(carrier_frequency_hz)
        self.num_subcarriers = int(num_subcarriers)
        self.subcarrier_spacing_hz = float(subcarrier_spacing_hz)
        self._blocks: dict = {}  # (precision, device) -> (Sionna TDL, frequencies [N])

    def extra_repr(self) -> str:
        return (
            f"profile={self.profile!r}, delay_spread_s={self.delay_spread_s}, "
            f"num_subcarriers={self.num_subcarriers}, "
            f"subcarrier_spacing_hz={self.subcarrier_spacing_hz}"
        )

    def forward(
        self, num_clients: int, generator: torch.Generator, dtype: torch.dtype = torch.complex64
    ) -> Tensor:
        """``[num_clients, num_subcarriers]`` complex frequency responses of the TDL profile
        (E|h|^2 = 1 per subcarrier), drawn from ``generator``."""
        key = sionna_args(generator, dtype)
        if key not in self._blocks:
            precision, device = key
            tdl = generator_block("TDL")(
                self.profile,
                self.delay_spread_s,
                self.carrier_frequency_hz,
                precision=precision,
                device=device,
            )
            frequencies = sionna_channel().subcarrier_frequencies(
                self.num_subcarriers, self.subcarrier_spacing_hz, precision=precision, device=device
            )
            self._blocks[key] = (tdl, frequencies)
        tdl, frequencies = self._blocks[key]
        tdl.generator = generator
        bandwidth_hz = self.num_subcarriers * self.subcarrier_spacing_hz
        a, tau = tdl(batch_size=num_clients, num_time_steps=1, sampling_frequency=bandwidth_hz)
        # a: [K, 1, 1, 1, 1, M, 1], tau: [K, 1, 1, M] -> h: [K, 1, 1, 1, 1, 1, N]
        h = sionna_channel().cir_to_ofdm_channel(frequencies, a, tau, normalize=False)
        return h.reshape(num_clients, self.num_subcarriers).to(dtype)


def umi_path_loss_db(
    distance_2d_m: Tensor,
    scenario: Literal["umi_los", "umi_nlos"],
    carrier_frequency_hz: float,
    bs_height_m: float = 10.0,
    ut_height_m: float = 1.5,
) -> Tensor:
    """UMi street-canyon path loss in dB, 3GPP TR 38.901 Table 7.4.1-1 (fc in GHz, d in m):

        LOS:  PL1 = 32.4 + 21 log10(d3D) + 20 log10(fc)                        d2D <= d'BP
              PL2 = 32.4 + 40 log10(d3D) + 20 log10(fc) - 9.5 log10(d'BP^2 + (hBS - hUT)^2)
        NLOS: max(PL_LOS, 35.3 log10(d3D) + 22.4 + 21.3 log10(fc) - 0.3 (hUT - 1.5))

    with d3D = sqrt(d2D^2 + (hBS - hUT)^2) and the breakpoint d'BP = 4 (hBS - 1)(hUT - 1) fc / c.
    Shapes: ``distance_2d_m`` any shape, returns the same shape and dtype.

    >>> d = torch.tensor([10.0, 100.0], dtype=torch.float64)
    >>> umi_path_loss_db(d, "umi_los", 3.5e9).round(decimals=2).tolist()
    [66.76, 85.31]
    """
    fc_ghz = carrier_frequency_hz / 1e9
    dh2 = (bs_height_m - ut_height_m) ** 2
    d3d = (distance_2d_m.square() + dh2).sqrt()
    breakpoint_m = 4 * (bs_height_m - 1.0) * (ut_height_m - 1.0) * carrier_frequency_hz / SPEED_OF_LIGHT_M_S
    pl1 = 32.4 + 21 * d3d.log10() + 20 * math.log10(fc_ghz)
    pl2 = 32.4 + 40 * d3d.log10() + 20 * math.log10(fc_ghz) - 9.5 * math.log10(breakpoint_m**2 + dh2)
    los = torch.where(distance_2d_m <= breakpoint_m, pl1, pl2)
    if scenario == "umi_los":
        return los
    nlos = 35.3 * d3d.log10() + 22.4 + 21.3 * math.log10(fc_ghz) - 0.3 * (ut_height_m - 1.5)
    return torch.maximum(los, nlos)


class PathLoss(torch.nn.Module):
    """Large-scale power gain of clients dropped at random in a UMi street canyon, drawn once per run.

    Client k's ground distance d_k is uniform over the area of the annulus
    ``min_distance_m <= d <= max_distance_m`` around the base station (d = sqrt(U (R^2 - r^2) + r^2),
    U ~ U(0, 1)); its gain, in linear power units, is

        g_k = 10^{-(PL(d_k) + X_k - PL(d_ref)) / 10},        X_k ~ N(0, sigma^2) dB (shadowing),

    with PL from :func:`umi_path_loss_db` (sigma = 4 dB LOS, 7.82 dB NLOS). The gain is RELATIVE to
    the path loss (without shadowing) at ``reference_distance_m``: g = 1 means "as strong as a client
    at the reference distance", so the simulator's energy / noise_var is the SNR of such a client.
    The formula holds for carrier frequencies 0.5-100 GHz and ground distances 10 m - 5 km.

    Call:
        ``pathloss(num_clients, generator)`` -> gains ``[K]`` float64 on ``generator.device``;
        :meth:`sample` returns ``(distances_m, gains)``, both ``[K]`` float64.

    Example:
        >>> pathloss = PathLoss("umi_los", min_distance_m=100.0, max_distance_m=100.0, shadowing=False)
        >>> pathloss(3, torch.Generator().manual_seed(0)).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        scenario: Literal["umi_los", "umi_nlos"] = "umi_nlos",
        carrier_frequency_hz: float = 3.5e9,
        min_distance_m: float = 10.0,
        max_distance_m: float = 200.0,
        shadowing: bool = True,
        reference_distance_m: float = 100.0,
        bs_height_m: float = 10.0,
        ut_height_m: float = 1.5,
    ) -> None:
        super().__init__()
        if scenario not in ("umi_los", "umi_nlos"):
            raise ValueError(f"scenario must be one of ['umi_los', 'umi_nlos'], got {scenario!r}")
        if not 0.5e9 <= carrier_frequency_hz <= 100e9:  # also rejects NaN
            raise ValueError(
                f"carrier_frequency_hz must be within 0.5e9-100e9 Hz (TR 38.901), got {carrier_frequency_hz}"
            )
        if not 10.0 <= min_distance_m <= max_distance_m <= 5000.0:
            raise ValueError(
                f"need 10 <= min_distance_m <= max_distance_m <= 5000 (TR 38.901), "
                f"got min_distance_m={min_distance_m}, max_distance_m={max_distance_m}"
            )
        if not (math.isfinite(reference_distance_m) and reference_distance_m > 0):
            raise ValueError(f"reference_distance_m must be a finite number > 0, got {reference_distance_m}")
        for name, value in [("bs_height_m", bs_height_m), ("ut_height_m", ut_height_m)]:
            if not (math.isfinite(value) and value > 1.0):  # h' = h - 1 m in the breakpoint
                raise ValueError(f"{name} must be a finite number > 1 m, got {value}")
        self.scenario = scenario
        self.carrier_frequency_hz = float(carrier_frequency_hz)
        self.min_distance_m = float(min_distance_m)
        self.max_distance_m = float(max_distance_m)
        self.shadowing = bool(shadowing)
        self.reference_distance_m = float(reference_distance_m)
        self.bs_height_m = float(bs_height_m)
        self.ut_height_m = float(ut_height_m)
        self.shadowing_std_db = 4.0 if scenario == "umi_los" else 7.82

    def extra_repr(self) -> str:
        return (
            f"scenario={self.scenario!r}, carrier_frequency_hz={self.carrier_frequency_hz}, "
            f"distance_m=[{self.min_distance_m}, {self.max_distance_m}], "
            f"shadowing={self.shadowing}, reference_distance_m={self.reference_distance_m}"
        )

    def path_gain_db(self, distance_2d_m: Tensor) -> Tensor:
        """-(PL(d) - PL(d_ref)) in dB, without shadowing; same shape and dtype as ``distance_2d_m``."""
        reference = torch.full_like(distance_2d_m, self.reference_distance_m)
        args = (self.scenario, self.carrier_frequency_hz, self.bs_height_m, self.ut_height_m)
        return umi_path_loss_db(reference, *args) - umi_path_loss_db(distance_2d_m, *args)

    def sample(self, num_clients: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ground distances ``[K]`` (m) and relative power gains ``[K]``, both float64."""
        options: dict[str, Any] = dict(dtype=torch.float64, device=generator.device, generator=generator)
        r2_min, r2_max = self.min_distance_m**2, self.max_distance_m**2
        distances = (torch.rand(num_clients, **options) * (r2_max - r2_min) + r2_min).sqrt()
        distances = distances.clamp(self.min_distance_m, self.max_distance_m)  # rounding at the edges
        gain_db = self.path_gain_db(distances)
        if self.shadowing:
            gain_db = gain_db - self.shadowing_std_db * torch.randn(num_clients, **options)
        return distances, torch.pow(10.0, gain_db / 10)

    def forward(self, num_clients: int, generator: torch.Generator) -> Tensor:
        """``[num_clients]`` large-scale power gains (see :meth:`sample`), drawn from ``generator``."""
        return self.sample(num_clients, generator)[1]


FADING_MODELS: dict[str, type[torch.nn.Module]] = {
    "rayleigh": RayleighFading,
    "rician": RicianFading,
    "tdl": TDLFading,
}
