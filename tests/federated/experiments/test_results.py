"""The sweep summary's statistics on a synthetic results directory, and ``laser plot`` on it."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scipy import stats

from federated.config import config_to_dict, load_config
from federated.experiments.results import load_runs, mean_ci, round_curves, summarize
from federated.experiments.targets import energy_to_target, target_table

# t_{0.975} quantiles, from tables: 2 and 3 seeds
T1, T2 = 12.706204736174707, 4.302652729749464


def write_run(path: Path, overrides: list[str], accuracy: float | None, curve=(0.3, 0.5)) -> None:
    """A run directory as ``laser run`` writes it: ``accuracy=None`` is a diverged run."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(
        yaml.safe_dump(config_to_dict(load_config(None, overrides)), sort_keys=False)
    )
    rounds = [{"round": t, "train_loss": 1.0} for t in range(4)]
    rounds[1]["test_accuracy"], rounds[3]["test_accuracy"] = (
        curve[0],
        accuracy if accuracy is not None else curve[1],
    )
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rounds))
    summary = (
        {"status": "finished", "rounds": 4, "test_accuracy": accuracy}
        if accuracy is not None
        else {
            "status": "failed",
            "error": "round 2: the training loss is not finite (NaN or inf); the run stopped",
        }
    )
    (path / "summary.json").write_text(json.dumps(summary))


# method, lr, energy -> accuracies over seeds 0, 1, 2 (None: diverged)
GRID = {
    ("laser", 0.05, 10): [0.60, 0.70, 0.80],
    ("laser", 0.05, 100): [0.80, 0.82, 0.84],
    ("laser", 0.05, 1000): [0.86, 0.88, 0.90],
    ("laser", 0.01, 10): [0.75, 0.75, 0.78],  # the better lr at energy 10 only
    ("laser", 0.01, 100): [0.70, 0.71, 0.72],
    ("laser", 0.01, 1000): [0.80, 0.80, 0.80],
    ("zsgd", 0.05, 10): [None, None, None],
    ("zsgd", 0.05, 100): [0.50, None, 0.70],  # 1 of 3 diverged
    ("zsgd", 0.05, 1000): [0.88, 0.90, 0.92],
}


@pytest.fixture
def sweep_dir(tmp_path):
    for (method, lr, energy), accuracies in GRID.items():
        for seed, accuracy in enumerate(accuracies):
            write_run(
                tmp_path / method / f"lr={lr},E={energy},seed={seed}",
                [f"compressor.name={method}", f"optimizer.lr={lr}", f"power.energy={energy}", f"seed={seed}"],
                accuracy,
            )
    for seed, accuracy in enumerate([0.90, 0.92, 0.94]):
        write_run(
            tmp_path / "noiseless" / f"seed={seed}",
            ["channel.name=noiseless", "compressor.name=zsgd", f"seed={seed}"],
            accuracy,
        )
    # an unfinished run (no summary) is ignored; so is a folder that is not a run
    write_run(tmp_path / "laser" / "unfinished", ["power.energy=10", "seed=7"], 0.1)
    (tmp_path / "laser" / "unfinished" / "summary.json").unlink()
    (tmp_path / "figures").mkdir()
    return tmp_path


def test_mean_ci_is_the_student_t_interval():
    values = [0.60, 0.70, 0.80]
    mean, sd, low, high = mean_ci(values)
    assert mean == pytest.approx(0.7) and sd == pytest.approx(0.1)
    assert high - mean == pytest.approx(T2 * 0.1 / math.sqrt(3))
    assert (low, high) == pytest.approx(stats.t.interval(0.95, 2, loc=0.7, scale=0.1 / math.sqrt(3)))
    assert mean_ci([0.5])[1:] == (pytest.approx(math.nan, nan_ok=True), 0.5, 0.5)
    assert all(math.isnan(v) for v in mean_ci([]))


def test_cells_over_seeds_with_divergence_counted_apart(sweep_dir):
    runs = load_runs(sweep_dir)
    assert len(runs) == 31 and sum(r.status == "unfinished" for r in runs) == 1
    table = summarize(runs)
    assert table.metric == "test_accuracy" and table.x == "power.energy"
    plain = {(r["method"], r["lr"], r["x"]): r for r in table.rows if r["selection"] == "plain"}
    assert len(plain) == 9
    cell = plain[("zsgd", 0.05, 100.0)]
    assert (cell["n"], cell["n_diverged"], cell["mean"]) == (2, 1, pytest.approx(0.6))
    assert cell["ci_high"] - 0.6 == pytest.approx(T1 * math.sqrt(0.02) / math.sqrt(2))
    gone = plain[("zsgd", 0.05, 10.0)]
    assert (gone["n"], gone["n_diverged"]) == (0, 3) and math.isnan(gone["mean"])
    assert plain[("laser", 0.01, 10.0)]["mean"] == pytest.approx(0.76)
    (reference,) = table.references
    assert reference["method"] == "noiseless SGD" and reference["mean"] == pytest.approx(0.92)
    assert reference["n"] == 3


def test_best_over_learning_rate_picks_per_energy(sweep_dir):
    table = summarize(load_runs(sweep_dir))
    best = table.best("laser")
    assert [(r["x"], r["lr"]) for r in best] == [(10.0, 0.01), (100.0, 0.05), (1000.0, 0.05)]
    assert [r["mean"] for r in best] == pytest.approx([0.76, 0.82, 0.88])
    assert table.methods == ["laser", "zsgd"]


def test_energy_to_target_interpolates_on_a_log_axis(sweep_dir):
    table = summarize(load_runs(sweep_dir))
    # LASER: 0.76 at 10, 0.82 at 100 -> 0.8 at 10^(1 + 2/3)
    assert energy_to_target(table.best("laser"), 0.80, higher_is_better=True) == pytest.approx(10 ** (5 / 3))
    # Z-SGD: diverged at 10, 0.6 at 100, 0.9 at 1000 -> 0.8 at 10^(2 + 2/3)
    assert energy_to_target(table.best("zsgd"), 0.80, higher_is_better=True) == pytest.approx(10 ** (8 / 3))
    assert (
        energy_to_target(table.best("laser"), 0.70, higher_is_better=True) == 10.0
    )  # reached at the first point
    assert energy_to_target(table.best("laser"), 0.95, higher_is_better=True) is None
    target, rows = target_table(table)  # default: 90% of the noiseless reference
    assert target == pytest.approx(0.9 * 0.92)
    by_method = {r["method"]: r for r in rows}
    assert by_method["laser"]["ratio_to_laser"] == pytest.approx(1.0)
    ratio = by_method["zsgd"]["energy"] / by_method["laser"]["energy"]
    assert by_method["zsgd"]["ratio_to_laser"] == pytest.approx(ratio) and ratio > 1


def test_perplexity_is_lower_is_better():
    rows = [{"x": 1.0, "mean": 40.0}, {"x": 100.0, "mean": 20.0}]
    assert energy_to_target(rows, 30.0, higher_is_better=False) == pytest.approx(10.0)


def test_round_curves_average_the_history_over_seeds(sweep_dir):
    table = summarize(load_runs(sweep_dir))
    curves = {(c["method"], c["panel"]): c for c in round_curves(table)}
    laser_100 = curves[("laser", "E = 100")]
    assert laser_100["round"] == [2, 4]  # rounds done at each evaluation
    assert laser_100["mean"] == pytest.approx([0.3, 0.82])
    for panel in ("E = 10", "E = 100", "E = 1000"):
        assert curves[("noiseless SGD", panel)]["mean"][-1] == pytest.approx(0.92)


def laser(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "federated.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_plot_writes_png_and_pdf_figures(sweep_dir):
    result = laser("plot", str(sweep_dir), cwd=sweep_dir)
    assert result.returncode == 0, result.stderr
    for name in ("test_accuracy_vs_energy", "test_accuracy_vs_round"):
        assert (sweep_dir / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert (sweep_dir / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert str(sweep_dir / "figures" / "test_accuracy_vs_energy.pdf") in result.stdout
    only = laser("plot", str(sweep_dir), "--methods", "zsgd", "--out", str(sweep_dir / "zsgd"), cwd=sweep_dir)
    assert only.returncode == 0, only.stderr
    assert (sweep_dir / "zsgd" / "test_accuracy_vs_energy.png").stat().st_size > 0


def test_plot_refuses_a_directory_without_runs_or_metric(tmp_path, sweep_dir):
    (tmp_path / "empty").mkdir()
    for args, words in (
        (["plot", str(tmp_path / "empty")], "finished runs"),
        (["plot", str(tmp_path / "nowhere")], "an existing directory"),
        (["plot", str(sweep_dir), "--metric", "test_perplexity"], "--metric"),
        (["plot", str(sweep_dir), "--methods", "laser,lasr"], "--methods"),
    ):
        result = laser(*args, cwd=tmp_path)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_the_summary_csv_of_a_synthetic_sweep(sweep_dir):
    from federated.experiments.results import write_csv

    table = summarize(load_runs(sweep_dir))
    rows = list(csv.DictReader(open(write_csv(table.rows, sweep_dir / "summary.csv"))))
    assert {r["selection"] for r in rows} == {"plain", "best_lr", "reference"}
    assert "_runs" not in rows[0]
    gone = next(r for r in rows if r["method"] == "zsgd" and r["x"] == "10.0" and r["selection"] == "best_lr")
    assert gone["mean"] == "" and gone["n_diverged"] == "3"


def test_snr_to_target_interpolates_in_db_and_reports_the_difference():
    rows = [{"x": -10.0, "mean": 0.5}, {"x": 0.0, "mean": 0.9}]
    assert energy_to_target(rows, 0.8, higher_is_better=True, log_x=False) == pytest.approx(-2.5)
    from federated.experiments.results import SweepTable

    table = SweepTable("test_accuracy", "power.snr_db")
    for method, means in (("laser", (0.5, 0.9)), ("zsgd", (0.3, 0.7))):
        for x, mean in zip((-10.0, 0.0), means):
            table.rows.append(
                {"selection": "best_lr", "method": method, "x": x, "mean": mean, "n": 1, "n_diverged": 0}
            )
    target, rows = target_table(table, 0.6)
    by_method = {r["method"]: r for r in rows}
    assert by_method["laser"]["snr_db"] == pytest.approx(-7.5) and by_method["zsgd"][
        "snr_db"
    ] == pytest.approx(-2.5)
    assert by_method["zsgd"]["db_above_laser"] == pytest.approx(5.0)


def test_the_printed_table_shows_every_cell_and_a_reference_only_sweep(sweep_dir):
    from federated.experiments.results import format_table

    text = format_table(summarize(load_runs(sweep_dir)))
    assert "E=10" in text and "E=1000" in text
    assert "diverged (3/3)" in text  # Z-SGD at energy 10
    assert f"76.0 ± {100 * T2 * 0.01732051 / math.sqrt(3):.1f}" in text  # LASER at 10, best lr
    only = format_table(summarize([r for r in load_runs(sweep_dir) if "noiseless" in str(r.path)]))
    assert "noiseless SGD" in only and "92.0 ±" in only


def test_mixed_directories_group_what_belongs_together(sweep_dir):
    # an SNR run in an energy sweep's directory stays out of the energy curves (no crash)
    write_run(sweep_dir / "snr" / "laser", ["power.energy=null", "power.snr_db=0", "seed=0"], 0.5)
    # references of different configurations are different lines; a run setting is not a method
    write_run(
        sweep_dir / "noiseless" / "fewer-clients",
        ["channel.name=noiseless", "compressor.name=zsgd", "clients.num_clients=4"],
        0.8,
    )
    write_run(
        sweep_dir / "laser" / "vmap",
        ["power.energy=10", "seed=5", "clients.vectorize=vmap", "optimizer.lr=0.05"],
        0.6,
    )
    table = summarize(load_runs(sweep_dir))
    assert table.x == "power.energy" and table.methods == ["laser", "zsgd"]
    assert [r["n"] for r in table.best("laser")] == [3, 3, 3]  # 0.01 still wins at energy 10
    assert sorted(r["method"] for r in table.references) == [
        "noiseless SGD, clients.num_clients=16",
        "noiseless SGD, clients.num_clients=4",
    ]


def test_the_baseline_is_found_under_a_suffixed_name():
    from federated.experiments.results import SweepTable

    table = SweepTable("test_accuracy", "power.energy")
    for method, means in (("laser, compressor.rank=4", (0.5, 0.9)), ("zsgd", (0.3, 0.7))):
        for x, mean in zip((10.0, 1000.0), means):
            table.rows.append(
                {"selection": "best_lr", "method": method, "x": x, "mean": mean, "n": 1, "n_diverged": 0}
            )
    _, rows = target_table(table, 0.6)
    assert {r["method"]: r["ratio_to_laser"] for r in rows}["zsgd"] == pytest.approx(10.0)  # 316 / 31.6


def _timed_run(path: Path, overrides: list[str], air_times: list[float], accuracy: float) -> None:
    """A finished run in physical units: each round's air time, evaluations at rounds 1 and 3."""
    write_run(path, [*overrides, "channel.scenario=umi", "power.energy=null"], accuracy)
    rounds = [json.loads(line) for line in (path / "history.jsonl").read_text().splitlines()]
    for record, seconds in zip(rounds, air_times):
        record["air_time_s"] = seconds
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rounds))


def test_air_time_curves_put_each_evaluation_at_the_cumulative_air_time_of_its_rounds(tmp_path):
    for seed, times in ((0, [1.0, 2.0, 1.0, 2.0]), (1, [1.0, 2.0, 1.0, 2.0])):
        _timed_run(tmp_path / f"laser{seed}", ["power.max_dbm=10", f"seed={seed}"], times, 0.8)
    for seed in (0, 1):
        _timed_run(
            tmp_path / f"zsgd{seed}",
            ["power.max_dbm=10", f"seed={seed}", "compressor.name=zsgd"],
            [10.0] * 4,
            0.9,
        )
    table = summarize(load_runs(tmp_path))
    assert table.x == "power.max_dbm"  # the swept power is found as power.energy would be
    curves = {c["method"]: c for c in round_curves(table, air_time=True)}
    assert curves["laser"]["round"] == [3.0, 6.0]  # after rounds 1 and 3: 1 + 2, then 1 + 2 + 1 + 2
    assert curves["zsgd"]["round"] == [20.0, 40.0]
    assert [c["round"] for c in round_curves(table)][0] == [2, 4]  # rounds done, as before


def test_the_snr_per_use_axis_comes_from_the_summaries_rounded_so_that_seeds_share_a_point(tmp_path):
    for energy, snrs in ((10, (-3.141, -3.139)), (100, (6.859, 6.861))):
        for seed, snr in enumerate(snrs):
            path = tmp_path / f"e{energy}_{seed}"
            write_run(path, [f"seed={seed}", f"power.energy={energy}"], 0.7 + seed / 100)
            summary = json.loads((path / "summary.json").read_text())
            (path / "summary.json").write_text(json.dumps({**summary, "snr_per_use_db": snr}))
    table = summarize(load_runs(tmp_path), x="snr_per_use_db")
    plain = [row for row in table.rows if row["selection"] == "plain"]
    # one curve (the method), a point per SNR: the swept energy is the axis, not a label
    assert {row["method"] for row in plain} == {"laser"}
    assert [(row["x"], row["n"]) for row in plain] == [(-3.14, 2), (6.86, 2)]


def test_the_privacy_epsilon_axis_comes_from_the_summaries(tmp_path):
    for energy, epsilon in ((1, 3.456), (4, 12.3)):
        for seed in (0, 1):
            path = tmp_path / f"e{energy}_{seed}"
            write_run(path, [f"seed={seed}", f"power.energy={energy}", "privacy.clip=1"], 0.6 + seed / 100)
            summary = json.loads((path / "summary.json").read_text())
            (path / "summary.json").write_text(json.dumps({**summary, "privacy_epsilon": epsilon}))
    table = summarize(load_runs(tmp_path), x="privacy_epsilon")
    plain = [row for row in table.rows if row["selection"] == "plain"]
    assert [(row["x"], row["n"]) for row in plain] == [(3.46, 2), (12.3, 2)]


def test_laser_plot_draws_the_air_time_figure_and_refuses_it_without_air_times(tmp_path, capsys):
    from federated.cli import main

    _timed_run(tmp_path / "timed" / "a", ["power.max_dbm=0"], [1.0] * 4, 0.6)
    _timed_run(tmp_path / "timed" / "b", ["power.max_dbm=10"], [1.0] * 4, 0.7)
    assert main(["plot", str(tmp_path / "timed")]) == 0
    names = {p.name for p in (tmp_path / "timed" / "figures").iterdir()}
    assert {
        "test_accuracy_vs_air_time.png",
        "test_accuracy_vs_max_dbm.png",
        "test_accuracy_vs_round.png",
    } <= names
    write_run(tmp_path / "plain" / "a", ["power.energy=10"], 0.6)
    assert main(["plot", str(tmp_path / "plain"), "--x", "air_time"]) == 2
    assert "--x = 'air_time'" in capsys.readouterr().err
