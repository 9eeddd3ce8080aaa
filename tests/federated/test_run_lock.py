"""One run at a time writes a run directory (``DIR/.run.lock``, held by ``train()`` and so by
``laser run``, ``--resume`` and the ``--nproc`` parent), and ``--overwrite`` removes exactly the files a
run writes: a user's own files stay, and the refusal names every file of the run."""

import contextlib
import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from federated.checkpoint import checkpoint_name, previous_checkpoint
from federated.cli import main
from federated.config import load_config
from federated.outputs import RUN_LOCK, RUN_LOCK_HELD, RunExistsError, RunLockedError, claim, held_run
from federated.simulation import Simulation
from federated.train import _owns_directory, train

TINY = ["data.name=digits", "model.name=linear", "clients.num_clients=2", "rounds=4", "checkpoint_every=2"]


def _run(out: Path, *extra: str) -> int:
    return main(["run", *TINY, *extra, "--out", str(out), "--quiet"])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@contextlib.contextmanager
def _written_by_another_run(out: Path):
    """Another live run writing ``out``: its lock held as any process holds it (an exclusive ``flock``
    on ``out/.run.lock``, with the holder's pid in it)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / RUN_LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("pid 4242")
        handle.flush()
        yield


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------- the lock
def test_a_run_into_a_directory_another_run_is_writing_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    with _written_by_another_run(out):
        assert _run(out) == 2
        err = _one_line(capsys)
        assert f"laser run: {out} is being written by another run (pid 4242)" in err and "--out" in err
        with pytest.raises(RunLockedError, match="being written by another run"):
            train(load_config(None, TINY), out, progress=False)
        assert set(_files(out)) == {RUN_LOCK}  # nothing written beside the other run
    assert issubclass(RunLockedError, RunExistsError)  # a library caller's except RunExistsError sees it


def test_a_resumed_run_takes_the_lock(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out) == 0
    (out / "summary.json").unlink()  # killed before its end: there is something to resume
    before = _files(out)
    with _written_by_another_run(out):
        assert main(["run", "--resume", str(out), "--quiet"]) == 2
        assert "is being written by another run" in _one_line(capsys)
    assert {k: v for k, v in _files(out).items() if k != RUN_LOCK} == before
    assert main(["run", "--resume", str(out), "--quiet"]) == 0  # once the other run is gone
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_the_nproc_parent_takes_the_lock_before_starting_any_process(tmp_path, capsys):
    out = tmp_path / "run"
    with _written_by_another_run(out):
        assert _run(out, "--nproc", "2") == 2
        assert "is being written by another run" in _one_line(capsys)
        assert set(_files(out)) == {RUN_LOCK}  # no process started: no rank1.log


def test_the_run_holds_its_directory_while_it_runs_and_lets_go_after(tmp_path, monkeypatch):
    """Every round finds the lock taken; after the run (and after a refused one) it is free and gone,
    so the next run into the directory goes ahead."""
    out = tmp_path / "run"
    taken = []
    round_ = Simulation.round

    def probing(self, t=None):
        with open(out / RUN_LOCK, "a+") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken.append(False)
            except BlockingIOError:
                taken.append(True)
        return round_(self, t)

    monkeypatch.setattr(Simulation, "round", probing)
    assert _run(out) == 0
    assert taken == [True] * 4
    assert not (out / RUN_LOCK).exists()  # no clutter left
    assert _run(out, "seed=1") == 2  # refused: the directory holds a run ...
    assert not (out / RUN_LOCK).exists()
    assert _run(out, "seed=1", "--overwrite") == 0  # ... and not locked by the refused run
    assert taken == [True] * 8


def test_a_run_that_fails_before_writing_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        _run(out, "data.name=cifar10", "model.name=resnet18", f"data.root={tmp_path}", "data.download=false")
        == 2
    )
    capsys.readouterr()
    assert not out.exists()


def test_without_locks_the_run_goes_on_and_says_so(tmp_path, monkeypatch, capsys):
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert _run(tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert f"cannot lock {tmp_path / 'run'}" in err and "one run into it at a time" in err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"


def test_which_process_of_a_run_holds_its_directory(tmp_path, monkeypatch):
    """The only process; process 0 of a torchrun job; not the processes `laser run --nproc` starts (it
    holds the directory for them)."""
    out = tmp_path / "run"
    for name in ("WORLD_SIZE", "RANK", RUN_LOCK_HELD):
        monkeypatch.delenv(name, raising=False)
    assert _owns_directory(out)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not _owns_directory(out)
    monkeypatch.setenv("RANK", "0")
    assert _owns_directory(out)
    monkeypatch.setenv(RUN_LOCK_HELD, str(out.resolve()))
    assert not _owns_directory(out) and _owns_directory(tmp_path / "another")


# `laser run ARGS` in a process that, once past the checks that come before any work, waits for the
# other run to get as far (or to have ended) before it builds its simulation and writes: the two runs
# are at the moment of the race however the machine schedules them
_AT_THE_SAME_MOMENT = """
import sys, time
from pathlib import Path
import federated.simulation
from federated.cli import main
me, other, sync = sys.argv[1], sys.argv[2], Path(sys.argv[3])
build = federated.simulation.Simulation.__init__
def arrive(self, *args, **kwargs):
    (sync / f"arrived.{me}").touch()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        (sync / f"{what}.{other}").exists() for what in ("arrived", "exited")
    ):
        time.sleep(0.05)
    build(self, *args, **kwargs)
federated.simulation.Simulation.__init__ = arrive
try:
    code = main(sys.argv[4:])
finally:
    (sync / f"exited.{me}").touch()
sys.exit(code)
"""


@pytest.mark.slow  # two processes
def test_two_runs_started_at_once_one_is_refused_and_the_directory_holds_the_others(tmp_path):
    out = tmp_path / "run"
    runs = {
        seed: subprocess.Popen(
            [sys.executable, "-c", _AT_THE_SAME_MOMENT, str(seed), str(3 - seed), str(tmp_path)]
            + ["run", *TINY, "rounds=20", f"seed={seed}", "--out", str(out)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    }
    results = {seed: (*run.communicate(timeout=300), run.returncode) for seed, run in runs.items()}
    assert sorted(code for _, _, code in results.values()) == [0, 2], results
    (winner,) = [seed for seed, (_, _, code) in results.items() if code == 0]
    (refused,) = [err for _, err, code in results.values() if code == 2]
    assert refused.strip() == (
        f"laser run: {out} is being written by another run (pid {runs[winner].pid}): wait for it to end, "
        "or write to another --out"
    )
    assert f"seed: {winner}\n" in (out / "config.yaml").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["rounds"] == 20
    assert [json.loads(line)["round"] for line in (out / "history.jsonl").read_text().splitlines()] == list(
        range(20)
    )
    assert f"{summary['test_accuracy']:.4g}" in results[winner][0]  # what it printed is what DIR holds


# ------------------------------------------------------------------------------- --overwrite
RUN_WRITES = [
    "config.yaml",
    "history.jsonl",
    "summary.json",
    "partition.json",
    *(checkpoint_name(rank) for rank in range(3)),
    *(previous_checkpoint(Path(checkpoint_name(rank))).name for rank in range(3)),
    "rank1.log",
    "rank2.log",
    ".checkpoint.pt.1234.tmp",  # a kill in mid-write
    ".summary.json.99.tmp",
    "tensorboard/events.out.tfevents.1733000000.host.1234.0",
]
USERS = [
    "checkpoint.mine.pt",
    "checkpoint.rank0.pt",
    "notes.txt",
    "run.log",
    ".hidden",
    "tensorboard/plot.png",
]


def _directory(tmp_path: Path, names: list[str]) -> Path:
    out = tmp_path / "run"
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(name)
    return out


def test_the_refusal_names_every_file_of_the_run_and_none_of_the_users(tmp_path):
    out = _directory(tmp_path, RUN_WRITES + USERS)
    with pytest.raises(RunExistsError) as refused:
        claim(out)
    listed = str(refused.value).split(" already holds a run (")[1].split(")")[0].split(", ")
    assert sorted(listed) == sorted(RUN_WRITES) and listed[:5] == RUN_WRITES[:5]
    assert sorted(held_run(out)) == sorted(RUN_WRITES)


def test_overwrite_removes_the_runs_files_and_keeps_the_users(tmp_path):
    out = _directory(tmp_path, RUN_WRITES + USERS)
    assert sorted(claim(out, overwrite=True)) == sorted(RUN_WRITES)
    assert sorted(_files(out)) == sorted(USERS)


def test_a_users_checkpoint_survives_overwrite(tmp_path):
    out = tmp_path / "run"
    assert _run(out, "tensorboard=true") == 0
    (out / "checkpoint.mine.pt").write_bytes(b"my own")
    assert _run(out, "seed=1", "--overwrite") == 0
    assert (out / "checkpoint.mine.pt").read_bytes() == b"my own"
    assert not (out / "tensorboard").exists()  # the old run's event files went with it
    assert "seed: 1\n" in (out / "config.yaml").read_text()


def test_a_directory_holding_only_a_users_files_is_no_run(tmp_path):
    out = _directory(tmp_path, USERS)
    assert _run(out) == 0  # no --overwrite needed
    assert {name: _files(out)[name] for name in USERS} == {name: name.encode() for name in USERS}
