"""A run's numbers depend on its configuration and seed only, not on how it is launched: the thread
environment, ``laser run`` or a ``laser sweep`` point; and the documented numerics do not move
unnoticed (the golden histories of ``tests/golden``, compared byte for byte)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["configs/mnist1d_laser.yaml", "rounds=12", "eval_every=4"]


def _golden():
    spec = importlib.util.spec_from_file_location("golden", ROOT / "tests" / "golden" / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOLDEN = _golden()


def _laser(args: list[str], threads: str | None, cwd: Path = ROOT) -> None:
    """``laser ARGS`` in a fresh process, with OMP_NUM_THREADS and MKL_NUM_THREADS set to ``threads``
    (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    result = subprocess.run(
        [sys.executable, "-m", "federated.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_results_do_not_depend_on_the_thread_environment(tmp_path):
    """1 and 2 BLAS / OpenMP threads in the environment: the same history, byte for byte (the run
    sets torch's threads from its ``threads`` key)."""
    for threads in ("1", "2"):
        _laser(
            ["run", *SHORT, f"data.root={ROOT / 'data'}", "--quiet", "--out", str(tmp_path / threads)],
            threads,
        )
    assert (tmp_path / "1" / "history.jsonl").read_bytes() == (tmp_path / "2" / "history.jsonl").read_bytes()


@pytest.mark.slow
def test_a_sweep_point_equals_the_same_laser_run(tmp_path):
    """A run launched by hand with 2 threads in its environment, and the same point of a 2-job sweep
    (which once gave its children cores / jobs threads): the same history."""
    data = f"data.root={ROOT / 'data'}"
    _laser(["run", *SHORT, data, "seed=1", "--quiet", "--out", str(tmp_path / "run")], "2")
    sweep = ["sweep", SHORT[0], *SHORT[1:], data, "--grid", "seed=1,2", "--jobs", "2", "--quiet"]
    _laser([*sweep, "--out", str(tmp_path / "sweep")], None)
    point = tmp_path / "sweep" / "mnist1d_laser" / "seed=1" / "history.jsonl"
    assert point.read_bytes() == (tmp_path / "run" / "history.jsonl").read_bytes()


@pytest.mark.parametrize("name", sorted(GOLDEN.RUNS))
def test_golden_history(name, tmp_path):
    """30 rounds of a documented configuration give the committed history byte for byte; a change
    that moves them on purpose regenerates them (``python tests/golden/regenerate.py``) and says why."""
    history = GOLDEN.run(name, tmp_path / name)
    expected = (ROOT / "tests" / "golden" / f"{name}.jsonl").read_bytes()
    got = history.read_bytes()
    if got != expected:
        pairs = list(zip(got.splitlines(), expected.splitlines()))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs) - 1)
        pytest.fail(
            f"{name}: round {first} differs from tests/golden/{name}.jsonl:\n"
            f"  got      {got.splitlines()[first][:200]!r}\n  expected {expected.splitlines()[first][:200]!r}"
        )
