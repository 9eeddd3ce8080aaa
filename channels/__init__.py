"""Channels: over-the-air multiple access, noise and energy accounting.

Usable on its own (it imports nothing from ``laser`` or ``federated``)::

    from channels import AWGNChannel, FadingChannel, RayleighFading, TruncatedInversion
    out = AWGNChannel(noise_var=1.0)(signals, energy=100.0)   # signals [K, d] -> out.estimate [d]
    channel = FadingChannel(RayleighFading(), TruncatedInversion(threshold=0.2))
    state = channel.realize(num_clients=K, channel_uses=d)    # one round's fading
    out = channel(signals, energy=100.0, state=state)         # out.active: who spoke
    channel = FadingChannel(RayleighFading(), antennas=ReceiveArray(64, "eigen"))  # 64 rx antennas

Importing the package is light (torch and the standard library): Sionna, which draws the noise and
the Rayleigh, Rician and TDL gains, is imported on the first call that needs it, so the first noisy
call (or the first fading draw) pays Sionna's import, several seconds and ~150 MB (importing any part
of ``sionna.phy`` loads all of it, matplotlib and torch._dynamo included; ``benchmarks/import_time.py``
measures it). Noiseless channels, unit gains, path loss, the digital link and the budget helpers
never import it.
"""

from channels.antennas import ReceiveArray, exponential_correlation
from channels.awgn import AWGNChannel
from channels.beamforming import (
    BEAMFORMERS,
    effective_gains,
    eigen_beamformer,
    matched_beamformer,
    maxmin_beamformer,
)
from channels.budget import db_to_linear, energy_for_snr_db, snr_db_for_energy
from channels.clusters import ClusterFading
from channels.digital import DigitalRound, bit_limit, digital_link, shannon_rate, uses_for_bits
from channels.fading import FADING_MODELS, PathLoss, RayleighFading, RicianFading, TDLFading
from channels.fading_channel import BlocksOutput, ChannelOutput, ChannelState, FadingChannel, SignalBlocks
from channels.link_budget import LinkBudget, dbm_to_watts, watts_to_dbm
from channels.nr import LinkOutcome, OFDMAUplink, OuterLoop
from channels.power_control import ImperfectCSI, PerfectInversion, PowerControl, TruncatedInversion
from channels.privacy import (
    PrivacyAccountant,
    block_clips,
    clip_blocks,
    clipped_off,
    flat_clip,
    noise_multiplier,
    round_noise_multiplier,
)
from channels.scenarios import (
    BS_PATTERNS,
    SCENARIOS,
    Drop,
    DropGains,
    cluster_drop,
    drop_clients,
    open_loop_power_dbm,
    sector_gain_db,
)

__all__ = [
    "AWGNChannel",
    "ChannelOutput",
    "ChannelState",
    "FadingChannel",
    "SignalBlocks",
    "BlocksOutput",
    "RayleighFading",
    "RicianFading",
    "TDLFading",
    "PathLoss",
    "FADING_MODELS",
    "PowerControl",
    "PerfectInversion",
    "TruncatedInversion",
    "ImperfectCSI",
    "ReceiveArray",
    "exponential_correlation",
    "BEAMFORMERS",
    "matched_beamformer",
    "eigen_beamformer",
    "maxmin_beamformer",
    "effective_gains",
    "db_to_linear",
    "energy_for_snr_db",
    "snr_db_for_energy",
    "DigitalRound",
    "digital_link",
    "shannon_rate",
    "LinkOutcome",
    "OFDMAUplink",
    "OuterLoop",
    "bit_limit",
    "uses_for_bits",
    "LinkBudget",
    "dbm_to_watts",
    "watts_to_dbm",
    "BS_PATTERNS",
    "SCENARIOS",
    "Drop",
    "DropGains",
    "ClusterFading",
    "cluster_drop",
    "drop_clients",
    "open_loop_power_dbm",
    "sector_gain_db",
    "PrivacyAccountant",
    "block_clips",
    "clip_blocks",
    "clipped_off",
    "flat_clip",
    "noise_multiplier",
    "round_noise_multiplier",
]
