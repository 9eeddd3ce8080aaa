"""Orchestration: configuration, data, models, the round loop and the ``laser`` command line.

>>> from federated import load_config
>>> load_config(None).compressor.name
'laser'
"""

from federated.config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "load_config", "train"]


def __getattr__(name: str):
    if name == "train":  # imported on first use: the config alone needs no torch
        from federated.train import train

        return train
    raise AttributeError(name)
