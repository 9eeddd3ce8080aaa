"""Run configuration: frozen dataclasses are the schema, YAML files are data, ``key.sub=value``
overrides come from the command line.

Every field has a comment and a unit where it has one. :func:`load_config` checks names, types and
ranges before any work starts and raises :class:`ConfigError`, whose one-line message names the key,
the value and what is accepted. The sections: :mod:`federated.config.learning` (data, model,
clients, optimizer, precond), :mod:`federated.config.wireless` (compressor, channel, downlink, power),
:mod:`federated.config.run` (the whole run), :mod:`federated.config.loading` (YAML and overrides),
:mod:`federated.config.shipped` (the configs shipped in the package, found by name).

Example:
    >>> config = load_config(None, ["compressor.name=zsgd", "power.energy=1e3", "rounds=10"])
    >>> config.compressor.name, config.power.energy, config.rounds
    ('zsgd', 1000.0, 10)
"""

from federated.config.errors import ConfigError
from federated.config.learning import (
    CLASSIFICATION_DATA,
    MODEL_DATA,
    TEXT_DATA,
    ClientsConfig,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    PrecondConfig,
)
from federated.config.loading import config_from_dict, config_to_dict, load_config, parse_yaml, same_config
from federated.config.run import Config
from federated.config.shipped import find_config, shipped_configs
from federated.config.wireless import (
    ANALOG_COMPRESSORS,
    DIGITAL_COMPRESSORS,
    ChannelConfig,
    CompressorConfig,
    DigitalConfig,
    DownlinkConfig,
    PowerConfig,
    PrivacyConfig,
)

__all__ = [
    "ConfigError",
    "find_config",
    "shipped_configs",
    "Config",
    "DataConfig",
    "ModelConfig",
    "ClientsConfig",
    "CompressorConfig",
    "ChannelConfig",
    "DigitalConfig",
    "DownlinkConfig",
    "PowerConfig",
    "OptimizerConfig",
    "PrecondConfig",
    "PrivacyConfig",
    "load_config",
    "config_to_dict",
    "same_config",
    "config_from_dict",
    "parse_yaml",
    "ANALOG_COMPRESSORS",
    "DIGITAL_COMPRESSORS",
    "CLASSIFICATION_DATA",
    "TEXT_DATA",
    "MODEL_DATA",
]
