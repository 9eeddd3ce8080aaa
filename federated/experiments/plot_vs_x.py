"""The figure of a final metric against a swept key (:func:`plot_metric_vs_x`), and the captions
that head the figures of ``laser plot``: what is plotted after how many rounds
(:func:`metric_caption`), what the lines and bands are for the seeds present
(:func:`interval_caption`), which runs were shortened (:func:`shortened_note`) and the runs' task,
model, clients and channel (:func:`runs_subtitle`). The drawing shared with the other figures is in
:mod:`federated.experiments.plot_common`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from federated.experiments.plot_common import _LineStyle
    from federated.experiments.styles import MethodStyle


from federated.experiments.plot_common import (
    _RC,
    _band,
    _diverged_handle,
    _diverged_marks,
    _diverged_strip,
    _draw_references,
    _heading,
    _legend_order,
    _metric_axis,
    _natural,
    _number,
    _plain_log_ticks,
    _save,
    _strip_row,
    _styles,
)

__all__ = [
    "interval_caption",
    "metric_caption",
    "plot_metric_vs_x",
    "runs_subtitle",
    "shortened_note",
]

_DIVERGED_LABEL = "all runs diverged"
_SOME_DIVERGED_LABEL = "diverged (k/n: k of n seeds)"
# the subtitle naming the runs' task, model, clients and channel: one line of at most this many characters
_SUBTITLE_MAX = 110
_LONG_LABEL = 28  # characters: a legend of longer labels goes below the axes, not over the curves


def _x_axis(key: str, values: Sequence[float]) -> tuple[str, str]:
    """(x label, x scale) of a swept configuration key."""
    if key == "power.energy":
        return "transmit energy per client per round, E (noise variance 1)", "log"
    if key in ("power.snr_db", "snr_per_use_db"):
        return "SNR per channel use (dB)", "linear"
    if key == "power.max_dbm":
        return "maximum transmit power per client, P_max (dBm)", "linear"
    if key == "privacy_epsilon":
        return "client-level epsilon of the run (privacy.delta)", "log"
    finite = [v for v in values if math.isfinite(v)]
    spread = bool(finite) and min(finite) > 0 and max(finite) > 20 * min(finite)
    return key, "log" if spread else "linear"


def _figure_size(labels: Sequence[str], references: int) -> tuple[tuple[float, float], bool]:
    """The figure's size, and whether the legend goes below the axes: with many lines it goes
    beside them; with labels long enough to cover the curves (sweep variants), below them."""
    below = max((len(label) for label in labels), default=0) > _LONG_LABEL
    lines = len(labels) + references
    if below:
        return (6.0, 3.8 + 0.2 * lines), True
    return ((7.4, 4.2) if lines > 5 else (5.0, 3.6)), False


def _draw_line(
    ax: Axes,
    rows: list[dict],
    method: str,
    styled: tuple[MethodStyle, _LineStyle],
    factor: float,
    limits: tuple[float, float] | None,
) -> None:
    """One method's finished points against x, with its interval: a band, or an error bar for a
    single point."""
    style, linestyle = styled
    points = sorted(
        (
            (float(r["x"]), _number(r["mean"]), r.get("ci_low"), r.get("ci_high"))
            for r in rows
            if r["method"] == method
        ),
        key=lambda p: p[0],
    )
    finished = [p for p in points if math.isfinite(p[1])]
    xs = [p[0] for p in finished]
    ys = [factor * p[1] for p in finished]
    bands = [_band(p[1], p[2], p[3]) for p in finished]
    lows, highs = [factor * b[0] for b in bands], [factor * b[1] for b in bands]
    if limits is not None:  # a few seeds' t interval can leave [0, 100] %
        lows, highs = [max(v, limits[0]) for v in lows], [min(v, limits[1]) for v in highs]
    ax.plot(xs, ys, color=style.colour, marker=style.marker, linestyle=linestyle, label=style.display)
    if len(xs) > 1 and lows != highs:
        ax.fill_between(xs, lows, highs, color=style.colour, alpha=0.2, linewidth=0)
    elif len(xs) == 1 and lows != highs:  # a band needs two points: an error bar
        ax.errorbar(
            xs,
            ys,
            yerr=[[ys[0] - lows[0]], [highs[0] - ys[0]]],
            color=style.colour,
            linestyle="none",
            capsize=3,
            label="_nolegend_",
        )


def _draw_diverged(ax: Axes, rows: list[dict], method: str, row: int, colour: str) -> tuple[bool, bool]:
    """Every point of ``method`` with a diverged run: an "x" in row ``row`` of the strip at the
    bottom of the axis; where some seeds finished, "k/n" beside it. Returns (any mark drawn, some
    point with seeds that finished)."""
    marks = []
    for r in rows:
        if r["method"] != method:
            continue
        gone = int(r.get("n_diverged") or 0)
        if not math.isfinite(_number(r["mean"])):
            marks.append((float(r["x"]), ""))
        elif gone:
            marks.append((float(r["x"]), f"{gone}/{gone + int(r.get('n') or 0)}"))
    if not marks:
        return False, False
    marks.sort()
    _diverged_marks(ax, [m[0] for m in marks], row, colour)
    for mx, text in marks:
        if text:
            ax.annotate(
                text,
                (mx, _strip_row(row)),
                xycoords=ax.get_xaxis_transform(),
                xytext=(5, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                color=colour,
            )
    return True, any(text for _, text in marks)


def _place_legend(fig: Figure, ax: Axes, handles: list, labels: list, below: bool) -> None:
    """The legend below the axes (long labels), in them (up to six entries), or beside them."""
    if below:
        fig.legend(handles, labels, loc="outside lower center")
    elif len(handles) <= 6:
        ax.legend(handles, labels, loc="best")
    else:
        fig.legend(handles, labels, loc="outside right upper")


def _draw_metric_vs_x(
    rows: list[dict],
    *,
    metric: str,
    x: str,
    references: Sequence[dict] = (),
    title: str | None = None,
    subtitle: str | None = None,
) -> Figure:
    """The figure of :func:`plot_metric_vs_x`, not saved."""
    if not rows:
        raise ValueError("plot_metric_vs_x: no rows to plot")
    import matplotlib
    from matplotlib.figure import Figure

    ylabel, factor, yscale = _metric_axis(metric)
    limits = (0.0, 100.0) if "accuracy" in metric else None
    xlabel, xscale = _x_axis(x, [float(row["x"]) for row in rows])
    methods = _legend_order(row["method"] for row in rows)
    styles = _styles(methods)
    with matplotlib.rc_context(_RC):
        size, below = _figure_size([styles[m][0].display for m in methods], len(references))
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        ax.set(xscale=xscale, yscale=yscale, xlabel=xlabel, ylabel=ylabel)
        _plain_log_ticks(ax)
        distinct = {float(r["x"]) for r in rows if math.isfinite(float(r["x"]))}
        if len(distinct) == 1:  # one x: a span around it, set first (autoscaling a point warns)
            (only,) = distinct
            ax.set_xlim(*((only / 10, only * 10) if xscale == "log" and only > 0 else (only - 1, only + 1)))
        n_diverging, some_diverged = 0, False
        for method in methods:
            _draw_line(ax, rows, method, styles[method], factor, limits)
            drawn, some = _draw_diverged(ax, rows, method, n_diverging, styles[method][0].colour)
            n_diverging, some_diverged = n_diverging + drawn, some_diverged or some
        _draw_references(ax, references, factor)
        handles, labels = ax.get_legend_handles_labels()
        if n_diverging:
            handles.append(_diverged_handle())
            labels.append(_SOME_DIVERGED_LABEL if some_diverged else _DIVERGED_LABEL)
        if limits is not None:
            ax.set_ylim(
                limits[0] - 0.02 * (limits[1] - limits[0]), limits[1] + 0.02 * (limits[1] - limits[0])
            )
        if n_diverging:
            _diverged_strip([ax], n_diverging, [True])
        _place_legend(fig, ax, handles, labels, below)
        if heading := _heading(title, subtitle, size[0]):
            ax.set_title(heading, fontsize=10)  # over the axes: clear of a legend outside on the right
    return fig


def plot_metric_vs_x(
    rows: list[dict],
    path_stem: str | Path,
    *,
    metric: str,
    x: str,
    references: Sequence[dict] = (),
    title: str | None = None,
    subtitle: str | None = None,
) -> list[Path]:
    """A final metric against a swept key: one line with a confidence band per method.

    ``rows`` has one dict per (method, x value) with keys method, x, mean, ci_low, ci_high, n and
    n_diverged. A point whose mean is None or NaN (every run diverged) is left out of its line and
    marked with an "x" at the bottom of the axis; a point where only some seeds diverged has the "x"
    too, with "k/n" (k of its n seeds diverged) beside it. A point with one seed has no band.
    ``references`` are horizontal lines (label, mean, ci_low, ci_high) for runs that do not depend on
    ``x``, such as noiseless SGD. Accuracies are plotted in percent; perplexity on a log axis;
    ``power.energy`` on a log axis. ``title`` (e.g. :func:`interval_caption`) and, on a line below
    it, ``subtitle`` (e.g. :func:`runs_subtitle`) head the figure. Writes ``{path_stem}.png`` and
    ``{path_stem}.pdf`` and returns their paths.

    >>> import pathlib, shutil, tempfile
    >>> rows = [{"method": "laser", "x": e, "mean": a, "ci_low": a - 0.01, "ci_high": a + 0.01,
    ...          "n": 3, "n_diverged": 0} for e, a in [(10, 0.62), (100, 0.81), (1000, 0.88)]]
    >>> rows.append({"method": "zsgd", "x": 10, "mean": None, "ci_low": None, "ci_high": None,
    ...              "n": 3, "n_diverged": 3})
    >>> stem = pathlib.Path(tempfile.mkdtemp()) / "accuracy_vs_energy"
    >>> paths = plot_metric_vs_x(rows, stem, metric="test_accuracy", x="power.energy",
    ...                          references=[{"label": "noiseless SGD", "mean": 0.9,
    ...                                       "ci_low": 0.89, "ci_high": 0.91}])
    >>> [p.name for p in paths]
    ['accuracy_vs_energy.png', 'accuracy_vs_energy.pdf']
    >>> shutil.rmtree(stem.parent)
    """
    return _save(
        _draw_metric_vs_x(rows, metric=metric, x=x, references=references, title=title, subtitle=subtitle),
        path_stem,
    )


def _count_range(counts: Iterable[int]) -> str:
    values = sorted(set(counts))
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def _seed_list(seeds: Iterable[str]) -> str:
    """Seeds as a reader scans them: "0, 1, 2"; a run of consecutive integers from 7 on: "0-9"."""
    values = sorted(set(seeds), key=_natural)
    if len(values) > 6 and all(v.isdigit() for v in values):
        numbers = [int(v) for v in values]
        if numbers == list(range(numbers[0], numbers[-1] + 1)):
            return f"{numbers[0]}-{numbers[-1]}"
        return ", ".join([*values[:3], "...", values[-1]])
    return ", ".join(values)


def interval_caption(rows: Iterable[dict]) -> str:
    """What a figure's lines and bands are, for the seeds behind its points: ``rows`` as
    :func:`~federated.experiments.results.figure_rows` gives them (n: the seeds that finished,
    n_diverged, optionally seeds: the cell's seeds, comma-separated). A band is the 95% t-interval
    where a point has 3 or more seeds and the seeds' range where it has 2 (the t-interval of 2 seeds
    is 6.4 times their spread); the seeds are listed. Points whose every seed diverged are not counted.

    >>> interval_caption([{"n": 3, "n_diverged": 0, "seeds": "0,1,2"}, {"n": 3, "n_diverged": 0}])
    'mean and 95% t-interval over 3 seeds (0, 1, 2)'
    >>> interval_caption([{"n": 2, "n_diverged": 0, "seeds": "0,1"}])
    'mean and range of 2 seeds (0, 1)'
    >>> interval_caption([{"n": 2, "n_diverged": 1}, {"n": 3, "n_diverged": 0}])
    'mean over 2-3 seeds, band: 95% t-interval where 3 seeds, range where 2'
    >>> interval_caption([{"n": 1, "n_diverged": 0, "seeds": "0"}, {"n": 1, "n_diverged": 0, "seeds": "0"}])
    'seed 0, one run per point (no confidence interval)'
    >>> interval_caption([{"n": 1, "n_diverged": 0, "seeds": "0"}, {"n": 1, "n_diverged": 0, "seeds": "4"}])
    'one seed per point (seeds 0, 4; no confidence interval)'
    >>> interval_caption([{"n": 1, "n_diverged": 0}, {"n": 3, "n_diverged": 0}])
    'mean over 1-3 seeds, band: 95% t-interval where 3 seeds'
    """
    from federated.experiments.results import T_INTERVAL_SEEDS

    rows = list(rows)
    counts = [int(r.get("n") or 0) for r in rows]
    finished = [n for n in counts if n > 0]
    if not finished:
        return "every run diverged"
    seeds = [s for r in rows for s in str(r.get("seeds") or "").split(",") if s]
    listed = f" ({_seed_list(seeds)})" if seeds else ""
    if max(finished) == 1:
        if len(set(seeds)) == 1 and all(not r.get("n_diverged") for r in rows):
            return f"seed {seeds[0]}, one run per point (no confidence interval)"
        listed = f"seeds {_seed_list(seeds)}; " if seeds else ""
        return f"one seed per point ({listed}no confidence interval)"
    t_counts = [n for n in finished if n >= T_INTERVAL_SEEDS]
    ranges = [n for n in finished if 1 < n < T_INTERVAL_SEEDS]
    if len(set(finished)) == 1:
        if t_counts:
            return f"mean and 95% t-interval over {finished[0]} seeds{listed}"
        return f"mean and range of {finished[0]} seeds{listed}"
    bands = []
    if t_counts:
        bands.append(f"95% t-interval where {_count_range(t_counts)} seeds")
    if ranges:
        bands.append(f"range where {_count_range(ranges)}")
    return f"mean over {_count_range(finished)} seeds{listed}, band: " + ", ".join(bands)


_METRIC_WORDS = {"test_perplexity": "validation perplexity"}


def metric_caption(metric: str, rounds: Iterable[int], *, over_rounds: bool = False) -> str:
    """What a figure plots and after how many rounds: the metric and the runs' round counts (several
    joined with "/"), "after" them for a final value, "over" them for a curve against the round.

    >>> metric_caption("test_accuracy", [150, 150])
    'test accuracy after 150 rounds'
    >>> metric_caption("test_perplexity", [100, 500], over_rounds=True)
    'validation perplexity over 100/500 rounds'
    """
    name = _METRIC_WORDS.get(metric, metric.replace("_", " "))
    counts = sorted({int(r) for r in rounds})
    if not counts:
        return name
    shown = "/".join(str(r) for r in counts)
    return f"{name} {'over' if over_rounds else 'after'} {shown} round{'s' * (shown != '1')}"


def shortened_note(shortened: Iterable[tuple[str, int, int]]) -> str:
    """A subtitle's line for runs shorter than their configs document: ``shortened`` holds (config
    name, rounds run, rounds documented) per run; empty when there is none. A comparison at 150
    rounds need not hold at the documented 600: the figure says which it shows.

    >>> shortened_note([("mnist1d_laser", 150, 600), ("mnist1d_laser", 150, 600)])
    'shortened runs: 150 of the 600 rounds that mnist1d_laser documents'
    >>> shortened_note([("mnist1d_laser", 150, 600), ("mnist1d_zsgd", 100, 600)])
    'shortened runs: 100/150 of the 600 rounds that their 2 configs document'
    >>> shortened_note([])
    ''
    """
    shortened = list(shortened)
    if not shortened:
        return ""
    names = sorted({name for name, _, _ in shortened})
    ran = "/".join(str(r) for r in sorted({r for _, r, _ in shortened}))
    documented = "/".join(str(d) for d in sorted({d for _, _, d in shortened}))
    where = f"{names[0]} documents" if len(names) == 1 else f"their {len(names)} configs document"
    return f"shortened runs: {ran} of the {documented} rounds that {where}"


def _distinct(configs: Sequence[dict], key: str) -> list[str]:
    shown = (f"{v:g}" if isinstance(v, float) else str(v) for c in configs if (v := c.get(key)) is not None)
    return list(dict.fromkeys(shown))


def runs_subtitle(configs: Iterable[dict]) -> str:
    """One line naming the task, model, clients and channel of runs, from their flattened configs
    (``data.name``: value, as :class:`~federated.experiments.results.Run` holds them); settings that
    differ among the runs are joined with "/", and the channel is the noisy runs' (the noiseless ones
    are references). Longer than 110 characters, it is cut with "…".

    >>> runs_subtitle([{"data.name": "mnist1d", "model.name": "cnn", "clients.num_clients": 16,
    ...                 "clients.per_round": 4, "clients.sampling": "uniform", "channel.name": e,
    ...                 "channel.power_control": "inversion"} for e in ("awgn", "rayleigh", "noiseless")])
    'task mnist1d · model cnn · 16 clients, 4 per round · channel awgn/rayleigh, inversion power control'
    """
    configs = list(configs)
    noisy = [c for c in configs if c.get("channel.name") != "noiseless"] or configs
    parts = []
    if tasks := _distinct(configs, "data.name"):
        parts.append("task " + "/".join(tasks))
    if models := _distinct(configs, "model.name"):
        parts.append("model " + "/".join(models))
    if clients := _distinct(configs, "clients.num_clients"):
        text = "/".join(clients) + " clients"
        if per_round := _distinct(configs, "clients.per_round"):
            text += ", " + "/".join(per_round) + " per round"
            sampling = [s for s in _distinct(configs, "clients.sampling") if s != "uniform"]
            text += f" ({'/'.join(sampling)} sampling)" if sampling else ""
        parts.append(text)
    if channels := _distinct(noisy, "channel.name"):
        text = "channel " + "/".join(channels)
        faded = [c for c in noisy if c.get("channel.name") not in ("awgn", "noiseless")]
        if control := _distinct(faded, "channel.power_control"):  # AWGN's gains are 1: nothing to invert
            text += ", " + "/".join(control) + " power control"
        scenarios = [s for s in _distinct(noisy, "channel.scenario") if s != "none"]
        if scenarios:  # physical units: the 3GPP scenario, and 3GPP power control where it is on
            names = {"umi": "UMi", "uma": "UMa", "rma": "RMa"}
            text += " · " + "/".join(names.get(s, s) for s in scenarios)
            if "open_loop" in _distinct(noisy, "power.control"):
                text += ", open-loop caps"
        parts.append(text)
    line = " · ".join(parts)
    return line if len(line) <= _SUBTITLE_MAX else line[: _SUBTITLE_MAX - 1].rstrip() + "…"
