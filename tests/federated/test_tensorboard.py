"""``tensorboard: true``: the per-round history as TensorBoard scalars under DIR/tensorboard, one
value per step (rounds done) also after a resume, and a one-line config error without the package."""

import json
import sys
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from federated import load_config
from federated.cli import main
from federated.config import ConfigError
from federated.simulation import NonFiniteError, Simulation
from federated.train import train

RUN = ["data.name=digits", "model.name=linear", "clients.num_clients=4", "rounds=6", "eval_every=3"]


def _config(tmp_path, *overrides):
    return load_config(None, [*RUN, f"data.root={tmp_path}/data", *overrides])


def _history(run):
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def _scalars(run) -> dict[str, list[tuple[int, float]]]:
    board = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})  # 0: keep every event
    board.Reload()
    return {tag: [(e.step, e.value) for e in board.Scalars(tag)] for tag in board.Tags()["scalars"]}


def _float32(value):  # TensorBoard stores scalars as float32
    return float(np.float32(value))


def test_the_history_is_logged_as_scalars_per_round(tmp_path):
    run = tmp_path / "run"
    train(_config(tmp_path, "tensorboard=true"), run, progress=False)
    history, scalars = _history(run), _scalars(run)
    assert set(scalars) == {
        "train/train_loss",
        "optim/lr",
        "test/test_loss",
        "test/test_accuracy",
        "channel/energy_max",
        "channel/energy_mean",
        "channel/channel_uses",
        "channel/noise_var_mean",
        "channel/active_clients",
        "channel/snr_per_use_db",
    }
    assert scalars["train/train_loss"] == [(r["round"] + 1, _float32(r["train_loss"])) for r in history]
    assert [step for step, _ in scalars["train/train_loss"]] == [1, 2, 3, 4, 5, 6]
    assert scalars["test/test_accuracy"] == [
        (3, _float32(history[2]["test_accuracy"])),
        (6, _float32(history[5]["test_accuracy"])),
    ]
    assert scalars["optim/lr"] == [(step, _float32(0.05)) for step in range(1, 7)]
    assert scalars["channel/active_clients"] == [(step, 4.0) for step in range(1, 7)]
    assert scalars["channel/channel_uses"] == [(r["round"] + 1, float(r["channel_uses"])) for r in history]


class _Kill(Exception):
    pass


def test_a_resumed_run_has_one_value_per_step(tmp_path, monkeypatch):
    config = _config(tmp_path, "tensorboard=true", "checkpoint_every=3")
    run = tmp_path / "run"
    original = Simulation.round

    def round_then_die(self, t):  # dies in round 5: round 4 is logged after the checkpoint
        if t == 4:
            raise _Kill
        return original(self, t)

    monkeypatch.setattr(Simulation, "round", round_then_die)
    with pytest.raises(_Kill):
        train(config, run, progress=False)
    monkeypatch.setattr(Simulation, "round", original)
    assert [step for step, _ in _scalars(run)["train/train_loss"]] == [1, 2, 3, 4]
    # event files sort by their creation second, then by a per-process counter as text: start the
    # resumed writer in a later second, as a resumed run (another process, later) does
    time.sleep(1 - time.time() % 1 + 0.01)
    train(config, run, progress=False, resume=True)

    history, scalars = _history(run), _scalars(run)
    assert len(list((run / "tensorboard").iterdir())) == 2
    assert scalars["train/train_loss"] == [(r["round"] + 1, _float32(r["train_loss"])) for r in history]
    assert [step for step, _ in scalars["train/train_loss"]] == [1, 2, 3, 4, 5, 6]
    assert scalars["test/test_accuracy"] == [
        (3, _float32(history[2]["test_accuracy"])),
        (6, _float32(history[5]["test_accuracy"])),
    ]


def test_a_failed_run_closes_its_log(tmp_path, monkeypatch):
    original = Simulation.round

    def diverge(self, t):
        if t == 2:
            raise NonFiniteError("round 2: the training loss is not finite")
        return original(self, t)

    monkeypatch.setattr(Simulation, "round", diverge)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteError):
        train(_config(tmp_path, "tensorboard=true", "checkpoint_every=0"), run, progress=False)
    # no checkpoint flushed the writer: the two rounds reached disk when the failure closed it
    assert _scalars(run)["train/train_loss"] == [
        (r["round"] + 1, _float32(r["train_loss"])) for r in _history(run)
    ]
    assert len(_history(run)) == 2


def test_off_by_default_writes_no_tensorboard_directory(tmp_path):
    config = _config(tmp_path, "rounds=2")
    assert config.tensorboard is False
    train(config, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "history.jsonl").is_file()
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_without_the_package_the_run_stops_with_a_config_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    config = _config(tmp_path, "tensorboard=true", "rounds=2")  # loads: validated anywhere
    with pytest.raises(ConfigError) as error:
        train(config, tmp_path / "run", progress=False)
    assert error.value.key == "tensorboard" and error.value.value is True
    assert "pip install 'laser-ota[tensorboard]'" in str(error.value)
    assert not (tmp_path / "run").exists()  # stopped before any work
    # the CLI: exit 2, one line naming the key
    assert (
        main(
            [
                "run",
                *RUN,
                f"data.root={tmp_path}/data",
                "rounds=2",
                "tensorboard=true",
                "--out",
                str(tmp_path / "cli"),
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("laser run: config error: tensorboard = True") and err.count("\n") == 1
    # without a run directory nothing is logged, so nothing is needed
    assert len(train(config, progress=False).rounds) == 2
