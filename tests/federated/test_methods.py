"""Every compressor end to end through the round loop, and the configs that name them."""

import json
from pathlib import Path

import pytest
import torch

from federated import load_config
from federated.config import ANALOG_COMPRESSORS, DIGITAL_COMPRESSORS, ConfigError
from federated.train import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _config(tmp_path, *overrides):
    base = [
        f"data.root={tmp_path / 'data'}",
        "data.name=digits",
        "model.name=mlp",
        "model.width=16",
        "rounds=4",
        "eval_every=2",
        "clients.num_clients=4",
        "clients.batch_size=16",
    ]
    return load_config(None, base + list(overrides))


@pytest.mark.parametrize("name", ANALOG_COMPRESSORS + DIGITAL_COMPRESSORS)
def test_every_method_trains_and_logs_its_channel(tmp_path, name):
    energy = "1e9" if name in DIGITAL_COMPRESSORS else "100"  # enough energy for every message
    history = train(
        _config(tmp_path, f"compressor.name={name}", f"power.energy={energy}"),
        tmp_path / "run",
        progress=False,
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and 0 <= summary["test_accuracy"] <= 1
    record = history.rounds[-1]
    assert record["channel_uses"] > 0 and record["active_clients"] == 4
    assert record["energy_max"] <= float(energy) * (1 + 1e-6)
    if name in DIGITAL_COMPRESSORS:
        assert record["bits_mean"] > 0 and summary["bits_per_client_mean"] == pytest.approx(
            sum(r["bits_mean"] for r in history.rounds) / 4
        )
        assert record["noise_var_mean"] == 0.0
    else:
        assert "bits_mean" not in record and record["noise_var_mean"] > 0


def test_powersgd_sends_both_factors_and_laser_alternates(tmp_path):
    laser = train(_config(tmp_path, "compressor.name=laser", "model.name=linear"), progress=False)
    powersgd = train(
        _config(
            tmp_path,
            "compressor.name=powersgd",
            "model.name=linear",
            "compressor.rank=2",
            "compressor.min_compression_rate=0",
        ),
        progress=False,
    )
    uses = [r["channel_uses"] for r in laser.rounds]
    assert uses[0] != uses[1] and uses[0] == uses[2]
    # linear 64 -> 10 at rank 2 (both factors: 2 * (10 + 64)) plus its 10 biases, every round
    assert {r["channel_uses"] for r in powersgd.rounds} == {2 * (10 + 64) + 10}
    assert len(powersgd.rounds[0]["noise_var"]) == 2 + 1  # pass 1: P and the bias; pass 2: Q


def test_column_split_is_a_laser_option(tmp_path):
    plain = train(_config(tmp_path, "compressor.name=laser", "channel.name=noiseless"), progress=False)
    split = train(
        _config(tmp_path, "compressor.name=laser", "compressor.exponent=1", "channel.name=noiseless"),
        progress=False,
    )
    assert len(split.rounds[0]["noise_var"]) > len(plain.rounds[0]["noise_var"])
    # over a noiseless channel the split changes nothing but the energy bookkeeping
    assert [r["train_loss"] for r in split.rounds] == pytest.approx([r["train_loss"] for r in plain.rounds])


def test_a_digital_message_that_the_energy_cannot_carry_is_not_delivered(tmp_path):
    """Energy 10 carries at most 10 / (2 ln 2) = 7.2 bits: every top-k message is lost, nothing moves."""
    history = train(_config(tmp_path, "compressor.name=topk", "power.energy=10", "rounds=3"), progress=False)
    assert all(
        r["active_clients"] == 0 and r["energy_max"] == 0 and r["channel_uses"] == 0 for r in history.rounds
    )
    noiseless = train(
        _config(tmp_path, "compressor.name=topk", "channel.name=noiseless", "rounds=3"), progress=False
    )
    assert all(r["active_clients"] == 4 for r in noiseless.rounds)


def test_digital_at_a_fixed_snr_pays_for_its_bits(tmp_path):
    history = train(
        _config(
            tmp_path,
            "compressor.name=signsgd",
            "power.energy=null",
            "power.snr_db=20",
            "rounds=2",
            "model.name=linear",
        ),
        progress=False,
    )
    d = 64 * 10 + 10
    rate = 0.5 * torch.log2(torch.tensor(1 + 100.0)).item()
    record = history.rounds[0]
    assert record["bits_mean"] == d
    assert record["channel_uses"] == 4 * -(-d // rate)  # ceil(bits / rate) per client
    assert record["energy_max"] == pytest.approx(-(-d // rate) * 100.0)


@pytest.mark.parametrize(
    "override, key",
    [
        ("compressor.name=lasr", "compressor.name"),
        ("compressor.fraction=0", "compressor.fraction"),
        ("compressor.fraction=2", "compressor.fraction"),
        ("compressor.levels=0", "compressor.levels"),
        ("compressor.momentum=1", "compressor.momentum"),
        ("compressor.decoder=ista", "compressor.decoder"),
        ("compressor.factors_per_round=3", "compressor.factors_per_round"),
    ],
)
def test_bad_compressor_settings_name_the_key(override, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert error.value.key == key


def test_there_is_a_config_per_method_and_each_loads():
    for name in ANALOG_COMPRESSORS + DIGITAL_COMPRESSORS:
        if name == "zsgd":
            continue
        config = load_config(CONFIGS / f"mnist1d_{name}.yaml", [])
        assert config.compressor.name == name and config.data.name == "mnist1d"


def test_method_names_agree_everywhere():
    """The config's names, the constructor table and each compressor's analog flag say the same."""
    import typing

    from federated.components import COMPRESSORS, build_compressor
    from federated.config import CompressorConfig

    names = typing.get_args(typing.get_type_hints(CompressorConfig)["name"])
    assert set(names) == set(COMPRESSORS) == set(ANALOG_COMPRESSORS + DIGITAL_COMPRESSORS)
    for name in names:
        config = CompressorConfig(name=name)
        assert build_compressor(config, seed=0).analog == config.analog == (name in ANALOG_COMPRESSORS)
