"""``laser sweep --launcher``: a two-point sweep as Ray tasks and as Slurm jobs (submitit's local
executor) gives the local launcher's histories byte for byte, resumes and isolates failures the
same way, and an --out a cluster cannot share is refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from federated.config import ConfigError
from federated.experiments import launchers
from federated.experiments.launchers import Resources, build_launcher
from federated.experiments.plan import plan_sweep
from federated.experiments.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[3]
DIGITS = str(ROOT / "configs" / "digits_laser.yaml")
# one torch thread: a Ray worker's environment sets OMP_NUM_THREADS to its task's CPUs, which would
# otherwise give a point other threads (and other float rounding) than the same run here
SMALL = ["rounds=3", "eval_every=3", "threads=1"]


def _histories(out: Path) -> dict[str, bytes]:
    return {str(p.parent.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("history.jsonl"))}


def _sweep(out: Path, **options) -> dict[str, bytes]:
    points = plan_sweep([DIGITS], ["seed=0,1"], out, SMALL)
    result = run_sweep(points, out, jobs=2, progress=False, **options)
    assert [r.status for r in result.results] == ["finished", "finished"], [r.error for r in result.results]
    return _histories(out)


LOCAL_OUT: dict[str, Path] = {}


@pytest.fixture(scope="module")
def local_histories(tmp_path_factory):
    out = LOCAL_OUT["out"] = tmp_path_factory.mktemp("local") / "sweep"
    histories = _sweep(out)
    assert len(histories) == 2
    return histories


def test_slurm_jobs_through_submitit_give_the_local_histories(tmp_path, local_histories):
    out = tmp_path / "sweep"
    assert _sweep(out, launcher="slurm", slurm_cluster="local") == local_histories
    assert (out / ".submitit").is_dir()  # submitit's job files, beside the points
    logs = [p.read_text() for p in sorted(out.rglob("run.log"))]
    assert all("start (slurm): laser run" in log for log in logs)
    # run again: every point is done, nothing is submitted
    again = run_sweep(
        plan_sweep([DIGITS], ["seed=0,1"], out, SMALL),
        out,
        progress=False,
        launcher="slurm",
        slurm_cluster="local",
    )
    assert [r.skipped for r in again.results] == [True, True]


@pytest.mark.slow
def test_ray_tasks_give_the_local_histories_and_isolate_a_failure(tmp_path, local_histories, monkeypatch):
    # relative paths, as a user types them: a task runs in the sweep's directory
    monkeypatch.chdir(tmp_path)
    out, config = Path("sweep"), os.path.relpath(DIGITS, tmp_path)
    # with the two points, one that fails on its worker: more clients than the digits' samples, which
    # the config accepts and the run refuses when it builds its data (exit status 2)
    bad = plan_sweep([config], ["clients.num_clients=5000"], out, SMALL)
    points = plan_sweep([config], ["seed=0,1"], out, SMALL) + bad
    result = run_sweep(points, out, jobs=3, progress=False, launcher="ray", resources=Resources(cpus=1))
    assert [r.status for r in result.results] == ["finished", "finished", "bad_input"]
    assert "clients.num_clients = 5000" in (bad[0].path / "run.log").read_text()
    assert _histories(out) == local_histories
    assert all("start (ray): laser run" in p.read_text() for p in out.rglob("run.log"))


def test_a_cluster_needs_an_out_every_node_sees(tmp_path, monkeypatch):
    monkeypatch.setattr(launchers, "_file_system", lambda path: "ext4")
    with pytest.raises(
        ConfigError, match=r"--out = .* a file system the cluster's nodes share \(it is on ext4"
    ):
        build_launcher("slurm", tmp_path, Resources())
    monkeypatch.setattr(launchers, "_file_system", lambda path: "nfs4")  # shared: on to submitit
    if subprocess.run(["which", "srun"], capture_output=True).returncode != 0:  # not a Slurm machine
        with pytest.raises(ConfigError, match="a machine of a Slurm cluster, or --slurm-cluster local"):
            build_launcher("slurm", tmp_path, Resources(cpus=2, gpus=1))
    # submitit's local executor runs here: any directory will do
    monkeypatch.setattr(launchers, "_file_system", lambda path: "tmpfs")
    build_launcher("slurm", tmp_path, Resources(), slurm_cluster="local")


def test_the_file_system_of_a_path_is_its_longest_mount(tmp_path):
    kind = launchers._file_system(tmp_path)
    assert kind is None or isinstance(kind, str)
    mounts = Path("/proc/mounts")
    if mounts.is_file():
        root = next(line.split()[2] for line in mounts.read_text().splitlines() if line.split()[1] == "/")
        assert launchers._file_system(Path("/")) == root


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--launcher", "ray", "--cpus-per-run", "0"], "--cpus-per-run = 0.0 is not accepted"),
        (["--launcher", "ray", "--gpus-per-run", "-1"], "--gpus-per-run = -1.0 is not accepted"),
        (
            ["--address", "1.2.3.4:6379"],
            "--address = '1.2.3.4:6379' is not accepted; expected to go with --launcher ray",
        ),
        (["--launcher", "slurm", "--timeout-min", "0"], "--timeout-min = 0 is not accepted"),
        (["--launcher", "nosuch"], "invalid choice: 'nosuch'"),
    ],
)
def test_bad_launcher_options_are_one_line_and_exit_2(tmp_path, extra, words):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "federated.cli",
            "sweep",
            DIGITS,
            "--grid",
            "seed=0,1",
            "--out",
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert not list(tmp_path.rglob("history.jsonl"))


def test_the_local_launcher_logs_and_records_as_before(local_histories):
    """The local launcher's run.log names the command as before (no launcher tag)."""
    out = LOCAL_OUT["out"]
    assert all("start: laser run" in p.read_text() for p in out.rglob("run.log"))
    assert len(json.loads((out / "sweep.json").read_text())["points"]) == 2
