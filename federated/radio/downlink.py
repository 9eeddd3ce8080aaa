"""A noisy downlink: each client receives the broadcast model plus noise at a given SNR.

The server broadcasts the d model entries, scaled to unit average power per entry; client k
receives theta + n_k with

    n_k ~ N(0, (||theta||^2 / d) / snr)   per entry,        snr = 10^(snr_db / 10),

and computes its gradient at its own noisy copy. The server's model stays exact (the paper assumes
a noiseless downlink; this is the option to drop that assumption).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["NoisyDownlink"]


class NoisyDownlink:
    """Draws each client's received model; its generator is the run's downlink stream.

    Example:
        >>> model = torch.nn.Linear(3, 2)
        >>> received = NoisyDownlink(20.0, seed=0).receive(dict(model.named_parameters()))
        >>> {name: tuple(p.shape) for name, p in received.items()}
        {'weight': (2, 3), 'bias': (2,)}
    """

    def __init__(self, snr_db: float, seed: int, device: torch.device | str = "cpu") -> None:
        self.snr = 10.0 ** (snr_db / 10.0)
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def receive(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        """One client's noisy copy of ``params`` (name -> tensor)."""
        values = list(params.values())
        d = sum(p.numel() for p in values)
        power = float(sum(p.detach().square().sum() for p in values)) / d
        std = math.sqrt(power / self.snr)
        return {
            name: p.detach()
            + std * torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype)
            for name, p in params.items()
        }
