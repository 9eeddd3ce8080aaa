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

import torch

from channels.fading_channel import ChannelOutput, FadingChannel
from channels.power_control import PerfectInversion

__all__ = ["AWGNChannel", "ChannelOutput"]


class AWGNChannel(FadingChannel):
    """Over-the-air multiple access with AWGN, perfect CSI and a common alignment scale.

    The noise is Sionna's complex AWGN on I/Q pairs: the d real values of a block occupy d real
    channel uses, i.e. ceil(d/2) complex symbols (entries 2i and 2i+1 are the I and Q parts of
    symbol i), and Sionna's ``no = 2 * noise_var`` is the noise power per complex symbol.

    This is :class:`~channels.fading_channel.FadingChannel` with every gain 1 and perfect inversion.

    Args:
        noise_var: noise variance per real channel use (sigma^2 >= 0); 0 is a noiseless channel.
        generator: default source of the noise; a call may pass its own. Without either, a
            generator with a random seed is made here (results are then not reproducible).
        check_finite: refuse signals with NaN or infinite entries (``ValueError``); see
            :class:`~channels.fading_channel.FadingChannel` for its cost and for what happens without it.

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

    def __init__(
        self, noise_var: float = 1.0, generator: torch.Generator | None = None, *, check_finite: bool = True
    ) -> None:
        super().__init__(
            fading=None,
            policy=PerfectInversion(),
            noise_var=noise_var,
            generator=generator,
            check_finite=check_finite,
        )

    def extra_repr(self) -> str:
        return f"noise_var={self.noise_var}" + ("" if self.check_finite else ", check_finite=False")
