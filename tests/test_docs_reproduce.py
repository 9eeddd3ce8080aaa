"""docs/reproduce.py re-runs recorded runs and compares them: exactly where the machine matches,
else within the cell's single-run prediction interval. The comparisons on constructed records (each
way they can fail), the machine match, the command's bad input; and, slow, a real re-run of the
shortest recorded cell (or, until docs/data has data, of a tiny run made here), which must pass, and
of a tampered copy of it, which must fail."""

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


T = _load("docs_tables", ROOT / "docs" / "tables.py")
R = _load("docs_reproduce", ROOT / "docs" / "reproduce.py")
ACCURACY = T.METRICS["test_accuracy"]
HERE = {"torch": "2.13.0", "kernel_fingerprint": "f00d", "cpu": "Test CPU"}


def record(
    seed: int, accuracy: float | None, *, whole: bool = True, diverged_round: int = 7, name: str = ""
) -> object:
    """A recorded run: finished with ``accuracy`` (evaluations at rounds 4 and 9 of 10), or (None)
    diverged in ``diverged_round``."""
    done = 10 if accuracy is not None else diverged_round
    rows = [{"round": r, "train_loss": 1.0 + r, "channel_uses": 100} for r in range(done)]
    for r in rows[4::5]:
        r["test_accuracy"] = accuracy if accuracy is not None else 0.1
    summary = {"rounds": done, "test_accuracy": accuracy, "status": "finished", "environment": HERE}
    if accuracy is None:
        summary.update(status="diverged", error=f"round {diverged_round}: the loss is not finite; stopped")
    stored = rows if whole else T.evaluation_rows(rows)
    return T.Record(name or f"cell/seed={seed}", Path("/nowhere"), {"seed": seed}, summary, stored, whole)


def rerun_of(rec, **changes) -> object:
    """A re-run of ``rec``: its whole history, with ``changes`` to the summary."""
    full = record(rec.seed, rec.summary["test_accuracy"] if rec.status == "finished" else None)
    full.summary.update(changes)
    return full


def candidate(rec, cell: list) -> object:
    return R.Candidate("t", "cell", rec, cell, {"machine": {"cpu_model": "Test CPU"}}, ACCURACY)


# ---------------------------------------------------------------------------- exact
def test_an_identical_rerun_passes_the_exact_check():
    for whole in (True, False):  # the whole history stored, or its evaluation rows
        rec = record(0, 0.8, whole=whole)
        verdict = R.judge(candidate(rec, [rec]), rerun_of(rec), None, exact=True)
        assert (verdict.verdict, verdict.expected, verdict.recorded, verdict.rerun) == (
            "ok",
            "exact",
            "0.8",
            "0.8",
        )
    rec = record(0, None)
    assert R.judge(candidate(rec, [rec]), record(0, None), None, exact=True).verdict == "ok"


def test_the_exact_check_catches_each_difference():
    rec = record(0, 0.8, whole=False)
    assert R.difference(rec, rerun_of(rec, test_accuracy=0.8000001), ACCURACY) == (
        "test_accuracy 0.8000001 (recorded 0.8)"
    )
    changed = rerun_of(rec)
    changed.rows[4]["train_loss"] = 5.000001
    assert R.difference(rec, changed, ACCURACY) == "round 4: train_loss 5.000001 (recorded 5.0)"
    changed = rerun_of(rec)
    changed.rows[9]["new_key"] = 1  # a key the record does not have is not compared
    assert R.difference(rec, changed, ACCURACY) is None
    del changed.rows[9]["channel_uses"]
    assert R.difference(rec, changed, ACCURACY) == "round 9: channel_uses '(absent)' (recorded 100)"
    assert R.difference(rec, record(0, None), ACCURACY) == "status diverged (recorded finished)"
    assert R.difference(record(0, None), record(0, None, diverged_round=8), ACCURACY) == (
        "diverged in round 8 (recorded round 7)"
    )
    verdict = R.judge(candidate(rec, [rec]), rerun_of(rec, test_accuracy=0.81), None, exact=True)
    assert verdict.verdict == "FAIL" and verdict.why.startswith("test_accuracy 0.81")
    failed = R.judge(candidate(rec, [rec]), None, "the run failed (exit 2): config error", exact=True)
    assert (failed.verdict, failed.rerun, failed.why) == (
        "FAIL",
        "failed",
        "the run failed (exit 2): config error",
    )


# ------------------------------------------------------------------------- interval
def test_the_prediction_interval_by_hand():
    """Seeds 0.80, 0.84, 0.88: mean 0.84, sd 0.04; t_{0.975, 2} = 4.3026527 and sqrt(1 + 1/3):
    0.84 +- 4.3026527 * 0.04 * 1.1547005 = 0.84 +- 0.1987310, i.e. [0.6412690, 1.0387310]."""
    low, high = R.prediction_interval([0.80, 0.84, 0.88])
    assert (low, high) == pytest.approx((0.6412690, 1.0387310), abs=1e-7)
    assert R.prediction_interval([0.8]) is None
    cell = [record(0, 0.80), record(1, 0.84), record(2, 0.88)]
    inside = R.judge(candidate(cell[0], cell), rerun_of(cell[0], test_accuracy=0.6413), None, exact=False)
    assert (inside.verdict, inside.expected) == ("ok", "[0.6413, 1.039]")
    outside = R.judge(candidate(cell[0], cell), rerun_of(cell[0], test_accuracy=0.6412), None, exact=False)
    assert (outside.verdict, outside.why) == ("FAIL", "outside the cell's 95% prediction interval")


def test_divergence_away_from_the_recording_machine():
    finished = [record(0, 0.80), record(1, 0.84), record(2, 0.88)]
    verdict = R.judge(candidate(finished[0], finished), record(0, None), None, exact=False)
    assert (verdict.verdict, verdict.why) == ("FAIL", "diverged; no run of its cell diverged")
    mixed = [record(0, 0.80), record(1, 0.84), record(2, None)]
    verdict = R.judge(candidate(mixed[0], mixed), record(0, None), None, exact=False)
    assert (verdict.verdict, verdict.rerun) == ("note", "diverged (round 7)")
    verdict = R.judge(candidate(mixed[2], mixed), record(2, None, diverged_round=3), None, exact=False)
    assert (verdict.verdict, verdict.recorded, verdict.rerun) == (
        "ok",
        "diverged (round 7)",
        "diverged (round 3)",
    )
    verdict = R.judge(candidate(mixed[2], mixed), record(2, 0.9), None, exact=False)
    assert (
        verdict.verdict == "note"
        and verdict.why == "finished (inside the cell's interval); recorded diverged"
    )
    one = [record(0, 0.80), record(1, None), record(2, None)]
    verdict = R.judge(candidate(one[0], one), rerun_of(one[0], test_accuracy=0.5), None, exact=False)
    assert (verdict.verdict, verdict.expected) == ("note", "-")


# -------------------------------------------------------------------- the machine
def test_the_machine_matches_on_fingerprint_and_torch():
    rec = record(0, 0.8)
    c = candidate(rec, [rec])
    assert R.same_machine(c, dict(HERE))[0]
    assert not R.same_machine(c, {**HERE, "kernel_fingerprint": "beef"})[0]
    same, why = R.same_machine(c, {**HERE, "torch": "2.14.1"})
    assert not same and "torch 2.14.1 (recorded 2.13.0)" in why
    # no fingerprint on either side: the CPU model and torch decide
    del rec.summary["environment"]
    c.manifest.update(
        packages={"torch": T.packages()["torch"]}, machine={"cpu_model": T.machine()["cpu_model"]}
    )
    assert R.same_machine(c, None) == (
        True,
        f"no kernel fingerprint to compare; CPU {T.machine()['cpu_model']}, torch {T.packages()['torch']} "
        "(as recorded)",
    )
    c.manifest["machine"]["cpu_model"] = "Another CPU"
    assert not R.same_machine(c, None)[0]


# --------------------------------------------------------------- cells and the command
def _data(tmp_path: Path) -> Path:
    """A data folder of one table without a spec: two cells (energy 10: seeds 0, 1; energy 100: seed 0)."""
    for energy, seeds in ((10, (0, 1)), (100, (0,))):
        for seed in seeds:
            folder = tmp_path / "sweep" / "digits" / f"power.energy={energy},seed={seed}"
            folder.mkdir(parents=True)
            config = {"seed": seed, "power": {"energy": energy}, "data": {"name": "digits"}}
            (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
            (folder / "history.jsonl").write_text('{"round": 0, "test_accuracy": 0.5}\n')
            summary = {
                "rounds": 1,
                "test_accuracy": 0.5,
                "status": "finished",
                "wall_time_s": 10.0 * energy + seed,
            }
            (folder / "summary.json").write_text(json.dumps({**summary, "environment": HERE}))
    T.collect(
        "tiny",
        [tmp_path / "sweep"],
        data_root=tmp_path / "data",
        keep_all=True,
        commit="0" * 40,
        log=lambda *_: None,
    )
    return tmp_path / "data"


def test_cells_and_the_shortest(tmp_path):
    found = R.candidates(_data(tmp_path))
    assert [(c.cell, c.record.seed) for c in found] == [
        ("sweep/digits/power.energy=10", 0),
        ("sweep/digits/power.energy=10", 1),
        ("sweep/digits/power.energy=100", 0),
    ]
    assert [c.record.wall_time_s for c in R.shortest_cell(found)] == [100.0, 101.0]  # 201 s against 1,000 s
    assert len(R.candidates(tmp_path / "data", run="sweep/digits/power.energy=100,seed=0")) == 1


def _reproduce(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "docs" / "reproduce.py"), *args], cwd=ROOT, capture_output=True, text=True
    )


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    data = _data(tmp_path)
    for args, message in [
        (["--sample", "0"], "reproduce.py: --sample 0: a number of runs >= 1"),
        (["--data", str(tmp_path / "none")], f"reproduce.py: --data {tmp_path / 'none'}: no recorded run"),
        (["--data", str(data), "--table", "nosuch"], "reproduce.py: --table nosuch: no data in"),
        (
            ["--data", str(data), "--cell", "nosuch"],
            "reproduce.py: --cell nosuch: no such cell (cells: sweep/",
        ),
        (["--data", str(data), "--run", "nosuch"], "reproduce.py: --run nosuch: no such recorded run"),
    ]:
        result = _reproduce(*args)
        assert result.returncode == 2 and result.stderr.startswith(message), (args, result.stderr)
        assert result.stderr.count("\n") == 1


# ---------------------------------------------------------------------- real re-runs
def _tiny_data(tmp_path: Path) -> Path:
    """Until docs/data holds the campaign's runs: one tiny real run (digits, a linear model, 4
    clients, 3 rounds), recorded as the collector records a table."""
    run = tmp_path / "tiny" / "run"
    command = [sys.executable, "-m", "federated.cli", "run", "configs/digits_laser.yaml", "model.name=linear"]
    command += ["rounds=3", "clients.num_clients=4", "eval_every=2", f"data.root={ROOT / 'data'}", "-qq"]
    made = subprocess.run([*command, "--out", str(run)], cwd=ROOT, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    T.collect(
        "tiny", [run.parent], data_root=tmp_path / "data", keep_all=True, commit="0" * 40, log=lambda *_: None
    )
    return tmp_path / "data"


@pytest.mark.slow
def test_the_shortest_recorded_cell_reproduces_and_a_tampered_record_fails(tmp_path):
    data = T.DATA if T.tables_with_data(T.DATA) else _tiny_data(tmp_path)
    keep = ["--keep", str(tmp_path / "kept"), "--data-root", str(ROOT / "data")]
    result = _reproduce("--shortest", "--data", str(data), *keep)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " FAIL" not in result.stdout and "re-runs pass their check" in result.stdout
    # the same check on a copy whose recorded metric moved: exact, or (another machine) outside the interval
    cell = R.shortest_cell(R.candidates(data))
    chosen = next(c for c in cell if c.record.status == "finished")
    key = R._summary_key(chosen.metric)
    tampered = tmp_path / "tampered"
    shutil.copytree(data / chosen.table, tampered / chosen.table)
    for c in cell:
        if c.record.status == "finished":
            path = tampered / chosen.table / "records" / c.record.name / "summary.json"
            summary = json.loads(path.read_text())
            assert isinstance(summary[key], float) and math.isfinite(summary[key])
            path.write_text(json.dumps({**summary, key: summary[key] + 0.5}))
    result = _reproduce(
        "--data", str(tampered), "--run", chosen.record.name, *keep, "--reuse"
    )  # judged again
    assert result.returncode == 1, result.stdout + result.stderr
    assert " FAIL " in result.stdout and "0 of 1 re-runs pass their check, 1 FAIL" in result.stdout
