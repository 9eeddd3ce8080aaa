"""Power-control policies: what each client knows of its channel and on which symbols it speaks.

Every policy precodes by channel inversion with a common alignment scale (docs/physics.md);
they differ in the channel state information (CSI) the clients use and in who transmits:

- :class:`PerfectInversion` (the default): client k knows h_k exactly, sends x_k = (eta / h_k) u_k.
  The server receives eta * sum_k u_k + z: the estimate y / (eta K) of the mean is unbiased with
  per-entry noise variance noise_var / (eta^2 K^2). With all gains 1 this is exactly AWGNChannel.
  A deep fade (small |h_k|) makes eta, set by the weakest client, small for everyone.
- :class:`TruncatedInversion`: a client stays silent on a symbol whose gain is below a threshold,
  |h_k|^2 < threshold; the others invert. The estimate y / (eta K_a) is the unbiased mean of the
  K_a active clients (a biased estimate of the mean of all K when clients differ) with per-entry
  noise variance noise_var / (eta^2 K_a^2). Under Rayleigh fading with mean gain beta, a client
  takes part with probability exp(-threshold / beta).
- :class:`ImperfectCSI`: clients invert an estimate h_hat = h + e, e ~ CN(0, error_var), so the
  server receives eta * sum_k (h_k / h_hat_k) u_k + z: each client's symbols are scaled and
  rotated by h_k / h_hat_k (misalignment, leaking I into Q), a bias that no averaging removes,
  on top of the thermal noise noise_var / (eta^2 K_a^2). An optional threshold on |h_hat|^2
  truncates as above.

The energy rule is the same everywhere: eta = min_k sqrt(E_k) / ||m_k u_k / h_hat_k|| over the
active clients (m_k: the symbols client k sends), so no client spends more than E_k and the
tightest one spends exactly E_k. The participating set and the max norm are side information,
assumed to reach everyone noiselessly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["PowerControl", "PerfectInversion", "TruncatedInversion", "ImperfectCSI", "POWER_CONTROL"]


class PowerControl:
    """Base policy: perfect CSI, everyone transmits (subclasses override the two steps)."""

    def estimate_csi(self, gains: Tensor, generator: torch.Generator) -> Tensor:
        """The gains the clients believe they have (same shape as ``gains``)."""
        return gains

    def transmits(self, csi: Tensor) -> Tensor:
        """Bool mask (shape of ``csi``): where a client sends its symbols."""
        return torch.ones(csi.shape, dtype=torch.bool, device=csi.device)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class PerfectInversion(PowerControl):
    """Perfect CSI, full channel inversion, everyone transmits.

    >>> PerfectInversion().transmits(torch.tensor([[0.1 + 0j], [2.0 + 0j]])).tolist()
    [[True], [True]]
    """


class TruncatedInversion(PowerControl):
    """Clients in a deep fade (|h|^2 < ``threshold``) stay silent on those symbols.

    >>> TruncatedInversion(threshold=0.5).transmits(torch.tensor([[0.1 + 0j], [2.0 + 0j]])).tolist()
    [[False], [True]]
    """

    def __init__(self, threshold: float) -> None:
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
        self.threshold = float(threshold)

    def transmits(self, csi: Tensor) -> Tensor:
        return csi.abs().square() >= self.threshold


class ImperfectCSI(TruncatedInversion):
    """Clients invert a noisy estimate h_hat = h + e, e ~ CN(0, ``error_var``) (drawn per round).

    >>> csi = ImperfectCSI(error_var=0.0).estimate_csi(torch.ones(2, 1, dtype=torch.complex64),
    ...                                                torch.Generator().manual_seed(0))
    >>> csi.tolist()
    [[(1+0j)], [(1+0j)]]
    """

    def __init__(self, error_var: float, threshold: float = 0.0) -> None:
        super().__init__(threshold)
        if not (math.isfinite(error_var) and error_var >= 0):
            raise ValueError(f"error_var must be a finite number >= 0, got {error_var!r}")
        self.error_var = float(error_var)

    def estimate_csi(self, gains: Tensor, generator: torch.Generator) -> Tensor:
        if self.error_var == 0:
            return gains
        real = gains.real.dtype
        std = math.sqrt(self.error_var / 2)
        error = torch.complex(
            torch.randn(gains.shape, generator=generator, dtype=real, device=generator.device),
            torch.randn(gains.shape, generator=generator, dtype=real, device=generator.device),
        ).to(gains.device)
        return gains + std * error


POWER_CONTROL = {
    "inversion": lambda threshold=0.0, error_var=0.0: PerfectInversion(),
    "truncated": lambda threshold=0.0, error_var=0.0: TruncatedInversion(threshold),
    "imperfect_csi": lambda threshold=0.0, error_var=0.0: ImperfectCSI(error_var, threshold),
}
