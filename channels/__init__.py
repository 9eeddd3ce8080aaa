"""Channels: over-the-air multiple access, noise and energy accounting.

Usable on its own (it imports nothing from ``laser`` or ``federated``)::

    from channels import AWGNChannel
    out = AWGNChannel(noise_var=1.0)(signals, energy=100.0)   # signals [K, d] -> out.estimate [d]
"""

from channels.awgn import AWGNChannel, ChannelOutput
from channels.budget import db_to_linear, energy_for_snr_db, snr_db_for_energy

__all__ = ["AWGNChannel", "ChannelOutput", "db_to_linear", "energy_for_snr_db", "snr_db_for_energy"]
