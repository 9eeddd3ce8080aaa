"""Checkpoint and resume: a killed run continues to the bit-identical result of an uninterrupted one
(model, optimizer, schedule, EMA, every client's memory, shared factors, all generators, history)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from federated import load_config
from federated.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from federated.cli import main
from federated.simulation import Simulation
from federated.train import train

ROOT = Path(__file__).resolve().parents[2]


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def _assert_same_state(a, b, where="checkpoint"):
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _assert_same_run(resumed: Path, reference: Path) -> None:
    assert _history(resumed) == _history(reference)
    _assert_same_state(
        load_checkpoint(resumed / "checkpoint.pt", "cpu"), load_checkpoint(reference / "checkpoint.pt", "cpu")
    )
    a, b = (json.loads((run / "summary.json").read_text()) for run in (resumed, reference))
    for summary in (a, b):
        summary.pop("wall_time_s")
        summary.pop("resumed_from_round", None)
    assert a == b


# Everything that has state: dropout (torch's global generator), EMA, a one-cycle AdamW, LASER's
# memories and factors, fading with path loss (large-scale gains), a noisy downlink.
GPT_RUN = [
    "data.name=pydoc",
    "model.name=gpt",
    "model.layers=1",
    "model.heads=2",
    "model.width=16",
    "model.context=16",
    "model.dropout=0.1",
    "clients.num_clients=3",
    "clients.batch_size=2",
    "optimizer.name=adamw",
    "optimizer.lr=1e-3",
    "optimizer.schedule=onecycle",
    "ema=0.9",
    "compressor.name=laser",
    "compressor.rank=2",
    "channel.name=rayleigh",
    "channel.power_control=truncated",
    "channel.threshold=0.1",
    "channel.path_loss=umi_nlos",
    "downlink.snr_db=30",
    "power.energy=1000",
    "eval_every=50",
    "device=cpu",
]


def _laser(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "federated.cli", "run", *args, "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_a_run_killed_in_a_subprocess_resumes_bit_identically(tmp_path):
    rounds, every = 250, 15
    args = [*GPT_RUN, f"rounds={rounds}", f"checkpoint_every={every}"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    uninterrupted = _laser(*args, "--out", str(reference))

    run = _laser(*args, "--out", str(killed))
    history = killed / "history.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 2 * every + 5:
            break
        time.sleep(0.005)
    assert run.poll() is None, "the run finished before it could be killed; make it longer"
    run.send_signal(signal.SIGKILL)
    run.wait()
    done = len(history.read_text().splitlines())
    assert not (killed / "summary.json").exists() and done < rounds
    assert load_checkpoint(killed / "checkpoint.pt", "cpu")["round"] >= 2 * every

    resumed = _laser("--resume", str(killed))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read().decode()
    _assert_same_run(killed, reference)
    assert json.loads((killed / "summary.json").read_text())["resumed_from_round"] % every == 0


class _Kill(Exception):
    pass


@pytest.mark.parametrize(
    "method",
    [
        ["compressor.name=laser"],
        ["compressor.name=powersgd"],
        ["compressor.name=randomk"],
        ["compressor.name=sketch", "compressor.error_feedback=true"],
        ["compressor.name=signum", "compressor.momentum=0.9"],
        ["compressor.name=adsgd", "compressor.fraction=0.5"],
        ["compressor.name=topk", "power.energy=1e6"],
        ["compressor.name=qsgd", "power.energy=1e6"],
        ["compressor.name=zsgd", "power.spread_db=6"],
        # federated practice: local Adam steps with kept state, 2 of 3 clients sampled, non-IID data,
        # the data-size-weighted mean, FedAdam at the server, LASER after 2 warm-up rounds
        [
            "clients.lr=0.05",
            "clients.local_steps=2",
            "clients.optimizer=adam",
            "clients.keep_state=true",
            "clients.per_round=2",
            "data.partition=dirichlet",
            "data.alpha=1.0",
            "data.min_partition_size=2",
            "clients.weighting=data_size",
            "optimizer.name=fedadam",
            "optimizer.lr=0.01",
            "optimizer.weight_decay=0",
            "compressor.name=laser",
            "compressor.warmup_rounds=2",
        ],
        # local steps with adaptive scaling: the server's D, the OASIS probes' generator, the second pass
        ["clients.lr=0.01", "clients.local_steps=2", "precond.name=oasis", "compressor.name=laser"],
        # physical units: a UMi drop (its own seed stream), open-loop power caps, Rayleigh fading truncated
        [
            "channel.scenario=umi",
            "power.energy=null",
            "power.max_dbm=10",
            "power.control=open_loop",
            "channel.name=rayleigh",
            "channel.power_control=truncated",
            "channel.threshold=0.05",
        ],
        # privacy mode: clipped passes, the accountant composed again from the history on resume
        ["privacy.clip=0.5", "channel.name=rayleigh", "power.energy=50", "privacy.accountant=pld"],
        # hidden Poisson sampling: the sampler's draws and the amplified accountant continue
        ["privacy.clip=0.5", "clients.sampling=poisson", "clients.per_round=2", "power.energy=50"],
        # the drop's own clusters (time-correlated from round to round) at two antennas, half the clients
        # sampled by their channel: the resumed rounds see the rounds' own channel samples
        [
            "channel.scenario=umi",
            "power.energy=null",
            "power.max_dbm=10",
            "channel.name=scenario",
            "channel.rx_antennas=2",
            "channel.round_duration_s=0.01",
            "clients.num_clients=4",
            "clients.per_round=2",
            "clients.sampling=best_channel",
        ],
        # digital top-k over NR links in physical units: the outer loop's offsets (imperfect CSI),
        # each round's own channel generator (shared draws)
        [
            "compressor.name=topk",
            "channel.name=rayleigh",
            "channel.scenario=umi",
            "power.energy=null",
            "power.max_dbm=10",
            "channel.power_control=imperfect_csi",
            "channel.csi_error_var=0.1",
            "digital.link=nr",
            "channel.shared_draws=true",
        ],
        # Qsparse-local-SGD: local steps, Sign o Top_k with error feedback on the digital path
        [
            "clients.lr=0.05",
            "clients.local_steps=2",
            "compressor.name=qsparse",
            "compressor.quantizer=sign",
            "power.energy=1e6",
        ],
    ],
)
def test_every_method_resumes_bit_identically(tmp_path, monkeypatch, method):
    config = load_config(
        None,
        [
            "data.name=digits",
            "model.name=mlp",
            "model.width=8",
            "clients.num_clients=3",
            "rounds=7",
            "eval_every=2",
            "checkpoint_every=3",
            "ema=0.5",
            "optimizer.schedule=multistep",
            "optimizer.milestones=[4]",
            *method,
        ],
    )
    train(config, tmp_path / "reference", progress=False)

    original = Simulation.round

    def round_then_die(self, t):  # dies in round 5, after the checkpoint of round 3
        if t == 4:
            raise _Kill
        return original(self, t)

    monkeypatch.setattr(Simulation, "round", round_then_die)
    with pytest.raises(_Kill):
        train(config, tmp_path / "killed", progress=False)
    monkeypatch.setattr(Simulation, "round", original)
    assert len(_history(tmp_path / "killed")) == 4
    train(config, tmp_path / "killed", progress=False, resume=True)
    _assert_same_run(tmp_path / "killed", tmp_path / "reference")


def test_resuming_without_a_checkpoint_starts_over(tmp_path):
    config = load_config(
        None,
        ["data.name=digits", "model.name=linear", "clients.num_clients=2", "rounds=3", "checkpoint_every=0"],
    )
    train(config, tmp_path / "a", progress=False)
    (tmp_path / "b").mkdir()
    history = train(config, tmp_path / "b", progress=False, resume=True)
    assert history.summary["resumed_from_round"] == 0
    assert _history(tmp_path / "a") == _history(tmp_path / "b")


def test_cli_resume_rules(tmp_path, capsys):
    out = tmp_path / "run"
    base = [
        "data.name=digits",
        "model.name=linear",
        "clients.num_clients=2",
        "rounds=3",
        "checkpoint_every=1",
    ]
    assert main(["run", *base, "--out", str(out), "--quiet"]) == 0
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert main(["run", "--resume", str(out), "rounds=5"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "a run directory written by laser run" in capsys.readouterr().err
    # a checkpoint from another configuration is refused, naming both files
    (out / "summary.json").unlink()
    (out / "config.yaml").write_text((out / "config.yaml").read_text().replace("seed: 0", "seed: 1"))
    assert main(["run", "--resume", str(out), "--quiet"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_checkpoints_load_without_unpickling_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"round": 1, "payload": _Kill()}, path)  # an arbitrary object in the pickle
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path, "cpu")


def test_a_failed_write_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"round": 1})

    def torn_write(state, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_write)
    with pytest.raises(OSError):
        save_checkpoint(path, {"round": 2})
    assert load_checkpoint(path, "cpu") == {"round": 1}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_checkpoint_from_before_sides_recorded_who_they_are_resumes_with_a_warning(tmp_path, monkeypatch):
    """Checkpoints written before compressor sides held their index and their server's identity (an
    older version) still resume, to the same result, with one warning instead of a refusal."""
    config = load_config(
        None,
        [
            "data.name=digits",
            "model.name=mlp",
            "model.width=8",
            "clients.num_clients=3",
            "rounds=6",
            "checkpoint_every=3",
            "compressor.name=laser",
            "compressor.rank=2",
        ],
    )
    train(config, tmp_path / "reference", progress=False)
    original = Simulation.round

    def round_then_die(self, t):
        if t == 4:
            raise _Kill
        return original(self, t)

    monkeypatch.setattr(Simulation, "round", round_then_die)
    with pytest.raises(_Kill):
        train(config, tmp_path / "old", progress=False)
    monkeypatch.setattr(Simulation, "round", original)
    path = tmp_path / "old" / "checkpoint.pt"
    state = load_checkpoint(path, "cpu")
    compressor = state["compressor"]
    compressor["server"].pop("identity")
    for client in compressor["clients"].values():
        client.pop("index"), client.pop("server")
    # and as such versions saved them: layout 2, every client's side in a list
    assert sorted(compressor["clients"]) == [0, 1, 2]
    compressor["clients"] = [compressor["clients"][k] for k in range(3)]
    state["format"] = 2
    save_checkpoint(path, state)
    with pytest.warns(UserWarning, match="saved before clients recorded their index and server"):
        train(config, tmp_path / "old", progress=False, resume=True)
    _assert_same_run(tmp_path / "old", tmp_path / "reference")
