"""Thermal noise on I/Q symbols, drawn by Sionna's AWGN block from an explicit generator (Sionna is
imported on the first draw, see :mod:`channels._sionna`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from channels._sionna import generator_block, sionna_args

__all__ = ["ComplexNoise", "to_symbols", "from_symbols"]


def to_symbols(values: Tensor) -> Tensor:
    """Real ``[..., d]`` -> complex ``[..., ceil(d/2)]``: entries 2i and 2i+1 are symbol i's I and Q
    (an odd d is padded with a zero).

    >>> to_symbols(torch.tensor([1.0, 2.0, 3.0])).tolist()
    [(1+2j), (3+0j)]
    """
    pairs = torch.nn.functional.pad(values, (0, 1)) if values.shape[-1] % 2 else values  # pad copies
    pairs = pairs.reshape(*values.shape[:-1], -1, 2).contiguous()
    if pairs.storage_offset() % 2:  # a view starting mid-pair cannot be viewed as complex
        pairs = pairs.clone()
    return torch.view_as_complex(pairs)


def from_symbols(symbols: Tensor, dim: int) -> Tensor:
    """Inverse of :func:`to_symbols`: complex ``[..., S]`` -> real ``[..., dim]``.

    >>> from_symbols(torch.tensor([1 + 2j, 3 + 0j]), 3).tolist()
    [1.0, 2.0, 3.0]
    """
    return torch.view_as_real(symbols).reshape(*symbols.shape[:-1], -1)[..., :dim]


class ComplexNoise:
    """Adds CN(0, 2 * noise_var) noise per complex symbol (noise_var per real dimension).

    >>> noise = ComplexNoise()
    >>> y = noise(torch.zeros(4, dtype=torch.complex128), 0.5, torch.Generator().manual_seed(0))
    >>> y.dtype, y.shape
    (torch.complex128, torch.Size([4]))
    """

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, str], Any] = {}  # (precision, device) -> Sionna's AWGN block

    def __call__(self, symbols: Tensor, noise_var: float, generator: torch.Generator) -> Tensor:
        key = sionna_args(generator, symbols.dtype)
        if key not in self._blocks:
            precision, device = key
            self._blocks[key] = generator_block("AWGN")(precision=precision, device=device)
        awgn = self._blocks[key]
        awgn.generator = generator
        received = awgn(symbols.to(awgn.device), 2.0 * noise_var)  # Sionna's no: per complex symbol
        return received.to(symbols.device)
