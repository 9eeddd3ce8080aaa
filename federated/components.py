"""From configuration to objects: the name-to-constructor dictionaries and the run's seed streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from channels import AWGNChannel
from federated.config import ChannelConfig, CompressorConfig
from laser import Compressor, LaserCompressor, ZSGDCompressor

__all__ = ["COMPRESSORS", "CHANNELS", "Streams", "split_seed", "build_compressor", "build_channel"]

COMPRESSORS = {
    "laser": lambda c, seed: LaserCompressor(rank=c.rank, min_compression_rate=c.min_compression_rate, seed=seed),
    "zsgd": lambda c, seed: ZSGDCompressor(),
}

CHANNELS = {
    "awgn": lambda c, generator: AWGNChannel(noise_var=c.noise_var, generator=generator),
    "noiseless": lambda c, generator: AWGNChannel(noise_var=0.0, generator=generator),
}


@dataclass(frozen=True)
class Streams:
    """Independent seeds for each source of randomness of a run."""

    data: int          # IID split and each client's minibatch order
    model: int         # model initialisation
    compressor: int    # shared query factors (identical for every client)
    channel: int       # fading and noise


def split_seed(seed: int) -> Streams:
    """Split the run's seed once into independent streams (NumPy's SeedSequence).

    >>> split_seed(0) == split_seed(0), split_seed(0).data != split_seed(1).data
    (True, True)
    """
    children = np.random.SeedSequence(seed).spawn(4)
    data, model, compressor, channel = (int(c.generate_state(1, np.uint64)[0] >> 1) for c in children)
    return Streams(data=data, model=model, compressor=compressor, channel=channel)


def build_compressor(config: CompressorConfig, seed: int) -> Compressor:
    return COMPRESSORS[config.name](config, seed)


def build_channel(config: ChannelConfig, seed: int, device: torch.device) -> torch.nn.Module:
    generator = torch.Generator(device=device).manual_seed(seed)
    return CHANNELS[config.name](config, generator)
