"""The over-the-air multiple-access channel with additive white Gaussian noise (the LASER paper's).

K clients transmit one block (a real vector of length d, with the same meaning for every client)
at the same time over the same d real channel uses. The server receives the superposition

    y = sum_k h_k x_k + z,        z ~ N(0, noise_var I_d),        h_k = 1 here,

and each client precodes with a common alignment scale eta (perfect CSI, channel inversion):
x_k = (eta / h_k) s_k with

    eta = min_k sqrt(E_k) |h_k| / ||s_k||        (over active clients with s_k != 0),

so every client meets its energy E_k for the block and the client with the largest signal (relative
to its budget) spends it exactly. The server's estimate of the mean over the K_a active clients is

    estimate = y / (eta K_a) = mean_k s_k + z / (eta K_a),

an unbiased estimate with per-entry noise variance noise_var / (eta^2 K_a^2). With AWGN and equal
budgets this is exactly the paper's "c_b / (n sqrt(P_b))" noise (c_b = max_k ||s_k||).

The side information the scheme needs (the max norm behind eta, who is active) is assumed to reach
every client and the server noiselessly, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from sionna.phy.channel import AWGN
from torch import Tensor

from channels.budget import energy_for_snr_db

__all__ = ["AWGNChannel", "ChannelOutput"]


@dataclass(frozen=True)
class ChannelOutput:
    """What the server decodes from one block, and what it cost.

    Attributes:
        estimate: ``[d]``, the server's estimate of the mean of the active clients' signals.
        energy_used: ``[K]``, the energy each client transmitted for this block (sum of squares of
            its channel input); ``inf`` for a client with a non-zero signal and an infinite budget.
        noise_var: 0-dim tensor, the per-entry variance of ``estimate - mean``; 0 when noiseless.
        active: ``[K]`` bool, the clients that were heard (here: those with a non-zero budget).
        scale: 0-dim tensor, the common alignment scale eta (``inf`` when the block is noiseless).
    """

    estimate: Tensor
    energy_used: Tensor
    noise_var: Tensor
    active: Tensor
    scale: Tensor


class _GeneratorAWGN(AWGN):
    """Sionna's AWGN block, drawing from an explicit generator instead of Sionna's global one."""

    def __init__(self, generator: torch.Generator, precision: str) -> None:
        device = generator.device
        if device.type == "cuda" and device.index is None:   # Sionna names devices "cuda:N"
            device = torch.device("cuda", torch.cuda.current_device())
        super().__init__(precision=precision, device=str(device))
        self._generator = generator

    @property
    def torch_rng(self) -> torch.Generator:
        return self._generator


def _as_client_energy(energy: float | Tensor, num_clients: int, like: Tensor) -> Tensor:
    energy = torch.as_tensor(energy, dtype=like.dtype, device=like.device)
    if energy.dim() > 1 or (energy.dim() == 1 and energy.numel() != num_clients):
        raise ValueError(f"energy must be a float or have shape [{num_clients}], got {tuple(energy.shape)}")
    if not bool(torch.all(energy >= 0)):  # also rejects NaN
        raise ValueError(f"energy must be >= 0 and not NaN, got {energy.tolist()}")
    return energy.expand(num_clients)


class AWGNChannel(torch.nn.Module):
    """Over-the-air multiple access with AWGN, perfect CSI and a common alignment scale.

    The noise is Sionna's complex AWGN on I/Q pairs: the d real values of a block occupy d real
    channel uses, i.e. ceil(d/2) complex symbols (entries 2i and 2i+1 are the I and Q parts of
    symbol i), and Sionna's ``no = 2 * noise_var`` is the noise power per complex symbol.

    Args:
        noise_var: noise variance per real channel use (sigma^2 >= 0); 0 is a noiseless channel.
        generator: default source of the noise; a call may pass its own. Without either, a
            generator with a random seed is made here (results are then not reproducible).

    Call:
        ``channel(signals, energy)`` or ``channel(signals, snr_db=...)``, with ``signals`` ``[K, d]``
        (real, float32 or float64) and ``energy`` each client's energy for this block (a float or
        ``[K]``; 0 keeps a client silent, ``inf`` is noiseless). ``snr_db`` is the power-limited
        regime: each client may spend ``d * noise_var * 10^(snr_db/10)`` on the block. Returns a
        :class:`ChannelOutput`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> channel = AWGNChannel(noise_var=1.0, generator=g)
        >>> signals = torch.tensor([[3.0, 4.0], [0.0, 1.0]])   # K=2 clients, d=2
        >>> out = channel(signals, energy=25.0)                 # eta = sqrt(25)/5 = 1
        >>> out.estimate.shape, out.energy_used.tolist()
        (torch.Size([2]), [25.0, 1.0])
        >>> float(out.noise_var)                                # noise_var / (eta^2 K^2)
        0.25
        >>> AWGNChannel(noise_var=0.0)(signals, energy=25.0).estimate.tolist()
        [1.5, 2.5]
    """

    def __init__(self, noise_var: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not (math.isfinite(noise_var) and noise_var >= 0):
            raise ValueError(f"noise_var must be a finite number >= 0, got {noise_var}")
        self.noise_var = float(noise_var)
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        self.generator = generator
        self._awgn: dict[tuple[str, str], _GeneratorAWGN] = {}

    def extra_repr(self) -> str:
        return f"noise_var={self.noise_var}"

    def forward(
        self,
        signals: Tensor,
        energy: float | Tensor | None = None,
        *,
        snr_db: float | None = None,
        generator: torch.Generator | None = None,
    ) -> ChannelOutput:
        if signals.dim() != 2:
            raise ValueError(f"signals must have shape [K, d], got {tuple(signals.shape)}")
        if (energy is None) == (snr_db is None):
            raise ValueError("give exactly one of energy (per block) or snr_db (per channel use)")
        num_clients, dim = signals.shape
        if snr_db is not None:
            energy = energy_for_snr_db(snr_db, channel_uses=dim, noise_var=self.noise_var)
        work = signals if signals.dtype == torch.float64 else signals.float()
        energy = _as_client_energy(energy, num_clients, work)

        norms = torch.linalg.vector_norm(work, dim=1)                     # [K]
        active = energy > 0                                               # a silent client is not heard
        num_active = active.sum()
        # eta = min over active, non-zero clients of sqrt(E_k) / ||s_k||; inf if no one has to send
        ratio = torch.where(active & (norms > 0), energy.sqrt() / norms, math.inf)
        eta = ratio.min()
        finite = torch.isfinite(eta)
        eta_tx = torch.where(finite, eta, torch.ones_like(eta))

        x = (eta_tx * active.to(work.dtype)).unsqueeze(1) * work          # [K, d] channel inputs
        energy_used = torch.where(finite, x.square().sum(1),
                                  torch.where(active & (norms > 0), math.inf, 0.0))
        y = x.sum(0)                                                      # [d] superposition in the air
        if self.noise_var > 0:
            y = self._add_noise(y, generator if generator is not None else self.generator)
        denominator = eta_tx * num_active.clamp(min=1)
        mean = (x.sum(0) / denominator).to(work.dtype)                    # exact mean of active clients
        estimate = torch.where(finite, y / denominator, mean)             # eta = inf: noiseless
        estimate = torch.where(num_active > 0, estimate, torch.zeros_like(estimate))
        if self.noise_var > 0:
            noise_var = torch.where(finite & (num_active > 0), self.noise_var / denominator.square(), 0.0)
        else:
            noise_var = torch.zeros((), dtype=work.dtype, device=work.device)
        return ChannelOutput(
            estimate=estimate.to(signals.dtype),
            energy_used=energy_used,
            noise_var=noise_var,
            active=active,
            scale=torch.where(finite, eta, math.inf),
        )

    def _add_noise(self, y: Tensor, generator: torch.Generator) -> Tensor:
        """y [d] real -> y + N(0, noise_var) per entry, drawn by Sionna on ceil(d/2) I/Q symbols."""
        precision = "double" if y.dtype == torch.float64 else "single"
        key = (precision, str(generator.device))
        if key not in self._awgn:
            self._awgn[key] = _GeneratorAWGN(generator, precision)
        awgn = self._awgn[key]
        awgn._generator = generator
        dim = y.numel()
        pairs = torch.nn.functional.pad(y, (0, dim % 2)).view(-1, 2)     # [ceil(d/2), 2] = (I, Q)
        symbols = torch.view_as_complex(pairs.to(awgn.device).contiguous())
        received = awgn(symbols, 2.0 * self.noise_var)                    # Sionna: no per complex symbol
        return torch.view_as_real(received).reshape(-1)[:dim].to(y.device)
