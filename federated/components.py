"""From configuration to objects: the name-to-constructor dictionaries and the run's seed streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from channels import FadingChannel
from channels.antennas import ReceiveArray
from channels.fading import PathLoss, RayleighFading, RicianFading, TDLFading
from channels.power_control import POWER_CONTROL
from federated.config import ChannelConfig, CompressorConfig
from laser import Compressor, LaserCompressor, WarmUp, ZSGDCompressor
from laser.adsgd import ADSGDCompressor
from laser.baselines import CountSketchCompressor, RandomKCompressor, SignumCompressor
from laser.digital import (
    NaturalCompressor,
    NaturalDitheringCompressor,
    QSGDCompressor,
    QSparseCompressor,
    SignSGDCompressor,
    TopKCompressor,
    TopKDitheringCompressor,
)

__all__ = [
    "COMPRESSORS",
    "CHANNELS",
    "Streams",
    "split_seed",
    "build_compressor",
    "build_channel",
    "client_budget_scales",
]


def _ef(c: CompressorConfig, default: bool) -> bool:
    return default if c.error_feedback is None else c.error_feedback


# compressor name -> constructor from (CompressorConfig, the run's compressor seed)
COMPRESSORS = {
    "laser": lambda c, seed: LaserCompressor(
        rank=c.rank,
        min_compression_rate=c.min_compression_rate,
        seed=seed,
        factors_per_round=c.factors_per_round,
        exponent=c.exponent,
    ),
    "powersgd": lambda c, seed: LaserCompressor(
        rank=c.rank,
        min_compression_rate=c.min_compression_rate,
        seed=seed,
        factors_per_round=2,
        exponent=c.exponent,
    ),
    "zsgd": lambda c, seed: ZSGDCompressor(),
    "randomk": lambda c, seed: RandomKCompressor(
        c.fraction, error_feedback=_ef(c, True), unbiased=c.unbiased, seed=seed
    ),
    "sketch": lambda c, seed: CountSketchCompressor(c.fraction, error_feedback=_ef(c, False), seed=seed),
    "signum": lambda c, seed: SignumCompressor(momentum=c.momentum),
    "adsgd": lambda c, seed: ADSGDCompressor(
        c.fraction, decoder=c.decoder, amp_iterations=c.amp_iterations, seed=seed
    ),
    "topk": lambda c, seed: TopKCompressor(c.fraction, error_feedback=_ef(c, True)),
    "qsgd": lambda c, seed: QSGDCompressor(levels=c.levels, seed=seed),
    "natural": lambda c, seed: NaturalCompressor(seed=seed),
    "natural_dithering": lambda c, seed: NaturalDitheringCompressor(levels=c.levels, seed=seed),
    "topk_dithering": lambda c, seed: TopKDitheringCompressor(
        c.fraction, levels=c.levels, error_feedback=_ef(c, True), seed=seed
    ),
    "signsgd": lambda c, seed: SignSGDCompressor(momentum=c.momentum),
    "qsparse": lambda c, seed: QSparseCompressor(
        c.fraction, levels=c.levels, quantizer=c.quantizer, error_feedback=_ef(c, True), seed=seed
    ),
}

# channel name -> its small-scale fading model (None: every gain 1)
CHANNELS = {
    "awgn": lambda c: None,
    "noiseless": lambda c: None,
    "rayleigh": lambda c: RayleighFading(),
    "rician": lambda c: RicianFading(c.k_factor),
    "tdl": lambda c: TDLFading(
        c.tdl_profile,
        delay_spread_s=c.delay_spread_s,
        carrier_frequency_hz=c.carrier_frequency_hz,
        num_subcarriers=c.num_subcarriers,
        subcarrier_spacing_hz=c.subcarrier_spacing_hz,
    ),
    "scenario": lambda c: _from_drop(),
}


def _from_drop() -> None:
    raise ValueError(
        "channel.name = scenario is the drop's own clusters: build_channel takes them as small_scale "
        "(federated.radio.units.PhysicalUnits.small_scale)"
    )


@dataclass(frozen=True)
class Streams:
    """Independent seeds for each source of randomness of a run."""

    data: int  # IID split and each client's minibatch order
    model: int  # model initialisation
    compressor: int  # shared query factors (identical for every client)
    channel: int  # fading, client positions, CSI errors and uplink noise
    downlink: int  # downlink noise
    budgets: int  # heterogeneous per-client budgets
    dropout: int  # the model's own randomness (dropout): torch's global generator, seeded per run
    sampling: int  # which clients take part in each round (clients.per_round < num_clients)
    precond: int  # the Rademacher probes of the OASIS-type preconditioner (precond.name: oasis)
    # the compressor server's identity (its clients' sides record it): the same run, the same identity,
    # so an interrupted run's checkpoints equal an uninterrupted one's; it draws no random numbers
    identity: int
    topology: int  # where the clients are and their large-scale parameters (channel.scenario)


def split_seed(seed: int) -> Streams:
    """Split the run's seed once into independent streams (NumPy's SeedSequence).

    >>> split_seed(0) == split_seed(0), split_seed(0).data != split_seed(1).data
    (True, True)
    """
    children = np.random.SeedSequence(seed).spawn(11)  # appending a stream keeps the earlier ones
    return Streams(*(int(c.generate_state(1, np.uint64)[0] >> 1) for c in children))


def build_compressor(config: CompressorConfig, seed: int) -> Compressor:
    """The compression method of ``config`` (with its warm-up rounds, if any)."""
    method = COMPRESSORS[config.name](config, seed)
    return WarmUp(method, config.warmup_rounds) if config.warmup_rounds > 0 else method


def build_channel(
    config: ChannelConfig,
    seed: int,
    device: torch.device,
    large_scale: nn.Module | None = None,
    noise_var: float | None = None,
    small_scale: nn.Module | None = None,
) -> FadingChannel:
    """The uplink channel: fading model, power-control policy, path loss, noise and receive antennas
    (with their beamformer) of ``config``; ``large_scale`` and ``noise_var``: the clients' fixed
    large-scale gains and the noise variance in physical units (:class:`federated.radio.units.PhysicalUnits`),
    in place of ``channel.path_loss`` and ``channel.noise_var``; ``small_scale``: the drop's own clusters
    (``channel.name: scenario``, :class:`channels.ClusterFading`)."""
    path_loss = large_scale
    if config.path_loss != "none":
        path_loss = PathLoss(
            config.path_loss,
            carrier_frequency_hz=config.carrier_frequency_hz,
            min_distance_m=config.min_distance_m,
            max_distance_m=config.max_distance_m,
            shadowing=config.shadowing,
            reference_distance_m=config.reference_distance_m,
        )
    return FadingChannel(
        fading=small_scale if small_scale is not None else CHANNELS[config.name](config),
        policy=POWER_CONTROL[config.power_control](
            threshold=config.threshold, error_var=config.csi_error_var
        ),
        noise_var=0.0
        if config.name == "noiseless"
        else (config.noise_var if noise_var is None else noise_var),
        path_loss=path_loss,
        coherence_blocks=config.coherence_blocks,
        generator=torch.Generator(device=device).manual_seed(seed),
        antennas=(
            None
            if config.rx_antennas == 1
            else ReceiveArray(config.rx_antennas, config.beamformer, config.correlation)
        ),
    )


def client_budget_scales(spread_db: float, num_clients: int, seed: int) -> torch.Tensor:
    """Per-client budget multipliers 10^(u_k/10), u_k ~ U[-spread_db/2, spread_db/2] (float64 [K]).

    >>> client_budget_scales(0.0, 3, seed=0).tolist()
    [1.0, 1.0, 1.0]
    """
    u = torch.rand(num_clients, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return 10.0 ** ((u - 0.5) * spread_db / 10.0)
