"""The ``laser`` command line, run in a subprocess as a user would."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def laser(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "federated.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_run_a_config_file_with_overrides(tmp_path):
    result = laser(
        "run",
        str(ROOT / "configs" / "digits_laser.yaml"),
        "rounds=4",
        "eval_every=2",
        f"data.root={tmp_path}/data",
        "--out",
        str(tmp_path / "run"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "test_accuracy" in result.stdout and "run directory" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["rounds"] == 4


def test_run_without_a_config_runs_the_quickstart(tmp_path):
    result = laser(
        "run",
        "rounds=2",
        "data.num_samples=600",
        f"data.root={tmp_path}/data",
        "--quiet",
        "--out",
        str(tmp_path / "q"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "q" / "config.yaml").read_text()
    assert "name: laser" in config and "num_clients: 16" in config


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "missing.yaml"], ["config = 'missing.yaml'", "an existing YAML file"]),
        (["run", "power.energy=-5"], ["power.energy = -5", ">= 1e-30"]),
        (["run", "compressor.name=topkk"], ["compressor.name = 'topkk'", "laser, powersgd, zsgd"]),
        (
            ["run", "compressor.name=adsgd", "compressor.fraction=1", "rounds=1"],
            ["compressor.fraction = 1.0", "dense projections would need"],
        ),
        (
            ["run", "compressor.name=qsgd", "power.energy=null", "power.snr_db=10", "power.spread_db=3"],
            ["power.spread_db = 3.0", "digital"],
        ),
        (["run", "compressor.rank=0"], ["compressor.rank = 0", ">= 1"]),
        (["run", "power.energy=nan"], ["power.energy", ">= 1e-30"]),
        (["run", "colour=red"], ["colour", "a known key"]),
        (["run", "rounds=2.5"], ["rounds = 2.5", "an integer"]),
        (["run", "optimizer.nesterov=true", "optimizer.momentum=0"], ["optimizer.nesterov", "momentum"]),
        (["run", "device=cudafoo"], ["device = 'cudafoo'", "cuda:N"]),
        (["run", "data.name=digits", "clients.num_clients=5000"], ["clients.num_clients = 5000", "1438"]),
        (["run", "power.energy=null", "power.snr_db=4000"], ["power.snr_db = 4000.0", "[-200, 200]"]),
        (["run", "channel.name=rician", "channel.k_factor=-2"], ["channel.k_factor = -2.0", ">= 0"]),
        # physical units: an unknown scenario, a negative bandwidth, dBm out of range
        (["run", "channel.scenario=umx"], ["channel.scenario = 'umx'", "umi, uma, rma"]),
        (["run", "channel.resource_blocks=-5"], ["channel.resource_blocks = -5", "1..275"]),
        (
            ["run", "channel.scenario=umi", "power.energy=null", "power.max_dbm=90"],
            ["power.max_dbm = 90.0", "[-60, 50]"],
        ),
    ],
)
def test_bad_input_is_one_line_exit_status_2_no_traceback(tmp_path, args, words):
    result = laser(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in result.stderr


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["clients.local_steps=1000000000"],
            "clients.local_steps = 1000000000 is not accepted; expected an integer in 1..1e4 (local steps "
            "per client per round)",
        ),
        (
            ["clients.lr=0.1", "clients.local_steps=1000000000"],
            "clients.local_steps = 1000000000 is not accepted; expected an integer in 1..1e4 (local steps "
            "per client per round)",
        ),
        (
            ["clients.accumulation_steps=10000000"],
            "clients.accumulation_steps = 10000000 is not accepted; expected an integer in 1..1e6 "
            "(micro-batches per client per step)",
        ),
        (
            ["clients.lr=0.1", "clients.accumulation_steps=1000", "clients.local_steps=2000"],
            "clients.local_steps = 2000 is not accepted; expected an integer in 1..1000 (with "
            "accumulation_steps 1000: at most 1e6 micro-batches per client per round)",
        ),
    ],
    ids=["local_steps", "local_steps_with_lr", "accumulation_steps", "their_product"],
)
def test_a_round_too_long_to_end_is_refused_before_any_work(tmp_path, args, line):
    """``clients.local_steps=1000000000`` was accepted and its first round never ended."""
    result = laser("run", *args, "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == f"laser run: config error: {line}\n"
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_is_a_result_exit_0_with_its_history(tmp_path):
    result = laser(
        "run",
        str(ROOT / "configs" / "digits_noiseless.yaml"),
        "optimizer.lr=1e12",
        "rounds=50",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert "diverged" in result.stderr and "not finite" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "run" / "history.jsonl").read_text().strip()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"


def test_a_yaml_file_that_is_not_a_mapping_is_bad_input(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    result = laser("run", "list.yaml", "rounds=2", cwd=tmp_path)
    assert result.returncode == 2 and "a YAML mapping" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_overrides_may_follow_the_options(tmp_path):
    result = laser(
        "run",
        str(ROOT / "configs" / "digits_laser.yaml"),
        "--quiet",
        "--out",
        str(tmp_path / "r"),
        "rounds=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["rounds"] == 2


def test_an_unknown_option_is_a_usage_error(tmp_path):
    result = laser("run", "--bogus", cwd=tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr


@pytest.mark.parametrize(
    "data",
    [
        ["data.name=cifar10", "model.name=resnet18"],
        ["data.name=wikitext103", "model.name=gpt", "model.heads=4"],
    ],
)
def test_missing_data_without_download_is_a_clear_error(tmp_path, data):
    result = laser(
        "run",
        *data,
        "data.download=false",
        f"data.root={tmp_path}/nothing",
        "--quiet",
        "--out",
        str(tmp_path / "r"),
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(tmp_path / "nothing") in result.stderr


# ---------------------------------------------------------------------- shipped configs, help, hints
def test_laser_configs_lists_every_shipped_config_with_its_description(capsys):
    from federated.cli import main
    from federated.config import shipped_configs

    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    names = shipped_configs()
    assert {"quickstart", "mnist1d_laser", "paper/gpt2_laser"} <= set(names)
    assert len(names) == len(list((ROOT / "federated" / "configs").rglob("*.yaml")))
    line = next(line for line in out.splitlines() if line.startswith("mnist1d_laser "))
    assert "LASER" in line and "MNIST-1D" in line


@pytest.mark.parametrize("spelling", ["mnist1d_laser", "mnist1d_laser.yaml", "configs/mnist1d_laser.yaml"])
def test_a_shipped_name_works_where_a_yaml_file_does(tmp_path, monkeypatch, spelling):
    from federated.config import load_config

    monkeypatch.chdir(tmp_path)  # no configs/ here: the shipped file is found by name
    assert load_config(spelling) == load_config(ROOT / "configs" / "mnist1d_laser.yaml")


def test_a_local_file_comes_before_a_shipped_name(tmp_path, monkeypatch):
    from federated.config import load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mnist1d_laser.yaml").write_text("rounds: 7\n")
    assert load_config("configs/mnist1d_laser.yaml").rounds == 7
    assert load_config("mnist1d_laser").rounds != 7  # a bare name is the shipped one


def test_an_option_spelled_like_a_key_hints_at_overrides(capsys):
    from federated.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "--rounds", "100"])
    assert exit_.value.code == 2
    assert "rounds=VALUE" in capsys.readouterr().err


def test_plot_help_shows_a_plain_percent(capsys):
    from federated.cli import main

    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    out = capsys.readouterr().out
    assert "95%" in out and "%%" not in out


# ---------------------------------------------------------------------- the results table and logs
def test_the_table_names_each_number_and_shows_totals_per_round():
    from federated.history import format_summary

    summary = {"rounds": 4, "energy_per_client_total": 400.0, "channel_uses_total": 8, "train_loss": 0.5}
    rounds = [{"round": t, "channel_uses": 3 if t % 2 == 0 else 1} for t in range(4)]
    table = format_summary(summary, rounds)
    line = next(line for line in table.splitlines() if line.endswith("energy_per_client_total"))
    assert "energy per round, highest-spending client" in line and " 100 " in line
    assert "3 / 1 (even / odd rounds)" in table  # alternating compressors: both values
    assert "training loss, mean of the last 10 rounds" in table
    noiseless = format_summary(summary, rounds, noiseless=True)
    assert "energy" not in noiseless and "channel_uses_total" in noiseless


def test_run_help_documents_every_summary_key(tmp_path):
    from federated.history import SUMMARY_FIELDS

    result = laser("run", "--help", cwd=tmp_path)
    assert all(key in result.stdout for key in SUMMARY_FIELDS)
    assert "docs/outputs.md" in result.stdout
    assert all(f"`{key}`" in (ROOT / "docs" / "outputs.md").read_text() for key in SUMMARY_FIELDS)


@pytest.mark.parametrize("quiet, table", [([], True), (["-q"], True), (["-qq"], False)])
def test_a_log_gets_lines_not_carriage_returns_and_quiet_keeps_the_table(tmp_path, capsys, quiet, table):
    from federated.cli import main

    config = str(ROOT / "configs" / "digits_laser.yaml")
    assert main(["run", config, "rounds=10", *quiet, "--out", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()  # pytest's capture is not a terminal, as a log file is not
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("round ")]
    assert len(lines) == (0 if quiet else 10) and (quiet or lines[-1].startswith("round 10/10"))
    assert ("summary.json key" in out) == table


def test_a_run_without_out_goes_to_the_runs_dir_and_says_so(tmp_path, monkeypatch, capsys):
    from federated.cli import main

    monkeypatch.setenv("LASER_RUNS_DIR", str(tmp_path / "my-runs"))
    config = str(ROOT / "configs" / "digits_laser.yaml")
    assert main(["run", config, "rounds=2", f"data.root={tmp_path}/data", "-qq"]) == 0
    (run,) = (tmp_path / "my-runs").iterdir()
    assert run.name.startswith("digits_laser-") and (run / "summary.json").is_file()
    out = capsys.readouterr().out
    assert f"writing the run to {run}" in out and "LASER_RUNS_DIR" in out
