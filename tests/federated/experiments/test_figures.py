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
    from federated.cli import _caption

    for energy in (10, 100):
        write_run(tmp_path / f"E={energy}", [f"power.energy={energy}"], [0.2, 0.4, 0.5])
    table = _table(tmp_path)
    caption = _caption(table)
    assert caption == "seed 0, one run per point (no confidence interval)"
    assert "confidence interval over" not in caption and "95%" not in caption
    fig = _draw_metric_vs_round(round_curves(table), metric="test_accuracy", title=caption)
    assert all(len(ax.collections) == 0 for ax in fig.axes)  # no band of zero width
    assert _suptitle(fig)[0] == caption
    ax = _draw_metric_vs_x(table.best("laser"), metric="test_accuracy", x="power.energy").axes[0]
    assert len(ax.collections) == 0 and not ax.containers


def test_several_seeds_say_t_interval_and_how_many(tmp_path):
    from federated.cli import _caption

    for seed in (0, 1, 2):
        for energy in (10, 100):
            write_run(
                tmp_path / f"E={energy},seed={seed}",
                [f"power.energy={energy}", f"seed={seed}"],
                [0.2, 0.3 + 0.05 * seed, 0.4 + 0.1 * seed],
            )
    assert _caption(_table(tmp_path)) == "mean and 95% t-interval over 3 seeds"
    fig = _draw_metric_vs_round(round_curves(_table(tmp_path)), metric="test_accuracy")
    assert all(len(ax.collections) == 1 for ax in fig.axes)  # the band
    # a cell with one seed fewer: a range
    write_run(tmp_path / "E=1000,seed=0", ["power.energy=1000", "seed=0"], [0.3, 0.5, 0.6])
    write_run(tmp_path / "E=1000,seed=1", ["power.energy=1000", "seed=1"], [0.3, 0.5, 0.7])
    assert _caption(_table(tmp_path)) == "mean and 95% t-interval over 2-3 seeds"
    # and with one seed at some point, the interval is only where there are two or more
    write_run(tmp_path / "E=5,seed=0", ["power.energy=5", "seed=0"], [0.3, 0.5, 0.6])
    assert _caption(_table(tmp_path)) == "mean over 1-3 seeds, 95% t-interval where 2 or more"


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
    assert [t.get_text() for t in ax.texts] == ["1/2"]  # one of the two seeds at E = 100
    assert "diverged (k/n: k of n seeds)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_laser_plot_draws_the_diverged_line_in_the_round_figure(diverging_sweep):
    from federated.cli import _caption

    table = _table(diverging_sweep)
    assert {c["panel"] for c in round_curves(table) if c["method"] == "zsgd"} == {"E = 10", "E = 100"}
    assert _caption(table) == "mean over 1-2 seeds, 95% t-interval where 2 or more"
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
    from federated.cli import _subtitle

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
