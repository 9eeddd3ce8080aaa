"""Smoke test of benchmarks/powersgd_hook.py: its --quick run finishes and reports positive timings
for LASER and PyTorch's PowerSGD hook at every rank, and their ratios."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # several processes or whole runs: see pyproject.toml's markers

REPO = Path(__file__).resolve().parent.parent


def test_powersgd_hook_quick(tmp_path):
    out = tmp_path / "powersgd_hook.json"
    # one torch thread: on a busy two-core machine two threads can be many times slower
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "powersgd_hook.py"),
            "--quick",
            "--threads",
            "1",
            "--json",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "JSON:" in done.stdout and "hook/L2" in done.stdout  # the table, then the JSON
    result = json.loads(out.read_text())
    assert result["benchmark"] == "powersgd_hook" and result["quick"] is True
    assert result["machine"]["torch_threads"] == 1 and result["machine"]["cpu_count"] >= 1
    ranks = result["settings"]["ranks"]
    assert ranks == [1, 2, 4, 8]
    models = {r["model"] for r in result["results"]}
    assert "mnist1d_cnn" in models
    for model in models:
        rows = {r["rank"]: r for r in result["results"] if r["model"] == model}
        assert sorted(rows) == ranks
        for row in rows.values():
            for method in ("laser_2pass", "laser_1pass", "hook", "hook_same_shape", "batched_hook"):
                assert row["ms"][method] > 0, (model, row["rank"], method)
            for key in ("ratio_hook_over_laser_2pass", "ratio_hook_over_laser_1pass"):
                assert math.isfinite(row[key]) and row[key] > 0, (model, row["rank"], key)
            # equal work: LASER with two factors compresses exactly the hook's tensors
            assert row["compressed_tensors"]["laser_2pass"] == row["compressed_tensors"]["hook"]
            assert row["floats_sent_per_iteration"]["laser_2pass"] == row["floats_sent_per_iteration"]["hook"]


def _quick(script, tmp_path, *extra, data=True):
    """The benchmark ``script`` run with ``--quick`` (and a data root in ``tmp_path`` unless ``data``
    is False: a script that reads no dataset), its JSON."""
    out = tmp_path / f"{script}.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / f"{script}.py"),
            "--quick",
            "--threads",
            "1",
            "--json",
            str(out),
            *(["--data-root", str(tmp_path / "data")] if data else []),
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_overhead_quick(tmp_path):
    result = _quick("overhead", tmp_path)
    assert {(r["regime"], r["method"], r["channel"], r["local_steps"]) for r in result["results"]} == {
        ("fedsgd", "laser", "awgn", None),
        ("fedavg_h5", "laser", "awgn", 5),
    }
    for row in result["results"]:
        assert row["clients_ms"]["median"] > 0 and row["round_ms"]["median"] > 0
        assert row["overhead"] == row["round_ms"]["median"] / row["clients_ms"]["median"]
        stages = row["stages_ms"]  # the profile: every stage ran, its parts are the round's, per round
        assert all(stages[name] > 0 for name in ("local_updates", "_encode", "_uplink", "_server_step"))
        assert all(row[f"stage_{n}_ms"] >= 0 for n in ("clients", "encode", "uplink", "server", "rest"))
        assert row["stage_clients_ms"] < stages["local_updates"] <= stages["round"]


def test_clients_scaling_quick(tmp_path):
    result = _quick("clients_scaling", tmp_path)
    assert [r["clients"] for r in result["results"]] == [1, 16]
    for row in result["results"]:
        assert row["loop_rounds_per_s"] > 0 and row["vmap_rounds_per_s"] > 0
        assert math.isclose(row["speedup"], row["vmap_rounds_per_s"] / row["loop_rounds_per_s"], rel_tol=1e-9)


def test_registered_clients_quick(tmp_path):
    result = _quick("registered_clients", tmp_path)
    assert [r["clients"] for r in result["results"]] == [100, 10000]
    for row in result["results"]:
        assert row["round_s"] > 0 and row["rounds_per_s"] == 1 / row["round_s"]
        assert 10 <= row["sides_made"] <= 10 * (result["rounds"] + 1)  # the participants', whatever K
    assert result["command"].startswith("python ") and "--quick" in result["command"]
    assert result["code"]["commit"] is None or len(result["code"]["commit"]) == 40


@pytest.mark.slow
def test_gpu_script_runs_tiny_on_the_cpu(tmp_path):
    """``bash benchmarks/gpu.sh --device cpu --tiny``: the paper models' short runs (ResNet-18 on
    CIFAR files the tests' generator writes, the GPT on pydoc bytes) and a benchmark step, into one
    JSON (the other benchmarks' --quick runs are the tests above; the whole tiny set takes about
    4 minutes here, `bash benchmarks/gpu.sh --device cpu --tiny`)."""
    out = tmp_path / "gpu.json"
    steps = "resnet18_cifar10,gpt2_124m_pydoc,antennas"
    done = subprocess.run(
        [
            "bash",
            str(REPO / "benchmarks" / "gpu.sh"),
            "--device",
            "cpu",
            "--tiny",
            "--json",
            str(out),
            "--only",
            steps,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["tiny"] is True and report["code"]["commit"]
    assert [s["name"] for s in report["steps"]] == [
        "antennas",
        "resnet18_cifar10",
        "gpt2_124m_pydoc",
    ]  # its order
    assert all(s["status"] == "ok" for s in report["steps"])
    runs = {s["name"]: s["result"] for s in report["steps"]}
    assert runs["resnet18_cifar10"]["status"] == "finished" and runs["resnet18_cifar10"]["rounds"] == 2
    assert runs["gpt2_124m_pydoc"]["rounds_per_s"] > 0
    assert runs["antennas"]["benchmark"] == "antennas"
    bad = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--only", "nosuch", "--device", "cpu"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no step 'nosuch'" in bad.stderr


def test_scenarios_quick(tmp_path):
    result = _quick("scenarios", tmp_path)
    rows = {r["case"]: r for r in result["results"]}
    assert set(rows) == {
        "AWGN",
        "Rayleigh",
        "UMi",
        "Rayleigh N=64",
        "UMi N=64",
        "UMi clusters",
        "UMi clusters N=64",
    }
    assert rows["AWGN"]["ratio_to_awgn"] == 1.0 and rows["AWGN"]["drop_median_ms"] is None
    for row in rows.values():
        assert row["round_median_ms"] > 0 and row["ratio_to_awgn"] > 0
    assert rows["UMi"]["drop_median_ms"] > 0 and rows["UMi N=64"]["antennas"] == 64
    # the clusters' chunks, per round, only where the channel is the drop's own clusters
    assert rows["UMi"]["clusters_ms_per_round"] is None
    assert rows["UMi clusters"]["clusters_ms_per_round"] > 0
    assert rows["UMi clusters N=64"]["clusters_ms_per_round"] > rows["UMi clusters"]["clusters_ms_per_round"]


def test_privacy_audit_quick(tmp_path):
    # the audit's 95% lower bound never exceeds the accountant's epsilon (2,000 trials a world here;
    # docs/data/benchmarks/privacy_audit.json holds the 100,000-trial run), and the worst-direction
    # canary, whose sensitivity is the accountant's, is the stronger test
    results = _quick("privacy_audit", tmp_path, data=False)["results"]
    assert {(r["nu"], r["canary"]) for r in results} == {
        (nu, canary) for nu in (1.5, 2.0, 3.0) for canary in ("coordinate", "worst")
    }
    for r in results:
        assert r["reported_nu"] == pytest.approx(r["nu"], rel=1e-9)  # the energy gives the intended nu
        assert 0 <= r["epsilon_lower_bound"] <= r["epsilon_accountant"]
    by = {(r["nu"], r["canary"]): r["epsilon_lower_bound"] for r in results}
    assert all(by[(nu, "worst")] > by[(nu, "coordinate")] for nu in (1.5, 2.0, 3.0))
