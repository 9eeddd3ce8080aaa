"""Configuration: YAML + overrides, types and ranges checked before any work starts."""

import math
import typing

import pytest

from federated.components import CHANNELS, COMPRESSORS
from federated.config import (
    ChannelConfig,
    CompressorConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    load_config,
)
from federated.data.tasks import TASKS
from federated.models import MODELS


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rounds: 5\npower: {energy: 10.0}\n")
    config = load_config(path, ["power.energy=.inf", "compressor.rank=2", "optimizer.nesterov=true"])
    assert config.rounds == 5
    assert config.power.energy == math.inf
    assert config.compressor.rank == 2 and config.optimizer.nesterov is True


def test_numbers_in_exponent_notation_are_accepted():
    assert load_config(None, ["power.energy=1e3"]).power.energy == 1000.0


def test_switching_to_the_snr_regime():
    config = load_config(None, ["power.energy=null", "power.snr_db=-3"])
    assert config.power.energy is None and config.power.snr_db == -3.0


@pytest.mark.parametrize(
    "override, key, accepted",
    [
        ("power.enrgy=3", "power.enrgy", "power.energy"),
        ("rounds=ten", "rounds", "an integer"),
        ("power.energy=-1", "power.energy", ">= 1e-30"),
        ("power.energy=nan", "power.energy", ">= 1e-30"),
        ("power.energy=1e-300", "power.energy", ">= 1e-30"),  # underflows float32: acted as 0
        ("compressor.rank=0", "compressor.rank", ">= 1"),
        ("compressor.name=topkk", "compressor.name", "laser, powersgd, zsgd"),
        ("channel.name=shadowed", "channel.name", "awgn, noiseless, rayleigh, rician, tdl"),
        ("channel.k_factor=-1", "channel.k_factor", ">= 0"),
        ("channel.carrier_frequency_hz=200e9", "channel.carrier_frequency_hz", "0.5e9"),
        ("channel.tdl_profile=Z", "channel.tdl_profile", "A, B, C, D, E"),
        ("channel.threshold=-0.1", "channel.threshold", ">= 0"),
        ("power.snr_db=10", "power.snr_db", "exactly one"),  # beside the default power.energy
        ("clients=3", "clients", "mapping"),
        ("optimizer.nesterov=maybe", "optimizer.nesterov", "true or false"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_accepted(override, key, accepted):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert error.value.key == key
    assert accepted in str(error.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="an existing YAML file"):
        load_config("no/such/file.yaml")


def test_names_in_the_schema_match_the_constructor_dictionaries():
    def names(cls):
        return set(typing.get_args(typing.get_type_hints(cls)["name"]))

    assert names(CompressorConfig) == set(COMPRESSORS)
    assert names(ChannelConfig) == set(CHANNELS)
    assert names(DataConfig) == set(TASKS)
    assert names(ModelConfig) == set(MODELS)


def test_the_data_root_defaults_to_laser_data_root(monkeypatch):
    from federated.config import load_config

    monkeypatch.delenv("LASER_DATA_ROOT", raising=False)
    assert load_config(None).data.root == "data"
    monkeypatch.setenv("LASER_DATA_ROOT", "/somewhere/datasets")
    assert load_config(None).data.root == "/somewhere/datasets"
    assert load_config("paper/cifar10_laser").data.root == "/somewhere/datasets"  # shipped configs leave it
    assert load_config(None, ["data.root=mine"]).data.root == "mine"  # an explicit value wins
