"""How our modules hand Sionna blocks a device and precision (Sionna fixes both at construction)."""

from __future__ import annotations

import torch

__all__ = ["sionna_args"]


def sionna_args(generator: torch.Generator, dtype: torch.dtype) -> tuple[str, str]:
    """(precision, device) for a Sionna block that draws from ``generator`` and outputs complex ``dtype``.

    >>> sionna_args(torch.Generator(), torch.complex128)
    ('double', 'cpu')
    """
    if dtype not in (torch.complex64, torch.complex128):
        raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    device = generator.device
    if device.type == "cuda" and device.index is None:  # Sionna names devices "cuda:N"
        device = torch.device("cuda", torch.cuda.current_device())
    return ("double" if dtype == torch.complex128 else "single"), str(device)
