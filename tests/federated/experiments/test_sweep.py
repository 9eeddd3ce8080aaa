"""``laser sweep``: the grid, skip-and-resume after a kill, failure isolation, the exit status."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from federated.config import ConfigError
from federated.experiments.launchers import LocalLauncher
from federated.experiments.plan import expand_grid, parse_grid, plan_sweep
from federated.experiments.sweep import PointResult, SweepResult

ROOT = Path(__file__).resolve().parents[3]
DIGITS = str(ROOT / "configs" / "digits_laser.yaml")


# ------------------------------------------------------------------------------ grid expansion
@pytest.mark.parametrize(
    "spec, key, values",
    [
        ("power.energy=10,100,1e3", "power.energy", ["10", "100", "1e3"]),
        ("power.energy=logspace:10:1e4:4", "power.energy", ["10", "100", "1000", "10000"]),
        ("power.energy=logspace:1:100:5", "power.energy", ["1", "3.1623", "10", "31.623", "100"]),
        ("power.snr_db=linspace:-10:10:5", "power.snr_db", ["-10", "-5", "0", "5", "10"]),
        ("seed=range:3", "seed", ["0", "1", "2"]),
        ("seed=range:2:5", "seed", ["2", "3", "4"]),
        ("compressor.name=laser, zsgd", "compressor.name", ["laser", "zsgd"]),
        ("optimizer.milestones=[3,5],[4]", "optimizer.milestones", ["[3,5]", "[4]"]),
        ("power.energy=null", "power.energy", ["null"]),
    ],
)
def test_parse_grid(spec, key, values):
    assert parse_grid(spec) == (key, values)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("power.energy", "key=v1,v2"),
        ("power.energie=1,2", "a configuration key"),
        ("power=1,2", "a configuration key"),  # a section, not a value
        ("power.energy=1,,2", "empty value"),
        ("power.energy=1,1", "distinct values"),
        ("power.energy=logspace:0:10:3", "logspace ends > 0"),
        ("power.energy=logspace:1:10", "NUM an integer"),
        ("seed=range:a", "range:STOP"),
        ("seed=range:3:3", "at least one value"),
        ("power.energy=linspace:1:inf:3", "finite range ends"),
    ],
)
def test_parse_grid_refuses_bad_specs_naming_them(spec, words):
    with pytest.raises(ConfigError) as error:
        parse_grid(spec)
    assert words in str(error.value) and "--grid" in str(error.value)


def test_expand_grid_is_the_cartesian_product_last_key_fastest():
    points = expand_grid(["compressor.name=laser,zsgd", "power.energy=10,100,1000", "seed=range:2"])
    assert len(points) == 12
    assert points[0] == {"compressor.name": "laser", "power.energy": "10", "seed": "0"}
    assert points[1] == {"compressor.name": "laser", "power.energy": "10", "seed": "1"}
    assert points[-1] == {"compressor.name": "zsgd", "power.energy": "1000", "seed": "1"}
    assert len({tuple(p.items()) for p in points}) == 12
    with pytest.raises(ConfigError, match="each key in one --grid only"):
        expand_grid(["seed=1,2", "seed=3"])


def test_plan_sweep_names_one_directory_per_point_and_config(tmp_path):
    zsgd = str(ROOT / "configs" / "digits_zsgd.yaml")
    points = plan_sweep([DIGITS, zsgd], ["power.energy=10,100", "seed=0,1"], tmp_path, ["rounds=5"])
    assert len(points) == 8 and len({p.path for p in points}) == 8
    assert points[0].path == tmp_path / "digits_laser" / "power.energy=10,seed=0"
    assert points[0].overrides == ("rounds=5", "power.energy=10", "seed=0")
    assert points[-1].name == "digits_zsgd/power.energy=100,seed=1"
    with pytest.raises(ConfigError, match="an existing YAML file"):
        plan_sweep([str(tmp_path / "missing.yaml")], ["seed=0"], tmp_path)


def test_exit_status_orders_bad_input_over_failure():
    point = plan_sweep([DIGITS], ["seed=0"], "x")[0]
    assert (
        SweepResult([PointResult(point, "finished"), PointResult(point, "diverged")], Path()).exit_status == 0
    )
    assert SweepResult([PointResult(point, "failed")], Path()).exit_status == 1
    assert (
        SweepResult([PointResult(point, "failed"), PointResult(point, "bad_input")], Path()).exit_status == 2
    )


# ------------------------------------------------------------------------------ the command
def laser(*args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "federated.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def small(tmp_path, rounds=6):
    return [f"rounds={rounds}", "eval_every=3", "clients.num_clients=4", f"data.root={tmp_path}/data"]


@pytest.mark.slow
def test_a_point_with_an_invalid_value_fails_alone(tmp_path):
    out = tmp_path / "sweep"
    result = laser(
        "sweep",
        DIGITS,
        *small(tmp_path),
        "--grid",
        "compressor.rank=0,2",
        "--grid",
        "clients.num_clients=4,5000",
        "--out",
        str(out),
        "--quiet",
        cwd=tmp_path,
    )
    # rank 0: refused by the schema; 5000 clients: refused when the run builds its data (in the child)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "3 failed" in result.stdout and "1 done" in result.stdout
    assert "compressor.rank = 0" in result.stderr and "clients.num_clients = 5000" in result.stderr
    assert str(out / "digits_laser" / "compressor.rank=0,clients.num_clients=4" / "run.log") in result.stderr
    manifest = json.loads((out / "sweep.json").read_text())["points"]
    good = manifest["digits_laser/compressor.rank=2,clients.num_clients=4"]
    assert good["status"] == "finished" and 0 <= good["test_accuracy"] <= 1
    bad = manifest["digits_laser/compressor.rank=2,clients.num_clients=5000"]
    assert bad["status"] == "bad_input" and "clients.num_clients = 5000" in bad["error"]
    assert (out / "summary.csv").read_text().count("\nbest_lr,laser,") == 1


def test_a_bad_grid_or_key_stops_before_any_work(tmp_path):
    for args in (
        ["--grid", "power.energie=1,2"],
        ["--grid", "seed=range:x"],
        ["--grid", "seed=0", "--jobs", "0"],
    ):
        result = laser("sweep", DIGITS, *args, "--out", str(tmp_path / "s"), cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_a_killed_sweep_skips_finished_points_and_resumes_unfinished_ones(tmp_path):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        DIGITS,
        *small(tmp_path, rounds=40),
        "checkpoint_every=4",
        "--grid",
        "power.energy=10,100,1000",
        "--out",
        str(out),
        "--quiet",
    ]
    points = [out / "digits_laser" / f"power.energy={e}" for e in (10, 100, 1000)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(
        [sys.executable, "-m", "federated.cli", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    # kill it once the first point has finished and the second has a checkpoint
    while not ((points[0] / "summary.json").is_file() and (points[1] / "checkpoint.pt").is_file()):
        assert sweep.poll() is None and time.time() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.05)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    time.sleep(0.5)  # the killed sweep's child dies with it (PR_SET_PDEATHSIG)
    assert not (points[1] / "summary.json").is_file()
    first = (points[0] / "summary.json").read_bytes()

    result = laser(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 points: 3 done (1 before this run" in result.stdout
    assert (points[0] / "summary.json").read_bytes() == first  # not recomputed
    assert [
        line.split()[3] for line in (points[0] / "run.log").read_text().splitlines() if line.startswith("# ")
    ] == ["start:"]
    starts = [
        line.split()[3] for line in (points[1] / "run.log").read_text().splitlines() if line.startswith("# ")
    ]
    assert starts == ["start:", "resume:"]
    for point in points:
        summary = json.loads((point / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["rounds"] == 40
        assert len((point / "history.jsonl").read_text().splitlines()) == 40
    assert json.loads((points[1] / "summary.json").read_text())["resumed_from_round"] % 4 == 0
    rows = (out / "summary.csv").read_text().splitlines()
    assert sum(row.startswith("best_lr,laser,") for row in rows) == 3

    again = laser(*args, cwd=tmp_path)  # everything done: nothing runs
    assert again.returncode == 0 and "3 points: 3 done (3 before this run" in again.stdout


@pytest.mark.slow
def test_a_point_dir_of_another_configuration_is_not_overwritten(tmp_path):
    out = tmp_path / "sweep"
    base = ["sweep", DIGITS, *small(tmp_path, rounds=3), "--grid", "seed=0", "--out", str(out), "--quiet"]
    assert laser(*base, cwd=tmp_path).returncode == 0
    history = (out / "digits_laser" / "seed=0" / "history.jsonl").read_bytes()
    # a key added to the schema since the run was written counts as its default: still the same point
    stored = out / "digits_laser" / "seed=0" / "config.yaml"
    stored.write_text(
        "".join(line for line in stored.read_text().splitlines(True) if not line.startswith("tensorboard:"))
    )
    again = laser(*base, cwd=tmp_path)
    assert again.returncode == 0 and "1 done (1 before this run" in again.stdout, again.stdout + again.stderr
    result = laser(*base, "compressor.rank=2", cwd=tmp_path)
    assert result.returncode == 1 and "another configuration" in result.stderr
    assert (out / "digits_laser" / "seed=0" / "history.jsonl").read_bytes() == history


def test_points_that_would_share_a_directory_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="distinct directories"):
        plan_sweep([DIGITS], ["optimizer.milestones=[1, 2],[1,_2]"], tmp_path)  # both [1,_2] on disk


def test_ctrl_c_stops_the_sweep_and_starts_nothing_more(tmp_path):
    out = tmp_path / "sweep"
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "federated.cli",
            "sweep",
            DIGITS,
            *small(tmp_path, rounds=400),
            "--grid",
            "seed=0,1,2",
            "--out",
            str(out),
            "--quiet",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        # Ctrl-C's default action even when the tests run in a background job (a
        # shell starts those with SIGINT ignored, and children inherit that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = out / "digits_laser" / "seed=0" / "history.jsonl"
    deadline = time.time() + 120
    while not (first.is_file() and first.read_text().count("\n") >= 2):
        assert sweep.poll() is None and time.time() < deadline
        time.sleep(0.05)
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert not (out / "digits_laser" / "seed=1").exists()  # the queued points never started
    assert not (out / "digits_laser" / "seed=0" / "summary.json").is_file()  # the running one was stopped


def test_a_second_sweep_into_a_directory_in_use_is_refused(tmp_path):
    """Two sweeps at once into one directory would run a point twice into one run directory and lose
    sweep.json entries: while one holds the directory, another exits 2 naming it; afterwards it runs."""
    from federated.experiments.sweep import _lock_directory

    out = tmp_path / "sweep"
    out.mkdir()
    held = _lock_directory(out)  # a sweep running into it (this process)
    try:
        result = laser(
            "sweep", DIGITS, *small(tmp_path, rounds=2), "--out", str(out), "--quiet", cwd=tmp_path
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert f"pid {os.getpid()} is sweeping into it" in result.stderr and "--out" in result.stderr
        assert not (out / "sweep.json").exists()
    finally:
        held.close()
    again = laser("sweep", DIGITS, *small(tmp_path, rounds=2), "--out", str(out), "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "sweep.json").read_text())["points"]


def test_a_diverged_point_is_done_and_not_run_again(tmp_path, monkeypatch):
    """A diverged run is a result (of too little energy, say): the next invocation of the sweep skips
    it as it skips a finished one, and starts nothing (counting only "finished" points as done ran the
    diverged ones again)."""
    import yaml

    from federated.config import config_to_dict, load_config
    from federated.experiments import sweep as sweep_module

    out = tmp_path / "sweep"
    points = plan_sweep([DIGITS], ["power.energy=10,100"], out, small(tmp_path))
    for point, status in zip(points, ("diverged", "finished")):
        point.path.mkdir(parents=True)
        config = config_to_dict(load_config(point.config_path, list(point.overrides)))
        (point.path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (point.path / "summary.json").write_text(json.dumps({"status": status, "test_accuracy": 0.1}))

    def no_run(*args, **kwargs):
        raise AssertionError("a done point was started again")

    monkeypatch.setattr(LocalLauncher, "run", no_run)
    result = sweep_module.run_sweep(points, out, jobs=1, progress=False)
    assert [(r.status, r.skipped) for r in result.results] == [("diverged", True), ("finished", True)]
    assert result.exit_status == 0
