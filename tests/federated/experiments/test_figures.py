"""The figures of ``laser plot`` say what they show (issue 22): the title and band for the seeds
present, diverged runs marked in every panel, a distinct style for every configuration, round panels
in numeric order and a subtitle naming the task, model, clients and channel. Figures are built from
hand-made sweep directories (config.yaml, summary.json, history.jsonl) or rows, and checked on the
matplotlib Figure objects."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.colors
import pytest
import yaml

from federated.config import config_to_dict, load_config
from federated.experiments.plots import _draw_metric_vs_round, _draw_metric_vs_x
from federated.experiments.results import load_runs, round_curves, summarize


def write_run(path: Path, overrides: list[str], curve: list[float | None], diverged: bool = False) -> None:
    """A run directory as ``laser run`` writes it: one history record per round with the accuracy of
    ``curve`` (None: not evaluated); a diverged run stops after the last record."""
    path.mkdir(parents=True)
    config = config_to_dict(load_config(None, ["data.name=digits", "clients.num_clients=4", *overrides]))
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    records = [
        {"round": t, "train_loss": 1.0, **({"test_accuracy": a} if a is not None else {})}
        for t, a in enumerate(curve)
    ]
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = (
        {"status": "diverged", "error": f"round {len(curve)}: the training loss is not finite"}
        if diverged
        else {"status": "finished", "rounds": len(curve), "test_accuracy": curve[-1]}
    )
    (path / "summary.json").write_text(json.dumps(summary))


def _table(root: Path, x: str | None = None):
    return summarize(load_runs(root), x=x)


def _plot_dir(root: Path) -> Path:
    from federated.cli import main

    assert main(["plot", str(root), "--out", str(root / "figures")]) == 0
    return root / "figures"


def _suptitle(fig) -> list[str]:
    """A figure's heading: the figure's title, or its one axes' (the energy figure's, so that a legend
    outside on the right stays clear of it)."""
    return (fig.get_suptitle() or fig.axes[0].get_title()).split("\n")


def _data_lines(ax) -> list:
    """The metric's lines of an axes (not the diverged markers, not reference lines)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def _x_marks(ax) -> list:
    return [line for line in ax.get_lines() if line.get_marker() == "x"]


# 1. the title and the band for the seeds present


def test_one_seed_has_no_band_and_a_title_without_a_confidence_interval(tmp_path, capsys):
    from federated.experiments.commands import caption as _caption

    for energy in (10, 100):
        write_run(tmp_path / f"E={energy}", [f"power.energy={energy}"], [0.2, 0.4, 0.5])
    table = _table(tmp_path)
    caption = _caption(table)
    assert caption == "test accuracy after 300 rounds: seed 0, one run per point (no confidence interval)"
    assert "confidence interval over" not in caption and "95%" not in caption
    fig = _draw_metric_vs_round(round_curves(table), metric="test_accuracy", title=caption)
    assert all(len(ax.collections) == 0 for ax in fig.axes)  # no band of zero width
    assert _suptitle(fig)[0] == caption
    ax = _draw_metric_vs_x(table.best("laser"), metric="test_accuracy", x="power.energy").axes[0]
    assert len(ax.collections) == 0 and not ax.containers


def test_several_seeds_say_t_interval_and_how_many(tmp_path):
    from federated.experiments.commands import caption as _caption

    for seed in (0, 1, 2):
        for energy in (10, 100):
            write_run(
                tmp_path / f"E={energy},seed={seed}",
                [f"power.energy={energy}", f"seed={seed}"],
                [0.2, 0.3 + 0.05 * seed, 0.4 + 0.1 * seed],
            )
    after = "test accuracy after 300 rounds: "
    assert _caption(_table(tmp_path)) == after + "mean and 95% t-interval over 3 seeds (0, 1, 2)"
    fig = _draw_metric_vs_round(round_curves(_table(tmp_path)), metric="test_accuracy")
    assert all(len(ax.collections) == 1 for ax in fig.axes)  # the band
    # a cell with one seed fewer: its band is the two seeds' range
    write_run(tmp_path / "E=1000,seed=0", ["power.energy=1000", "seed=0"], [0.3, 0.5, 0.6])
    write_run(tmp_path / "E=1000,seed=1", ["power.energy=1000", "seed=1"], [0.3, 0.5, 0.7])
    assert _caption(_table(tmp_path)) == (
        after + "mean over 2-3 seeds (0, 1, 2), band: 95% t-interval where 3 seeds, range where 2"
    )
    # and with one seed at some point, that point has no band
    write_run(tmp_path / "E=5,seed=0", ["power.energy=5", "seed=0"], [0.3, 0.5, 0.6])
    assert _caption(_table(tmp_path)) == (
        after + "mean over 1-3 seeds (0, 1, 2), band: 95% t-interval where 3 seeds, range where 2"
    )


# 2. diverged runs marked in every panel


@pytest.fixture
def diverging_sweep(tmp_path):
    """LASER finishes at both energies; Z-SGD diverges at E = 10 (both seeds, after two rounds) and
    once of two seeds at E = 100."""
    for seed in (0, 1):
        for energy in (10, 100):
            write_run(
                tmp_path / "laser" / f"E={energy},seed={seed}",
                [f"power.energy={energy}", f"seed={seed}"],
                [0.2, 0.4, 0.5 + 0.01 * seed],
            )
        write_run(
            tmp_path / "zsgd" / f"E=10,seed={seed}",
            ["compressor.name=zsgd", "power.energy=10", f"seed={seed}"],
            [0.1, 0.15 + 0.01 * seed],
            diverged=True,
        )
    write_run(
        tmp_path / "zsgd" / "E=100,seed=0",
        ["compressor.name=zsgd", "power.energy=100", "seed=0"],
        [0.1, 0.3, 0.45],
    )
    write_run(
        tmp_path / "zsgd" / "E=100,seed=1",
        ["compressor.name=zsgd", "power.energy=100", "seed=1"],
        [0.1],
        diverged=True,
    )
    return tmp_path


def test_a_line_whose_runs_all_diverged_is_drawn_and_ends_with_an_x(diverging_sweep):
    fig = _draw_metric_vs_round(round_curves(_table(diverging_sweep)), metric="test_accuracy")
    e10, e100 = fig.axes
    assert e10.get_title() == "E = 10"
    zsgd = [line for line in _data_lines(e10) if line.get_label() == "Z-SGD"]
    assert len(zsgd) == 1  # the legend lists it: the panel draws it
    assert zsgd[0].get_xdata().tolist() == [1, 2]
    assert zsgd[0].get_ydata().tolist() == pytest.approx([10.0, 15.5])
    (mark,) = _x_marks(e10)
    assert (mark.get_xdata().tolist(), mark.get_ydata().tolist()) == ([2], [pytest.approx(15.5)])
    assert mark.get_color() == zsgd[0].get_color()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["LASER", "Z-SGD", "diverged"]


def test_a_run_that_diverged_among_finished_seeds_is_marked_at_its_round(diverging_sweep):
    fig = _draw_metric_vs_round(round_curves(_table(diverging_sweep)), metric="test_accuracy")
    e100 = fig.axes[1]
    (zsgd,) = [line for line in _data_lines(e100) if line.get_label() == "Z-SGD"]
    assert zsgd.get_ydata().tolist() == pytest.approx([10.0, 30.0, 45.0])  # the finished seed
    (mark,) = _x_marks(e100)
    assert mark.get_xdata().tolist() == [2]  # recorded round 0, diverged in the next
    assert mark.get_transform() == e100.get_xaxis_transform()  # at the bottom edge


def test_energy_figure_marks_partly_diverged_points_too(diverging_sweep):
    table = _table(diverging_sweep)
    rows = [r for r in table.rows if r["selection"] == "best_lr"]
    ax = _draw_metric_vs_x(rows, metric="test_accuracy", x="power.energy").axes[0]
    (mark,) = _x_marks(ax)
    assert mark.get_xdata().tolist() == [10.0, 100.0]
    assert [t.get_text() for t in ax.texts] == ["1/2", "diverged"]  # one of two seeds at E = 100; the strip
    assert "diverged (k/n: k of n seeds)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_laser_plot_draws_the_diverged_line_in_the_round_figure(diverging_sweep):
    from federated.experiments.commands import caption as _caption

    table = _table(diverging_sweep)
    assert {c["panel"] for c in round_curves(table) if c["method"] == "zsgd"} == {"E = 10", "E = 100"}
    assert (
        _caption(table) == "test accuracy after 300 rounds: mean over 1-2 seeds (0, 1), band: range where 2"
    )
    assert (_plot_dir(diverging_sweep) / "test_accuracy_vs_round.png").stat().st_size > 0


# 3. a distinct style for every distinct configuration


def _style(line) -> tuple:
    return (matplotlib.colors.to_hex(line.get_color()), line.get_marker(), line.get_linestyle())


def test_runs_differing_only_in_rounds_get_distinct_styles_and_labels(tmp_path):
    for rounds in (2, 3, 10, 100):
        for energy in (10, 100):
            write_run(
                tmp_path / f"rounds={rounds},E={energy}",
                [f"rounds={rounds}", f"power.energy={energy}"],
                [0.2, 0.4 + rounds / 1000],
            )
    table = _table(tmp_path)
    rows = [r for r in table.rows if r["selection"] == "best_lr"]
    ax = _draw_metric_vs_x(rows, metric="test_accuracy", x="power.energy").axes[0]
    lines = _data_lines(ax)
    labels = [line.get_label() for line in lines]
    assert sorted(labels) == sorted(f"LASER, rounds={r}" for r in (2, 3, 10, 100))
    assert len({_style(line) for line in lines}) == 4
    assert len({line.get_marker() for line in lines}) == 4  # apart in black and white too
    fig = _draw_metric_vs_round(round_curves(table), metric="test_accuracy")
    for panel in fig.axes:
        assert len({_style(line) for line in _data_lines(panel)}) == 4
    order = [t.get_text() for t in fig.legends[0].get_texts()]
    styles = {line.get_label(): _style(line) for line in _data_lines(fig.axes[0])}
    assert styles["LASER, rounds=2"][1:] == ("o", "-")  # the first, in numeric order, keeps the marker
    assert len(order) == 4


def test_many_variants_and_references_stay_distinct():
    rows = [
        {"method": f"laser, compressor.rank={r}", "x": e, "mean": 0.5, "ci_low": 0.5, "ci_high": 0.5}
        for r in range(1, 15)
        for e in (10, 100)
    ]
    references = [{"label": f"noiseless SGD, rounds={r}", "mean": 0.9} for r in range(5)]
    ax = _draw_metric_vs_x(rows, metric="test_accuracy", x="power.energy", references=references).axes[0]
    lines = _data_lines(ax)
    assert len(lines) == 19 and len({_style(line) for line in lines}) == 19


def test_a_grid_key_beside_a_non_energy_x_axis_names_its_own_lines(tmp_path):
    # --x compressor.rank over runs that also differ in energy: each energy a line, not averaged
    for rank in (1, 2):
        for energy in (10, 1000):
            write_run(
                tmp_path / f"rank={rank},E={energy}",
                [f"compressor.rank={rank}", f"power.energy={energy}"],
                [0.2, 0.3 if energy == 10 else 0.8],
            )
    table = _table(tmp_path, x="compressor.rank")
    assert table.methods == ["laser, power.energy=10", "laser, power.energy=1000"]
    assert all(r["n"] == 1 for r in table.rows if r["selection"] == "best_lr")
    rows = [r for r in table.rows if r["selection"] == "best_lr"]
    ax = _draw_metric_vs_x(rows, metric="test_accuracy", x="compressor.rank").axes[0]
    assert len({_style(line) for line in _data_lines(ax)}) == 2


# 4. round panels in numeric order


def test_round_panels_come_in_numeric_order_of_the_energy(tmp_path):
    # LASER only at 10 and 1000, Z-SGD at 100: the order of appearance was E = 10, 1000, 100
    for energy in (10, 1000):
        write_run(tmp_path / f"laser,E={energy}", [f"power.energy={energy}"], [0.2, 0.5])
    write_run(tmp_path / "zsgd,E=100", ["compressor.name=zsgd", "power.energy=100"], [0.2, 0.5])
    write_run(tmp_path / "noiseless", ["channel.name=noiseless", "compressor.name=zsgd"], [0.3, 0.9])
    curves = round_curves(_table(tmp_path))
    fig = _draw_metric_vs_round(curves, metric="test_accuracy")
    assert [ax.get_title() for ax in fig.axes] == ["E = 10", "E = 100", "E = 1000"]
    assert all("noiseless SGD" in [line.get_label() for line in ax.get_lines()] for ax in fig.axes)
    # curves without x: the number that ends each panel's title
    bare = [{k: v for k, v in c.items() if k != "x"} for c in curves]
    assert [ax.get_title() for ax in _draw_metric_vs_round(bare, metric="test_accuracy").axes] == [
        "E = 10",
        "E = 100",
        "E = 1000",
    ]


# 5. a subtitle naming the task, model, clients and channel


def test_figures_name_task_model_clients_and_channel(tmp_path):
    common = [
        "model.name=mlp",
        "clients.num_clients=8",
        "clients.per_round=4",
        "channel.power_control=truncated",
    ]
    for channel in ("awgn", "rayleigh"):
        for seed in (0, 1):
            write_run(
                tmp_path / f"{channel},seed={seed}",
                [*common, f"channel.name={channel}", f"seed={seed}", f"power.energy={10 + 90 * seed}"],
                [0.2, 0.5 + 0.1 * seed],
            )
    write_run(tmp_path / "noiseless", [*common, "channel.name=noiseless", "compressor.name=zsgd"], [0.3, 0.9])
    from federated.experiments.commands import subtitle as _subtitle

    subtitle = _subtitle(_table(tmp_path, x="power.energy"))
    assert subtitle == (
        "task digits · model mlp · 8 clients, 4 per round · channel awgn/rayleigh, truncated power control"
    )
    figures = _plot_dir(tmp_path)
    assert (figures / "test_accuracy_vs_round.pdf").stat().st_size > 0
    table = _table(tmp_path, x="power.energy")
    fig = _draw_metric_vs_round(round_curves(table), metric="test_accuracy", title="t", subtitle=subtitle)
    assert _suptitle(fig) == ["t", subtitle]
    rows = [r for r in table.rows if r["selection"] == "best_lr"]
    fig = _draw_metric_vs_x(rows, metric="test_accuracy", x="power.energy", title="t", subtitle=subtitle)
    assert _suptitle(fig) == ["t", subtitle]


def test_a_long_subtitle_stays_one_shortened_line():
    from federated.experiments.plots import runs_subtitle

    configs = [
        {"data.name": f"dataset_with_a_long_name_{k}", "model.name": "transformer", "channel.name": "tdl"}
        for k in range(6)
    ]
    line = runs_subtitle(configs)
    assert "\n" not in line and len(line) <= 110 and line.endswith("…")
    assert line.startswith("task dataset_with_a_long_name_0/")


# 6. a short sweep's figures do not mislead (issue 29): the round axis from 0, titles with the metric,
# rounds and seeds, the range of 2 seeds, shortened runs said so, diverged marks off the value axis


def _axes_fraction(ax, y: float) -> float:
    """Where value ``y`` sits on an axes, as a fraction of its height (0: bottom, 1: top)."""
    return float(ax.transAxes.inverted().transform(ax.transData.transform((1.0, y)))[1])


def _hatches(ax) -> list:
    return [patch for patch in ax.patches if patch.get_hatch()]


def test_the_round_axis_starts_at_round_zero_with_the_rounds_before_the_first_evaluation_hatched():
    curves = [
        {"method": m, "panel": "E = 100", "round": [100, 150], "mean": [0.3, 0.4], "low": [0.25, 0.35]}
        for m in ("laser", "zsgd")
    ]
    curves = [{**c, "high": [v + 0.05 for v in c["mean"]]} for c in curves]
    (ax,) = _draw_metric_vs_round(curves, metric="test_accuracy").axes
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] >= 150
    assert _data_lines(ax)[0].get_xdata().tolist() == [100, 150]  # no value drawn where none was measured
    (gap,) = _hatches(ax)
    assert gap.get_x() == 0 and gap.get_width() == 100
    assert "not evaluated" in [t.get_text() for t in ax.texts]
    # evaluated from the start: nothing hatched
    (ax,) = _draw_metric_vs_round(_curves_from_zero(), metric="test_accuracy").axes
    assert ax.get_xlim()[0] == 0 and not _hatches(ax) and not ax.texts


def _curves_from_zero() -> list[dict]:
    return [
        {"method": "laser", "panel": "E = 10", "round": [0, 10, 20], "mean": [0.1, 0.4, 0.6]}
        | {"low": [0.1, 0.35, 0.55], "high": [0.1, 0.45, 0.65]}
    ]


@pytest.fixture
def two_seed_sweep(tmp_path):
    """The issue's short sweep in small: LASER at 3 energies and noiseless SGD, 2 seeds, 150 rounds,
    evaluated at rounds 100 and 150 (records 99 and 149); Z-SGD diverges at E = 10."""
    for seed in (0, 1):
        for energy, accuracy in ((10, 0.25), (100, 0.35), (1000, 0.40)):
            curve: list[float | None] = [None] * 150
            curve[99], curve[149] = accuracy - 0.1 + 0.02 * seed, accuracy + 0.04 * seed
            write_run(
                tmp_path / "laser" / f"E={energy},seed={seed}",
                ["rounds=150", "eval_every=100", f"power.energy={energy}", f"seed={seed}"],
                curve,
            )
        write_run(
            tmp_path / "zsgd" / f"E=10,seed={seed}",
            ["rounds=150", "eval_every=100", "compressor.name=zsgd", "power.energy=10", f"seed={seed}"],
            [None] * 120,
            diverged=True,
        )
        curve = [None] * 150
        curve[99], curve[149] = 0.48, 0.5 + 0.16 * seed
        write_run(
            tmp_path / "noiseless" / f"seed={seed}",
            [
                "rounds=150",
                "eval_every=100",
                "channel.name=noiseless",
                "compressor.name=zsgd",
                f"seed={seed}",
            ],
            curve,
        )
    return tmp_path


def test_titles_say_the_metric_the_rounds_and_the_seeds(two_seed_sweep, monkeypatch):
    from federated.experiments import plot_partition, plot_vs_round, plot_vs_x
    from federated.experiments.commands import caption as _caption

    table = _table(two_seed_sweep)
    assert _caption(table) == "test accuracy after 150 rounds: mean and range of 2 seeds (0, 1)"
    assert (
        _caption(table, over_rounds=True) == "test accuracy over 150 rounds: mean and range of 2 seeds (0, 1)"
    )
    drawn = {}
    for module in (plot_vs_x, plot_vs_round, plot_partition):  # where each figure is saved
        monkeypatch.setattr(module, "_save", lambda fig, stem: drawn.setdefault(Path(stem).name, fig) and [])
    _plot_dir(two_seed_sweep)
    assert _suptitle(drawn["test_accuracy_vs_energy"])[0] == _caption(table)
    assert _suptitle(drawn["test_accuracy_vs_round"])[0] == _caption(table, over_rounds=True)


def test_two_seeds_draw_their_range_and_three_the_t_interval(two_seed_sweep):
    from scipy import stats

    from federated.experiments.results import figure_rows

    table = _table(two_seed_sweep)
    curves = {(c["method"], c["panel"]): c for c in round_curves(table)}
    laser = curves[("laser", "E = 1000")]
    assert laser["round"] == [100, 150]
    assert laser["mean"] == pytest.approx([0.31, 0.42]) and laser["low"] == pytest.approx([0.30, 0.40])
    assert laser["high"] == pytest.approx([0.32, 0.44])  # the seeds' range, not 0.42 ± 0.25
    reference = curves[("noiseless SGD", "E = 10")]
    assert (reference["low"][-1], reference["high"][-1]) == pytest.approx((0.5, 0.66))
    rows, references = figure_rows(table)
    references = [{**r, "label": r["method"]} for r in references]
    ax = _draw_metric_vs_x(rows, metric="test_accuracy", x="power.energy", references=references).axes[0]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]  # LASER's
    assert (band.min(), band.max()) == pytest.approx((25.0, 44.0))
    (span,) = [p for p in ax.patches if p.get_y() > 1]  # the reference's band (the strip's y is 0)
    assert (span.get_y(), span.get_y() + span.get_height()) == pytest.approx((50.0, 66.0))
    # the summary table keeps the t-interval of every cell
    (cell,) = [r for r in table.best("laser") if r["x"] == 1000]
    half = stats.t.ppf(0.975, 1) * stats.tstd([0.40, 0.44]) / 2**0.5
    assert cell["ci_high"] - cell["mean"] == pytest.approx(half) and half > 0.25
    # from 3 seeds on: the t-interval
    for seed in (2, 3):
        curve: list[float | None] = [None] * 150
        curve[99], curve[149] = 0.30, 0.40 + 0.04 * seed
        write_run(
            two_seed_sweep / "laser" / f"E=1000,seed={seed}",
            ["rounds=150", "eval_every=100", "power.energy=1000", f"seed={seed}"],
            curve,
        )
    (cell,) = [r for r in figure_rows(_table(two_seed_sweep))[0] if r["method"] == "laser" and r["x"] == 1000]
    finals = [0.40 + 0.04 * seed for seed in range(4)]
    sd = stats.tstd(finals)
    assert cell["ci_high"] - cell["mean"] == pytest.approx(stats.t.ppf(0.975, 3) * sd / 2)


def _mnist1d_run(path: Path, config: str, overrides: list[str]) -> None:
    """A run of shipped config ``config`` (with ``overrides``) at ``path``, 2 evaluations."""
    from federated.config import find_config

    rounds = int(next((o.split("=")[1] for o in overrides if o.startswith("rounds=")), 600))
    path.mkdir(parents=True)
    stored = config_to_dict(load_config(find_config(config), overrides))
    (path / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    records = [{"round": t, "train_loss": 1.0, "test_accuracy": 0.5} for t in (rounds // 2 - 1, rounds - 1)]
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "summary.json").write_text(
        json.dumps({"status": "finished", "rounds": rounds, "test_accuracy": 0.5})
    )


def test_a_sweep_shorter_than_its_shipped_configs_says_so(tmp_path):
    from federated.experiments.commands import subtitle as _subtitle
    from federated.experiments.results import documented_rounds

    for config in ("mnist1d_laser", "mnist1d_zsgd"):
        for energy in (10, 100):
            _mnist1d_run(tmp_path / config / f"E={energy}", config, ["rounds=150", f"power.energy={energy}"])
    _mnist1d_run(tmp_path / "mnist1d_noiseless" / "seed=0", "mnist1d_noiseless", ["rounds=150"])
    table = _table(tmp_path)
    line, note = _subtitle(table).split("\n")
    assert line.startswith("task mnist1d · model cnn")
    assert note == "shortened runs: 150 of the 600 rounds that their 3 configs document"
    assert [documented_rounds(run) for run in table.plotted_runs()][:1] == [("mnist1d_laser", 600)]
    # at the documented length: nothing to say
    full = tmp_path / "full"
    _mnist1d_run(full / "mnist1d_laser" / "E=10", "mnist1d_laser", ["power.energy=10"])
    _mnist1d_run(full / "mnist1d_laser" / "E=100", "mnist1d_laser", ["power.energy=100"])
    assert "\n" not in _subtitle(_table(full))


def test_the_documented_rounds_come_from_the_shipped_config_of_the_sweeps_folder(tmp_path):
    from federated.experiments.results import documented_rounds, load_runs

    _mnist1d_run(tmp_path / "mnist1d_laser" / "p", "mnist1d_laser", ["rounds=150"])
    _mnist1d_run(tmp_path / "gpt2_laser" / "p", "mnist1d_laser", ["rounds=150"])  # another config's name
    _mnist1d_run(tmp_path / "mine" / "p", "mnist1d_laser", ["rounds=150"])  # no shipped config of that name
    write_run(tmp_path / "digits" / "mnist1d_laser" / "p", ["rounds=150"], [0.5])  # the name, another task
    found = {
        run.path.relative_to(tmp_path).parent.as_posix(): documented_rounds(run)
        for run in load_runs(tmp_path)
    }
    assert found == {
        "mnist1d_laser": ("mnist1d_laser", 600),
        "gpt2_laser": None,
        "mine": None,
        "digits/mnist1d_laser": None,
    }


def test_diverged_marks_sit_in_a_labelled_strip_below_every_value(diverging_sweep):
    table = _table(diverging_sweep)
    rows = [r for r in table.rows if r["selection"] == "best_lr"]
    ax = _draw_metric_vs_x(rows, metric="test_accuracy", x="power.energy").axes[0]
    (mark,) = _x_marks(ax)
    assert mark.get_transform() == ax.get_xaxis_transform()  # x: energy, y: a fraction of the axes
    strip_top = max(mark.get_ydata()) + 0.02
    assert strip_top < _axes_fraction(ax, 0.0)  # below 0 %: an "x" reads as no value
    assert min(ax.get_yticks()) >= 0  # no tick in the strip
    (label,) = [t for t in ax.texts if t.get_text() == "diverged"]
    assert label.get_position()[1] < _axes_fraction(ax, 0.0)
    fig = _draw_metric_vs_round(round_curves(table), metric="test_accuracy")
    e10, e100 = fig.axes
    (mark,) = _x_marks(e100)
    lowest = min(float(v) for ax in fig.axes for line in _data_lines(ax) for v in line.get_ydata())
    assert max(mark.get_ydata()) + 0.02 < _axes_fraction(e100, lowest)
    assert min(e100.get_yticks()) >= e100.get_ylim()[0] and min(e100.get_yticks()) > lowest - 10
    labels = [[t.get_text() for t in ax.texts if t.get_text() == "diverged"] for ax in (e10, e100)]
    assert labels == [["diverged"], []]  # the first column's label


def test_one_energy_and_a_reference_draw_without_warnings():
    import warnings

    rows = [{"method": "laser", "x": 100.0, "mean": 0.87, "ci_low": 0.85, "ci_high": 0.89, "n": 3}]
    reference = {"label": "noiseless SGD", "mean": 0.92, "ci_low": 0.9, "ci_high": 0.94}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = _draw_metric_vs_x(rows, metric="test_accuracy", x="power.energy", references=[reference]).axes[0]
    low, high = ax.get_xlim()
    assert low < 100 < high and high / low == pytest.approx(100.0)  # a decade on each side
