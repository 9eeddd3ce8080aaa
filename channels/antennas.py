"""A base station with N receive antennas: each client's channel vector and the receive beamformer
that turns the vectors into one effective scalar gain per client.

Client k's channel to the N antennas is h_k in C^N; the server combines its antennas with a unit
beamformer m (``||m|| = 1``, :mod:`channels.beamforming`), designed from the channel estimates of
all the clients, and client k inverts its effective gain g_k = m^H h_k (or its estimate
m^H h_hat_k). Then every formula of the single-antenna channel holds with h_k replaced by g_k: the
combined noise m^H z, z ~ CN(0, 2 noise_var I_N), is CN(0, 2 noise_var ||m||^2) = CN(0, 2 noise_var)
per symbol, noise_var per real use as with one antenna (docs/physics.md, "Many receive antennas").
So :class:`ReceiveArray` only draws the vectors (:meth:`ReceiveArray.draw`) and combines them
(:meth:`ReceiveArray.combine`); :class:`~channels.fading_channel.FadingChannel` does the rest.

Vectors, per client and draw (``[draws, subcarriers, N]``):

- zero-mean fading (Rayleigh, TDL, any model of E|h|^2 = 1 per entry): N independent draws of the
  fading model, h = L w (w: the N draws), with L L^H = R the antennas' correlation matrix;
- Rician (:class:`~channels.fading.RicianFading`, K-factor K_R): h = sqrt(K_R / (K_R + 1)) a(theta)
  + sqrt(1 / (K_R + 1)) L g, g ~ CN(0, I), with the line-of-sight response of a uniform linear array
  at half-wavelength spacing, a_n(theta) = exp(j pi n sin theta), and the client's direction theta
  uniform in [-pi/2, pi/2), drawn with every realization (the model keeps no client positions);
- no fading model (``None``, AWGN): h = (1, ..., 1) for every client.

R is the exponential correlation model R_ij = rho^|i - j| (rho = ``correlation`` in [0, 1): 0 is
i.i.d. antennas; adjacent antennas of a compact array are strongly correlated, rho near 1). Its
Cholesky factor is exact in closed form, L_ij = rho^(i - j) (j = 0) or rho^(i - j) sqrt(1 - rho^2)
(0 < j <= i), i.e. h_0 = w_0 and h_i = rho h_(i-1) + sqrt(1 - rho^2) w_i, so E|h_i|^2 = 1 on every
antenna. Random numbers come only from the generator passed in.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import Tensor, nn

from channels._checks import brief, check_count, check_number
from channels.beamforming import _COMPLEX, _DESIGNS, BEAMFORMERS, _check_channels, _gains
from channels.fading import RayleighFading, RicianFading

__all__ = ["ReceiveArray", "exponential_correlation"]


def _check_dtype(dtype: object, accepted: str, fits: bool) -> None:
    """Refuse a ``dtype`` that is not a ``torch.dtype`` (TypeError) or does not ``fit`` (ValueError)."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be {accepted}, got {brief(dtype)}")
    if not fits:
        raise ValueError(f"dtype must be {accepted}, got {dtype}")


def exponential_correlation(num_antennas: int, rho: float, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``[N, N]`` Cholesky factor L of R_ij = rho^|i - j| (L L^T = R, lower triangular).

    ``num_antennas``: N >= 1; ``rho``: a real number in [-1, 1] (the closed form holds there;
    :class:`ReceiveArray` uses [0, 1)); ``dtype``: a floating-point or complex dtype.

    >>> L = exponential_correlation(3, 0.5)
    >>> (L @ L.T).round(decimals=12).tolist()
    [[1.0, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 1.0]]
    """
    check_count(num_antennas, "num_antennas")
    if not -1 <= check_number(rho, "rho") <= 1:  # also refuses NaN
        raise ValueError(f"rho must be a real number in [-1, 1], got {brief(rho)}")
    fits = isinstance(dtype, torch.dtype) and (dtype.is_floating_point or dtype.is_complex)
    _check_dtype(dtype, "a floating-point or complex torch dtype", fits)
    i = torch.arange(num_antennas, dtype=torch.float64)
    lag = i[:, None] - i[None, :]
    factor = torch.where(lag >= 0, rho ** lag.clamp(min=0), 0.0)
    factor[:, 1:] *= math.sqrt(1 - rho**2)
    return factor.to(dtype)


class ReceiveArray(nn.Module):
    """N receive antennas at the base station and the receive beamformer (see the module docstring).

    Args:
        num_antennas: N >= 1 (N = 1: :class:`~channels.fading_channel.FadingChannel` skips the array
            entirely, bit for bit the single-antenna channel).
        beamformer: ``"matched"``, ``"eigen"`` or ``"maxmin"`` (:data:`channels.beamforming.BEAMFORMERS`).
        correlation: rho in [0, 1), the exponential correlation of adjacent antennas.

    Example:
        >>> array = ReceiveArray(4, beamformer="eigen", correlation=0.5)
        >>> h = array.draw(RayleighFading(), 3, torch.Generator().manual_seed(0))  # 3 draws
        >>> h.shape
        torch.Size([3, 1, 4])
        >>> g, g_hat = array.combine(h.reshape(3, 1, 1, 4), h.reshape(3, 1, 1, 4))  # [K, C, N_sub, N]
        >>> g.shape, bool(torch.equal(g, g_hat))
        (torch.Size([3, 1, 1]), True)
    """

    def __init__(self, num_antennas: int, beamformer: str = "matched", correlation: float = 0.0) -> None:
        super().__init__()
        try:
            if isinstance(num_antennas, bool):
                raise TypeError
            count = operator.index(num_antennas)
        except TypeError:
            raise TypeError(f"num_antennas must be an integer >= 1, got {num_antennas!r}") from None
        if count < 1:
            raise ValueError(f"num_antennas must be an integer >= 1, got {count}")
        if not isinstance(beamformer, str) or beamformer not in BEAMFORMERS:
            raise ValueError(f"beamformer must be one of {sorted(BEAMFORMERS)}, got {beamformer!r}")
        if isinstance(correlation, bool) or not isinstance(correlation, (int, float)):
            raise TypeError(f"correlation must be a number in [0, 1), got {correlation!r}")
        if not 0 <= correlation < 1:  # also rejects NaN
            raise ValueError(f"correlation must be a number in [0, 1), got {correlation}")
        self.num_antennas = count
        self.beamformer = beamformer
        self.correlation = float(correlation)
        self._scattered = RayleighFading()  # the scattered part of a Rician channel
        self._factors: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def extra_repr(self) -> str:
        return (
            f"num_antennas={self.num_antennas}, beamformer={self.beamformer!r}, "
            f"correlation={self.correlation}"
        )

    def _correlate(self, white: Tensor) -> Tensor:
        """h = L w over the last (antenna) dimension of ``white``; i.i.d. antennas left as they are."""
        if self.correlation == 0:
            return white
        key = (white.dtype, white.device)
        if key not in self._factors:
            factor = exponential_correlation(self.num_antennas, self.correlation)
            self._factors[key] = factor.to(device=white.device, dtype=white.dtype)
        return white @ self._factors[key].mT  # rows: h^T = w^T L^T

    def draw(
        self,
        fading: nn.Module | None,
        num_draws: int,
        generator: torch.Generator,
        dtype: torch.dtype = torch.complex64,
    ) -> Tensor:
        """``[num_draws, subcarriers, N]`` complex channel vectors (one per client and coherence
        block), drawn from ``generator`` with the scalar model ``fading`` on every antenna.
        ``num_draws`` >= 1; ``dtype``: complex64 or complex128."""
        if fading is not None and not callable(fading):
            raise TypeError(
                f"fading must be a fading model (e.g. RayleighFading()) or None, got {brief(fading)}"
            )
        num_draws = check_count(num_draws, "num_draws")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {brief(generator)}")
        _check_dtype(dtype, "torch.complex64 or torch.complex128", dtype in _COMPLEX)
        n = self.num_antennas
        if fading is None:
            return torch.ones(num_draws, 1, n, dtype=dtype, device=generator.device)
        if isinstance(fading, RicianFading):
            k = fading.k_factor
            scattered = self._scattered(num_draws * n, generator, dtype).reshape(num_draws, 1, n)
            real = scattered.real.dtype
            uniform = torch.rand(num_draws, generator=generator, dtype=real, device=generator.device)
            theta = (uniform - 0.5) * math.pi  # the client's direction in [-pi/2, pi/2)
            phase = math.pi * torch.arange(n, dtype=real, device=generator.device) * theta.sin()[:, None]
            los = torch.polar(torch.ones_like(phase), phase).unsqueeze(1)  # [draws, 1, N]
            return math.sqrt(k / (k + 1)) * los + math.sqrt(1 / (k + 1)) * self._correlate(scattered)
        white = fading(num_draws * n, generator, dtype)  # [draws * N, subcarriers]
        white = white.reshape(num_draws, n, -1).transpose(1, 2)  # [draws, subcarriers, N]
        return self._correlate(white)

    def forward(
        self,
        fading: nn.Module | None,
        num_draws: int,
        generator: torch.Generator,
        dtype: torch.dtype = torch.complex64,
    ) -> Tensor:
        """Calling the array draws channel vectors, as :meth:`draw` does."""
        return self.draw(fading, num_draws, generator, dtype)

    def design(self, estimates: Tensor) -> Tensor:
        """The beamformer m ``[..., N]`` (||m|| = 1) from the channel estimates ``[..., K, N]``
        (complex, finite, N = this array's ``num_antennas``: a ValueError naming ``estimates`` else)."""
        _check_channels(estimates, "estimates", self.num_antennas)
        return self._design(estimates)

    def _design(self, estimates: Tensor) -> Tensor:
        """The design on checked estimates (a beamformer added to BEAMFORMERS checks them again)."""
        return _DESIGNS.get(self.beamformer, BEAMFORMERS[self.beamformer])(estimates)

    def _check_vectors(self, vectors: object, name: str, like: Tensor | None = None) -> None:
        """Refuse ``vectors`` unless complex ``[K, C, N_sub, N]`` with this array's N (and ``like``'s
        shape), finite and with data, naming ``name``."""
        shape = tuple(_check_channels(vectors, name, self.num_antennas).shape)
        if len(shape) != 4 or 0 in shape:
            raise ValueError(
                f"{name} must be [K, C, N_sub, N] (clients, coherence blocks, subcarriers, antennas; "
                f"each >= 1), got shape {shape}"
            )
        if like is not None and shape != tuple(like.shape):
            raise ValueError(f"{name} must have the shape of gains, {tuple(like.shape)}, got {shape}")

    def combine(self, gains: Tensor, csi: Tensor) -> tuple[Tensor, Tensor]:
        """Effective gains from the channel vectors ``gains`` and their estimates ``csi``, both
        ``[K, C, N_sub, N]``: per coherence block and subcarrier the server designs m from the
        estimates of all K clients, and returns ``(m^H h_k, m^H h_hat_k)``, both ``[K, C, N_sub]``.
        Both must be complex, finite, of one shape, with N = ``num_antennas`` (a ValueError naming
        the argument else)."""
        self._check_vectors(gains, "gains")
        if csi is not gains:
            self._check_vectors(csi, "csi", gains)
        true = gains.permute(1, 2, 0, 3)  # [C, N_sub, K, N]
        known = true if csi is gains else csi.permute(1, 2, 0, 3)
        beamformer = self._design(known)  # [C, N_sub, N]
        effective = _gains(beamformer, true).permute(2, 0, 1)
        if csi is gains:
            return effective, effective
        return effective, _gains(beamformer, known).permute(2, 0, 1)
