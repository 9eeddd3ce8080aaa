"""The figures of ``laser plot``: files written, axes, scales, units and method styles, and the
partition heat maps."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from federated.config import config_to_dict, load_config
from federated.experiments.plots import (
    _draw_metric_vs_round,
    _draw_metric_vs_x,
    _draw_partition_heatmap,
    partition_heatmap,
    partition_stem,
    plot_metric_vs_round,
    plot_metric_vs_x,
)
from federated.experiments.styles import METHOD_STYLE, method_style


def _row(method: str, x: float, mean: float | None, half_width: float = 0.02, n: int = 3) -> dict:
    if mean is None:
        return {
            "method": method,
            "x": x,
            "mean": None,
            "ci_low": None,
            "ci_high": None,
            "n": n,
            "n_diverged": n,
        }
    return {
        "method": method,
        "x": x,
        "mean": mean,
        "ci_low": mean - half_width,
        "ci_high": mean + half_width,
        "n": n,
        "n_diverged": 0,
    }


ROWS = [
    _row("laser", 1000, 0.85),
    _row("laser", 10, 0.60),
    _row("laser", 100, 0.80),
    _row("zsgd", 10, None),
    _row("zsgd", 100, 0.40),
    _row("zsgd", 1000, 0.70),
]
SINGLE_RUN_ROWS = [_row("randomk", x, m, half_width=0.0, n=1) for x, m in [(10, 0.3), (100, 0.5)]]
REFERENCE = {"label": "noiseless SGD", "mean": 0.9, "ci_low": 0.88, "ci_high": 0.92}


def _curves(metric_values: list[float], panels: list[str], methods: list[str]) -> list[dict]:
    return [
        {
            "method": m,
            "panel": p,
            "round": list(range(0, 10 * len(metric_values), 10)),
            "mean": metric_values,
            "low": [v * 0.9 for v in metric_values],
            "high": [v * 1.1 for v in metric_values],
        }
        for p in panels
        for m in methods
    ]


def _line(ax, label: str):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def _assert_written(paths, stem) -> None:
    assert [p.name for p in paths] == [stem.name + ".png", stem.name + ".pdf"]
    png, pdf = (p.read_bytes() for p in paths)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_known_methods_have_distinct_fixed_styles():
    styles = [method_style(name) for name in METHOD_STYLE]
    assert len({(s.colour, s.marker) for s in styles}) == len({s.colour for s in styles}) == len(METHOD_STYLE)
    assert method_style("laser") == ("LASER", "tab:red", "o") == method_style("laser")
    assert method_style("natural").display == "natural compression"
    assert method_style("natural_dithering").colour != method_style("natural").colour
    assert method_style("topk_dithering").display == "top-k + dithering"


def test_suffixes_keep_the_method_colour_and_stay_in_the_legend_name():
    laser = method_style("laser")
    assert method_style("laser (lr=0.01)") == ("LASER (lr=0.01)", laser.colour, laser.marker)
    assert method_style("laser, rayleigh") == ("LASER, rayleigh", laser.colour, laser.marker)
    assert method_style("PowerSGD (rank 2)").colour == method_style("powersgd").colour


def test_unknown_methods_get_free_colours_by_sorted_order():
    among = ["zeta", "alpha", "laser"]
    alpha, zeta = method_style("alpha", among=among), method_style("zeta", among=among[::-1])
    assert alpha == method_style("alpha", among=["zeta"]) and alpha.display == "alpha"
    assert alpha.colour != zeta.colour
    known_colours = {s.colour for s in METHOD_STYLE.values()}
    assert alpha.colour not in known_colours and zeta.colour not in known_colours


def test_metric_vs_x_writes_png_and_pdf(tmp_path):
    stem = tmp_path / "figures" / "accuracy_vs_energy"
    paths = plot_metric_vs_x(
        ROWS + SINGLE_RUN_ROWS,
        stem,
        metric="test_accuracy",
        x="power.energy",
        references=[REFERENCE],
        title="MNIST, AWGN",
    )
    _assert_written(paths, stem)


def test_metric_vs_round_writes_png_and_pdf(tmp_path):
    stem = tmp_path / "perplexity_vs_round"
    curves = _curves([300.0, math.nan, 80.0, 60.0], ["E = 10", "E = 100"], ["laser", "zsgd"])
    _assert_written(plot_metric_vs_round(curves, stem, metric="test_perplexity"), stem)


def test_energy_axis_is_log_and_accuracy_in_percent_with_bands():
    ax = _draw_metric_vs_x(ROWS, metric="test_accuracy", x="power.energy").axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert ax.get_xlabel() == "transmit energy per client per round, E (noise variance 1)"
    assert ax.get_ylabel() == "test accuracy (%)"
    laser = _line(ax, "LASER")
    assert list(laser.get_xdata()) == [10, 100, 1000]  # sorted by x
    assert laser.get_ydata() == pytest.approx([60.0, 80.0, 85.0])
    assert laser.get_color() == "tab:red" and laser.get_marker() == "o"
    assert len(ax.collections) == 2  # one band per method
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(58.0) and band.max() == pytest.approx(87.0)


def test_diverged_point_is_left_out_and_marked():
    ax = _draw_metric_vs_x(ROWS, metric="test_accuracy", x="power.energy").axes[0]
    assert list(_line(ax, "Z-SGD").get_xdata()) == [100, 1000]
    (marker,) = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert list(marker.get_xdata()) == [10] and marker.get_color() == method_style("zsgd").colour
    assert "all runs diverged" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_single_runs_have_no_band_and_a_lone_point_an_error_bar():
    ax = _draw_metric_vs_x(SINGLE_RUN_ROWS, metric="accuracy", x="power.snr_db").axes[0]
    assert len(ax.collections) == 0
    assert _line(ax, "Random-K").get_ydata() == pytest.approx([30.0, 50.0])
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "SNR per channel use (dB)"
    assert "diverged" not in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    lone = _draw_metric_vs_x([_row("laser", 10, 0.5)], metric="test_accuracy", x="power.snr_db").axes[0]
    assert len(lone.containers) == 1  # the error bar


def test_reference_is_a_horizontal_line_in_the_legend():
    ax = _draw_metric_vs_x(ROWS, metric="test_accuracy", x="power.energy", references=[REFERENCE]).axes[0]
    reference = _line(ax, "noiseless SGD")
    assert list(reference.get_ydata()) == pytest.approx([90.0, 90.0]) and reference.get_linestyle() == "--"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["LASER", "Z-SGD", "noiseless SGD", "all runs diverged"]


def test_perplexity_is_on_a_log_axis_and_other_keys_choose_their_scale():
    rows = [_row("laser", lr, p, half_width=5.0) for lr, p in [(0.001, 120.0), (0.01, 80.0), (0.1, 95.0)]]
    ax = _draw_metric_vs_x(rows, metric="test_perplexity", x="optimizer.lr").axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "validation perplexity"
    assert ax.yaxis.get_major_formatter()(100.0) == "100"  # not 10^2
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "optimizer.lr"  # spans a factor 100
    assert _line(ax, "LASER").get_ydata() == pytest.approx([120.0, 80.0, 95.0])
    ranks = [_row("laser", r, 0.5) for r in (1, 2, 4, 8)]
    ax = _draw_metric_vs_x(ranks, metric="train_loss", x="compressor.rank").axes[0]
    assert ax.get_xscale() == "linear" and ax.get_ylabel() == "train loss"


def test_variants_of_one_method_share_its_colour_but_not_its_line_style():
    rows = [_row(m, x, 0.5) for m in ("laser (lr=0.1)", "laser (lr=0.01)") for x in (1, 2)]
    ax = _draw_metric_vs_x(rows, metric="test_accuracy", x="rounds").axes[0]
    a, b = _line(ax, "LASER (lr=0.01)"), _line(ax, "LASER (lr=0.1)")
    assert a.get_color() == b.get_color() == "tab:red"
    assert (a.get_linestyle(), b.get_linestyle()) == ("-", "--")


def test_legend_keeps_the_methods_order_and_puts_each_methods_variants_in_numeric_order():
    names = ["zsgd, rx_antennas=16", "laser, rx_antennas=64", "zsgd, rx_antennas=4", "laser, rx_antennas=16"]
    names.append("laser, rx_antennas=4")
    expected = [
        "Z-SGD, rx_antennas=4",
        "Z-SGD, rx_antennas=16",
        "LASER, rx_antennas=4",
        "LASER, rx_antennas=16",
        "LASER, rx_antennas=64",
    ]
    ax = _draw_metric_vs_x(
        [_row(m, x, 0.5) for m in names for x in (10, 100)], metric="test_accuracy", x="power.energy"
    ).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == expected
    fig = _draw_metric_vs_round(_curves([0.1, 0.4], ["E = 10"], names), metric="test_accuracy")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == expected


def test_long_labels_put_the_legend_below_the_axes_and_short_ones_inside():
    long = ["laser, channel.beamformer=matched, channel.rx_antennas=4", "laser, channel.beamformer=maxmin"]
    fig = _draw_metric_vs_x(
        [_row(m, x, 0.5) for m in long for x in (10, 100)], metric="test_accuracy", x="power.energy"
    )
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    assert fig.legends[0]._loc == 8  # lower center
    fig = _draw_metric_vs_x(ROWS, metric="test_accuracy", x="power.energy")
    assert fig.axes[0].get_legend() is not None and not fig.legends


def test_round_panels_in_order_sharing_y_with_one_legend():
    panels = ["E = 1000", "E = 10", "E = 100", "E = 1"]
    fig = _draw_metric_vs_round(
        _curves([0.1, 0.4, 0.7], panels, ["zsgd", "laser"]), metric="test_accuracy", title="MNIST"
    )
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["E = 1", "E = 10", "E = 100", "E = 1000"]  # 3 per row
    assert [ax.get_subplotspec().rowspan.start for ax in axes] == [0, 0, 0, 1]
    assert all(axes[0].get_shared_y_axes().joined(axes[0], ax) for ax in axes[1:])
    assert [ax.get_xlabel() for ax in axes] == ["", "round", "round", "round"]
    assert [ax.get_ylabel() for ax in axes] == ["test accuracy (%)", "", "", "test accuracy (%)"]
    assert all(ax.get_legend() is None for ax in axes) and len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Z-SGD", "LASER"]
    assert _line(axes[0], "LASER").get_ydata().tolist() == pytest.approx([10.0, 40.0, 70.0])
    assert len(axes[0].collections) == 2
    assert fig.get_suptitle() == "MNIST"
    named = ["rayleigh", "awgn"]  # no numbers: first appearance
    fig = _draw_metric_vs_round(_curves([0.1, 0.4], named, ["laser"]), metric="test_accuracy")
    assert [ax.get_title() for ax in fig.axes] == named


def test_round_curves_with_gaps_on_a_log_axis():
    fig = _draw_metric_vs_round(
        _curves([300.0, math.nan, 80.0], ["E = 10"], ["laser"]), metric="test_perplexity"
    )
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "round"
    ydata = _line(ax, "LASER").get_ydata()
    assert ydata.mask.tolist() == [False, True, False] and ydata[2] == pytest.approx(80.0)


def test_nothing_to_plot_is_an_error():
    with pytest.raises(ValueError, match="no rows"):
        _draw_metric_vs_x([], metric="test_accuracy", x="power.energy")
    with pytest.raises(ValueError, match="no curves"):
        _draw_metric_vs_round([], metric="test_accuracy")


PARTITION = {  # a partition.json as Task.partition() writes it: 4 clients, 3 classes
    "partition": "dirichlet",
    "parameters": {"alpha": 0.5, "min_partition_size": 10},
    "num_clients": 4,
    "unit": "samples",
    "sizes": [40, 25, 30, 35],
    "num_classes": 3,
    "counts": [[30, 10, 0], [0, 5, 20], [10, 10, 10], [0, 35, 0]],
}


def test_partition_heatmap_writes_png_and_pdf_from_a_partition_json(tmp_path):
    (tmp_path / "partition.json").write_text(json.dumps(PARTITION, indent=2))
    table = json.loads((tmp_path / "partition.json").read_text())
    stem = tmp_path / "figures" / partition_stem(table, "digits")
    assert stem.name == "partition_digits_dirichlet_alpha0.5_min10_K4"
    _assert_written(partition_heatmap(table, stem, title="digits"), stem)


def test_partition_heatmap_has_clients_down_classes_across_and_small_tables_annotated():
    fig = _draw_partition_heatmap(PARTITION, title="digits: dirichlet")
    ax, colourbar = fig.axes
    (image,) = ax.get_images()
    assert image.get_array().tolist() == PARTITION["counts"]  # rows: clients, columns: classes
    assert ax.get_xlabel() == "class" and ax.get_ylabel() == "client (training samples)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0 (40)", "1 (25)", "2 (30)", "3 (35)"]
    assert [t.get_text() for t in ax.texts] == [str(v) for row in PARTITION["counts"] for v in row]
    assert colourbar.get_ylabel() == "training samples" and ax.get_title() == "digits: dirichlet"
    big = {**PARTITION, "num_clients": 100, "counts": [[k % 7, 3, 5] * 4 for k in range(100)]}
    ax = _draw_partition_heatmap(big).axes[0]
    assert not ax.texts and ax.get_ylabel() == "client"  # 1,200 cells: no numbers
    with pytest.raises(ValueError, match="no client x class counts"):
        _draw_partition_heatmap({**PARTITION, "counts": None})


def _run_dir(path: Path, overrides: list[str], partition: dict | None) -> None:
    """A finished run directory as ``laser run`` writes it, with its partition.json."""
    path.mkdir(parents=True)
    config = load_config(None, ["data.name=digits", "clients.num_clients=4", *overrides])
    (path / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    rounds = [{"round": 0, "train_loss": 1.0, "test_accuracy": 0.5}]
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rounds))
    (path / "summary.json").write_text(json.dumps({"status": "finished", "rounds": 1, "test_accuracy": 0.5}))
    if partition is not None:
        (path / "partition.json").write_text(json.dumps(partition, indent=2))


def test_laser_plot_draws_one_heat_map_per_distinct_partition(tmp_path, capsys):
    from federated.cli import main

    other_seed = {**PARTITION, "counts": [[20, 20, 0], [10, 0, 15], [10, 10, 10], [0, 35, 5]]}
    shards = {**PARTITION, "partition": "shards", "parameters": {"shards_per_client": 2}}
    language = {
        "partition": "contiguous",
        "parameters": {},
        "num_clients": 4,
        "unit": "tokens",
        "sizes": [9] * 4,
    }
    for method in ("laser", "zsgd"):  # the same data seeds: the same partitions
        for seed, table in ((0, PARTITION), (1, other_seed)):
            _run_dir(tmp_path / method / f"seed={seed}", [f"compressor.name={method}", f"seed={seed}"], table)
    _run_dir(tmp_path / "shards", ["data.partition=shards"], shards)
    _run_dir(tmp_path / "text", ["seed=5"], language)  # no classes: no heat map
    _run_dir(tmp_path / "old", ["seed=6"], None)  # written before partition.json existed
    assert main(["plot", str(tmp_path)]) == 0
    figures = sorted(p.name for p in (tmp_path / "figures").glob("partition*"))
    stems = [
        "partition_digits_dirichlet_alpha0.5_min10_K4_seed0",
        "partition_digits_dirichlet_alpha0.5_min10_K4_seed1",
    ]
    stems.append("partition_digits_shards_shards2_K4")
    assert figures == sorted(f"{stem}.{ext}" for stem in stems for ext in ("pdf", "png"))
    assert str(tmp_path / "figures" / "partition_digits_shards_shards2_K4.png") in capsys.readouterr().out
    png = (tmp_path / "figures" / f"{stems[0]}.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, federated.experiments.plots; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[3],
    )
    assert result.stdout.strip() == "False"
