"""Figures of ``laser plot``: a metric against a swept key, a metric against the round, and a
run's partition of the training data over the clients (a heat map).

The functions draw from plain data (lists of dicts; the statistics are computed elsewhere), give each
method the same colour and marker in every figure (:func:`method_style`), each variant of a method
(another configuration) its own marker and line style, mark diverged runs with an "x" in every
panel (in a strip labelled "diverged" below the metric's range, where it cannot read as a value),
start the round axis at round 0 (the rounds before the first evaluation hatched, "not evaluated"),
and write ``STEM.png`` (200 dpi) and ``STEM.pdf`` (fonts embedded as TrueType, as journals ask).
matplotlib is imported on first use and only through its object-oriented API: figures are plain
``Figure`` objects drawn by the Agg canvas, never registered with pyplot, and rcParams change only
inside ``rc_context``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

from federated.experiments.styles import MethodStyle, method_style, split_name

__all__ = [
    "interval_caption",
    "metric_caption",
    "partition_heatmap",
    "partition_stem",
    "partition_title",
    "plot_metric_vs_round",
    "plot_metric_vs_x",
    "runs_subtitle",
    "shortened_note",
]


_LineStyle = Literal["-", "--", ":", "-."]
# variants of one method ("laser, rounds=100", ...): the method's colour, each its marker and line style
_VARIANT_LINESTYLES: tuple[_LineStyle, ...] = ("-", "--", ":", "-.")
_VARIANT_MARKERS = ("o", "s", "^", "v", "D", "P", "d", "<", ">", "p", "h", "*")
_REFERENCE_COLOURS = ("black", "0.45", "0.25", "0.6")
_REFERENCE_LINESTYLES: tuple[_LineStyle, ...] = ("--", "-.", ":", "-")
_DIVERGED_LABEL = "all runs diverged"
_SOME_DIVERGED_LABEL = "diverged (k/n: k of n seeds)"
_ROUND_DIVERGED_LABEL = "diverged"
# diverged runs' "x" marks: rows of this height (axes fraction) in a strip at the bottom of the axes,
# below the lowest value the axis shows, so that an "x" never sits at a value of the metric
_STRIP_ROW = 0.05
_STRIP_PAD = 0.01
_STRIP_LABEL = "diverged"
_NOT_EVALUATED = "not evaluated"
_STRIP_COLOUR = "0.93"
_GAP_HATCH_COLOUR = "0.85"
# the subtitle naming the runs' task, model, clients and channel: one line of at most this many characters
_SUBTITLE_MAX = 110
# partition heat maps: each cell annotated with its count up to this many cells
_ANNOTATE_MAX_CELLS = 300
# short names of the partition parameters in file names
_PARAMETER_TAGS = {"alpha": "alpha", "min_partition_size": "min", "shards_per_client": "shards"}

_RC: dict[RcKeyType, Any] = {
    "font.size": 10,
    "axes.labelsize": 10,
    "axes.titlesize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.9,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
}


def _natural(text: str) -> list[tuple[int, float, str]]:
    """A sort key that orders the numbers in a text by value: "rounds=20" before "rounds=100"."""
    parts = re.split(r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", text)
    return [(0, float(part), "") if k % 2 else (1, 0.0, part) for k, part in enumerate(parts)]


_LONG_LABEL = 28  # characters: a legend of longer labels goes below the axes, not over the curves


def _legend_order(names: Iterable[str]) -> list[str]:
    """The methods in the order they first appear, and each method's variants in natural order, so
    a legend reads "laser, rx_antennas=4" before "laser, rx_antennas=16" before "... =64"."""
    names = list(dict.fromkeys(names))
    first: dict[str, int] = {}
    for name in names:
        first.setdefault(split_name(name)[0], len(first))
    return sorted(names, key=lambda name: (first[split_name(name)[0]], _natural(name)))


def _styles(methods: Sequence[str]) -> dict[str, tuple[MethodStyle, _LineStyle]]:
    """Each method's style and line style. The variants of one method (the same leading name, other
    settings: "laser, rounds=10", "laser, rounds=100") keep its colour; in their natural order the
    first keeps its marker and each other takes another marker and the next line style, so no two
    lines of a figure look alike."""
    variants: dict[str, list[str]] = {}
    for name in sorted(set(methods), key=_natural):
        variants.setdefault(split_name(name)[0], []).append(name)
    styles = {}
    for group in variants.values():
        base = method_style(group[0], among=methods).marker
        markers = [base, *(m for m in _VARIANT_MARKERS if m != base)]
        for k, name in enumerate(group):
            style = method_style(name, among=methods)
            linestyle = _VARIANT_LINESTYLES[(k + k // len(markers)) % len(_VARIANT_LINESTYLES)]
            styles[name] = (style._replace(marker=markers[k % len(markers)]), linestyle)
    return styles


def _metric_axis(metric: str) -> tuple[str, float, str]:
    """(y label, factor applied to the values, y scale) of a metric."""
    if metric == "test_perplexity":
        return "validation perplexity", 1.0, "log"
    if "accuracy" in metric:
        return f"{metric.replace('_', ' ')} (%)", 100.0, "linear"
    return metric.replace("_", " "), 1.0, "linear"


def _x_axis(key: str, values: Sequence[float]) -> tuple[str, str]:
    """(x label, x scale) of a swept configuration key."""
    if key == "power.energy":
        return "transmit energy per client per round, E (noise variance 1)", "log"
    if key == "power.snr_db":
        return "SNR per channel use (dB)", "linear"
    finite = [v for v in values if math.isfinite(v)]
    spread = bool(finite) and min(finite) > 0 and max(finite) > 20 * min(finite)
    return key, "log" if spread else "linear"


def _number(value: float | None) -> float:
    """A float, NaN for None."""
    return math.nan if value is None else float(value)


def _band(mean: float, low: float | None, high: float | None) -> tuple[float, float]:
    """A confidence interval, collapsed onto the mean where it is missing (a single run)."""
    low, high = _number(low), _number(high)
    return (low if math.isfinite(low) else mean), (high if math.isfinite(high) else mean)


def _plain_log_ticks(ax: Axes) -> None:
    """On a log y axis, label ticks 40, 60, 100, 200 rather than 4x10^1 (a perplexity range)."""
    from matplotlib.ticker import LogFormatter

    if ax.get_yscale() == "log":
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def _draw_references(ax: Axes, references: Sequence[dict], factor: float) -> None:
    """Horizontal lines (with light bands) for runs that do not depend on the swept key."""
    for k, reference in enumerate(references):
        mean = _number(reference["mean"])
        if not math.isfinite(mean):
            continue
        low, high = _band(mean, reference.get("ci_low"), reference.get("ci_high"))
        colour = _REFERENCE_COLOURS[k % len(_REFERENCE_COLOURS)]
        linestyle = _REFERENCE_LINESTYLES[(k + k // len(_REFERENCE_COLOURS)) % len(_REFERENCE_LINESTYLES)]
        ax.axhline(factor * mean, color=colour, linestyle=linestyle, linewidth=1.3, label=reference["label"])
        if low != high:
            ax.axhspan(factor * low, factor * high, color=colour, alpha=0.12, linewidth=0)


def _strip_row(row: int) -> float:
    """The height (axes fraction) of row ``row`` of the diverged strip."""
    return _STRIP_PAD + _STRIP_ROW * (row + 0.5)


def _diverged_marks(ax: Axes, xs: Sequence[float], row: int, colour: str) -> None:
    """ "x" markers in the diverged strip at the bottom of the axes (:func:`_diverged_strip`), at
    ``xs``, in row ``row`` (one row per line)."""
    ax.plot(
        xs,
        [_strip_row(row)] * len(xs),
        transform=ax.get_xaxis_transform(),
        color=colour,
        marker="x",
        markersize=7,
        markeredgewidth=1.8,
        linestyle="none",
        clip_on=False,
        label="_nolegend_",
    )


def _diverged_strip(axes: Sequence[Axes], rows: int, labelled: Sequence[bool]) -> None:
    """Make room for ``rows`` rows of diverged marks below the values the y axis shows: the axis is
    extended downwards so that every value stays above a strip at the bottom of the axes, shaded and
    labelled "diverged" (where ``labelled``: the axes with y tick labels), and its ticks stop at the
    values. ``axes`` share their y axis (one panel or a row of panels)."""
    import numpy as np
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FixedLocator

    height = 2 * _STRIP_PAD + _STRIP_ROW * rows  # axes fraction
    ax = axes[0]
    low, high = ax.get_ylim()
    scale = ax.yaxis.get_transform()
    a, b = scale.transform(np.array([[low], [high]])).ravel()
    share = height + 0.02  # the strip and a gap above it
    bottom = scale.inverted().transform(np.array([[a - share / (1 - share) * (b - a)]])).ravel()[0]
    ticks = {
        which: [t for t in locator.tick_values(low, high) if low - 1e-9 * abs(high - low) <= t <= high]
        for which, locator in (
            ("major", ax.yaxis.get_major_locator()),
            ("minor", ax.yaxis.get_minor_locator()),
        )
    }
    for panel in axes:
        panel.set_ylim(bottom, high)
    ax.yaxis.set_major_locator(FixedLocator(ticks["major"]))
    if ax.get_yscale() == "log":
        ax.yaxis.set_minor_locator(FixedLocator(ticks["minor"]))
    for panel, label in zip(axes, labelled):
        # above the grid (zorder 1.5 under the lines), below the marks
        panel.add_patch(
            Rectangle(
                (0, 0), 1, height, transform=panel.transAxes, facecolor=_STRIP_COLOUR, linewidth=0, zorder=1.6
            )
        )
        panel.plot(
            [0, 1],
            [height, height],
            transform=panel.transAxes,
            color="0.6",
            linewidth=0.6,
            label="_nolegend_",
        )
        if label:
            panel.text(
                -0.015,
                height / 2,
                _STRIP_LABEL,
                transform=panel.transAxes,
                ha="right",
                va="center",
                fontsize=_RC["ytick.labelsize"],
                color="0.2",
            )


def _from_round_zero(ax: Axes, first: float, strip_rows: int) -> None:
    """Start a round axis at round 0, where training starts, whatever round was first evaluated;
    the rounds before ``first`` (no evaluation: no value to draw) are hatched and, where the gap is
    wide enough to read, labelled "not evaluated", so that the curves are not read as starting late
    nor drawn from a value nobody measured."""
    last = ax.dataLim.x1  # the last round drawn (a value, a band or a mark)
    right = 1.03 * last if math.isfinite(last) and last > 0 else ax.get_xlim()[1]
    if first > 0:
        ax.axvspan(
            0,
            first,
            facecolor="none",
            edgecolor=_GAP_HATCH_COLOUR,
            hatch="////",
            linewidth=0,
            zorder=0.8,
            label="_nolegend_",
        )
        if first >= 0.08 * right:
            ax.text(
                first / 2,
                (1 + (2 * _STRIP_PAD + _STRIP_ROW * strip_rows if strip_rows else 0)) / 2,
                _NOT_EVALUATED,
                transform=ax.get_xaxis_transform(),
                rotation=90,
                ha="center",
                va="center",
                fontsize=7.5,
                color="0.4",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5},
            )
    ax.set_xlim(0, right)


def _diverged_handle() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="0.3", marker="x", markersize=7, markeredgewidth=1.8, linestyle="none")


_CHARS_PER_INCH = 13  # characters of 10-point text per inch of figure, about


def _heading(title: str | None, subtitle: str | None, width: float) -> str:
    """The title, wrapped to the figure's ``width`` (inches) or to the subtitle's longest line if that is
    longer (a long title must not widen the figure beyond its axes), at the end of a phrase where one
    fits, then the subtitle's lines as they are.

    >>> print(_heading("test accuracy after 600 rounds: mean over 2-3 seeds (0, 1, 2), band: range where 2",
    ...                "task mnist1d", 3.0))
    test accuracy after 600 rounds:
    mean over 2-3 seeds (0, 1, 2),
    band: range where 2
    task mnist1d
    """
    import textwrap

    lines = subtitle.split("\n") if subtitle else []
    limit = max([int(width * _CHARS_PER_INCH), *map(len, lines)])
    head: list[str] = []
    # at a phrase's end (after ":" or "," outside parentheses; a one-word label such as "band:" stays
    # with what follows), else at a space
    phrases: list[str] = []
    for phrase in re.split(r"(?<=[:,]) (?![^(]*\))", title or ""):
        phrases.append(
            phrases.pop() + " " + phrase if phrases and re.fullmatch(r"\S+:", phrases[-1]) else phrase
        )
    for phrase in phrases:
        if head and len(head[-1]) + 1 + len(phrase) <= limit:
            head[-1] += " " + phrase
        else:
            head += textwrap.wrap(phrase, limit, break_on_hyphens=False)
    return "\n".join([*head, *lines])


def _titles(fig: Figure, title: str | None, subtitle: str | None) -> None:
    """The title and, on a line below it, the subtitle, above the figure."""
    if heading := _heading(title, subtitle, fig.get_figwidth()):
        fig.suptitle(heading, fontsize=10)


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
        # many lines: the legend goes beside the axes; labels long enough to cover the curves (sweep
        # variants): below them
        longest = max((len(styles[m][0].display) for m in methods), default=0)
        below = longest > _LONG_LABEL
        wide = len(methods) + len(references) > 5 and not below
        size = (
            (6.0, 3.8 + 0.2 * (len(methods) + len(references)))
            if below
            else (7.4, 4.2)
            if wide
            else (5.0, 3.6)
        )
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
            style, linestyle = styles[method]
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
            # every point with a diverged run: an "x" at the bottom of the axis, one row per method;
            # where some seeds finished, "k/n" beside it
            marks = []
            for r in rows:
                if r["method"] != method:
                    continue
                gone = int(r.get("n_diverged") or 0)
                if not math.isfinite(_number(r["mean"])):
                    marks.append((float(r["x"]), ""))
                elif gone:
                    marks.append((float(r["x"]), f"{gone}/{gone + int(r.get('n') or 0)}"))
            if marks:
                marks.sort()
                _diverged_marks(ax, [m[0] for m in marks], n_diverging, style.colour)
                for mx, text in marks:
                    if text:
                        some_diverged = True
                        ax.annotate(
                            text,
                            (mx, _strip_row(n_diverging)),
                            xycoords=ax.get_xaxis_transform(),
                            xytext=(5, 0),
                            textcoords="offset points",
                            va="center",
                            fontsize=7,
                            color=style.colour,
                        )
                n_diverging += 1
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
        if below:
            fig.legend(handles, labels, loc="outside lower center")
        elif len(handles) <= 6:
            ax.legend(handles, labels, loc="best")
        else:
            fig.legend(handles, labels, loc="outside right upper")
        if heading := _heading(title, subtitle, size[0]):
            ax.set_title(heading, fontsize=10)  # over the axes: clear of a legend outside on the right
    return fig


def _panel_order(curves: Sequence[dict]) -> list[str]:
    """The panels in increasing order of their swept value: each curve's ``x`` where every curve has
    a number there, else the number that ends each panel's title ("E = 100"), else first appearance."""
    panels = list(dict.fromkeys(curve["panel"] for curve in curves))
    values: dict[str, float] = {}
    for curve in curves:
        value = curve.get("x")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values.setdefault(curve["panel"], float(value))
    if len(values) < len(panels):
        values = {}
        for panel in panels:
            match = re.search(r"(-?\d+(?:\.\d*)?(?:e[-+]?\d+)?)\s*$", str(panel))
            if match:
                values[panel] = float(match.group(1))
    if len(values) < len(panels):
        return panels
    return sorted(panels, key=lambda panel: values[panel])  # stable: equal values keep their order


def _draw_metric_vs_round(
    curves: list[dict], *, metric: str, title: str | None = None, subtitle: str | None = None
) -> Figure:
    """The figure of :func:`plot_metric_vs_round`, not saved."""
    if not curves:
        raise ValueError("plot_metric_vs_round: no curves to plot")
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    def values(sequence: Sequence[float | None]) -> np.ma.MaskedArray:
        return np.ma.masked_invalid(np.asarray([factor * _number(v) for v in sequence], dtype=float))

    ylabel, factor, yscale = _metric_axis(metric)
    panels = _panel_order(curves)
    methods = _legend_order(curve["method"] for curve in curves)
    styles = _styles(methods)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    any_diverged = False
    strip_rows = 0  # the most rows of diverged marks in a panel
    first_evaluation: dict[int, float] = {}  # panel -> the first round with a value
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(0.6 + 3.2 * ncols, 1.0 + 2.7 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
        for ax in axes[len(panels) :]:
            ax.remove()
        for k, (ax, panel) in enumerate(zip(axes, panels)):
            ax.set(title=panel, yscale=yscale)
            _plain_log_ticks(ax)
            if k % ncols == 0:
                ax.set_ylabel(ylabel)
            if k + ncols >= len(panels):  # nothing below it
                ax.set_xlabel("round")
            n_diverging = 0
            for curve in curves:
                if curve["panel"] != panel:
                    continue
                style, linestyle = styles[curve["method"]]
                rounds = np.asarray(curve["round"], dtype=float)
                mean = values(curve["mean"])
                every = max(1, len(rounds) // 8)  # ~8 markers, staggered between methods
                offset = methods.index(curve["method"]) * every // len(methods)
                ax.plot(
                    rounds,
                    mean,
                    color=style.colour,
                    marker=style.marker,
                    markevery=(offset, every),
                    linestyle=linestyle,
                    label=style.display,
                )
                low, high = values(curve["low"]), values(curve["high"])
                if "accuracy" in metric:  # a few seeds' t interval can leave [0, 100] %
                    low, high = np.ma.clip(low, 0, 100), np.ma.clip(high, 0, 100)
                if np.ma.any(high - low > 0):  # one seed has no interval: no band
                    ax.fill_between(rounds, low, high, color=style.colour, alpha=0.2, linewidth=0)
                # diverged runs: where every run diverged, an "x" ends the line (its last finite value);
                # else (or with no value to end on) an "x" at the bottom of the axis at each divergence
                finite = np.flatnonzero(~np.ma.getmaskarray(mean))
                if finite.size:
                    first_evaluation[k] = min(first_evaluation.get(k, math.inf), float(rounds[finite[0]]))
                if curve.get("all_diverged") and finite.size:
                    last = finite[-1]
                    ax.plot(
                        [rounds[last]],
                        [mean[last]],
                        color=style.colour,
                        marker="x",
                        markersize=8,
                        markeredgewidth=2.0,
                        linestyle="none",
                        label="_nolegend_",
                    )
                    any_diverged = True
                elif curve.get("diverged"):
                    _diverged_marks(ax, sorted(set(curve["diverged"])), n_diverging, style.colour)
                    n_diverging += 1
                    any_diverged = True
            strip_rows = max(strip_rows, n_diverging)
        shown = list(axes[: len(panels)])
        if strip_rows:
            _diverged_strip(shown, strip_rows, [k % ncols == 0 for k in range(len(panels))])
        for k, ax in enumerate(shown):
            _from_round_zero(ax, first_evaluation.get(k, 0.0), strip_rows)
        handles = [
            Line2D(
                [],
                [],
                color=styles[m][0].colour,
                marker=styles[m][0].marker,
                linestyle=styles[m][1],
                label=styles[m][0].display,
            )
            for m in methods
        ]
        if any_diverged:
            handles.append(_diverged_handle())
            handles[-1].set_label(_ROUND_DIVERGED_LABEL)
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4))
        _titles(fig, title, subtitle)
    return fig


def _draw_partition_heatmap(table: dict, *, title: str | None = None) -> Figure:
    """The figure of :func:`partition_heatmap`, not saved."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    counts = np.asarray(table.get("counts") or [], dtype=float)
    if counts.ndim != 2 or counts.size == 0:
        raise ValueError("partition_heatmap: the table has no client x class counts")
    clients, classes = counts.shape
    annotate = counts.size <= _ANNOTATE_MAX_CELLS
    with matplotlib.rc_context(_RC):
        fig = Figure(
            figsize=(min(9.0, 1.6 + 0.42 * classes), min(9.0, 1.3 + 0.3 * clients)), layout="constrained"
        )
        ax = fig.add_subplot()
        image = ax.imshow(counts, cmap="Blues", vmin=0, aspect="auto", interpolation="nearest")
        ax.grid(False)
        ax.set(xlabel="class", ylabel="client (training samples)" if clients <= 32 else "client")
        if classes <= 20:
            ax.set_xticks(range(classes))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if clients <= 32:  # each client's total beside its index
            ax.set_yticks(range(clients), [f"{k} ({int(n)})" for k, n in enumerate(counts.sum(axis=1))])
        else:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(length=0)
        if annotate:
            top = counts.max()
            for (k, c), value in np.ndenumerate(counts):
                ax.text(
                    c,
                    k,
                    f"{int(value)}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if value > 0.6 * top else "0.15",
                )
        fig.colorbar(image, ax=ax, label="training samples", shrink=0.9)
        if title:
            ax.set_title(title)
    return fig


def _save(fig: Figure, path_stem: str | Path) -> list[Path]:
    """Write ``STEM.png`` (200 dpi) and ``STEM.pdf``; return their paths."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    with matplotlib.rc_context(_RC):
        fig.savefig(png, dpi=200)
        fig.savefig(pdf, metadata={"CreationDate": None})  # the same bytes for the same figure
    return [png, pdf]


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


def plot_metric_vs_round(
    curves: list[dict],
    path_stem: str | Path,
    *,
    metric: str,
    title: str | None = None,
    subtitle: str | None = None,
) -> list[Path]:
    """A metric against the round: one panel per ``panel`` value, one line with its band per method.

    ``curves`` are dicts with keys method, panel, round, mean, low and high (lists of one length;
    None or NaN leaves a gap; where low equals high, one seed, no band), and optionally x (the
    panel's swept value), diverged (the rounds at which runs of the curve diverged) and
    all_diverged (the curve is the diverged runs' mean up to their divergence), as
    :func:`~federated.experiments.results.round_curves` gives them. Panels come in increasing order
    of x (else of the number ending the panel's title, else of first appearance), at most 3 per row,
    and share the y axis. A curve whose runs all diverged ends with an "x"; other diverged runs are
    an "x" at the bottom of the panel at the round they diverged. The figure has one legend, and
    ``title`` and ``subtitle`` as :func:`plot_metric_vs_x`. Writes ``{path_stem}.png`` and
    ``{path_stem}.pdf`` and returns their paths.

    >>> import pathlib, shutil, tempfile
    >>> curves = [{"method": m, "panel": f"E = {e}", "round": [0, 10, 20], "mean": [0.1, 0.5, 0.7],
    ...            "low": [0.1, 0.45, 0.65], "high": [0.1, 0.55, 0.75]}
    ...           for e in (10, 100) for m in ("laser", "zsgd")]
    >>> stem = pathlib.Path(tempfile.mkdtemp()) / "accuracy_vs_round"
    >>> [p.suffix for p in plot_metric_vs_round(curves, stem, metric="test_accuracy")]
    ['.png', '.pdf']
    >>> shutil.rmtree(stem.parent)
    """
    return _save(_draw_metric_vs_round(curves, metric=metric, title=title, subtitle=subtitle), path_stem)


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
        parts.append(text)
    line = " · ".join(parts)
    return line if len(line) <= _SUBTITLE_MAX else line[: _SUBTITLE_MAX - 1].rstrip() + "…"


def partition_stem(table: dict, data: str | None = None) -> str:
    """A file stem that names a partition by its settings: ``partition``, the dataset, the
    partition's name and parameters, the number of clients.

    >>> partition_stem({"partition": "dirichlet", "parameters": {"alpha": 0.5, "min_partition_size": 10},
    ...                 "num_clients": 16}, data="digits")
    'partition_digits_dirichlet_alpha0.5_min10_K16'
    """
    parts = ["partition", *([data] if data else []), str(table.get("partition", "unknown"))]
    parts += [
        f"{_PARAMETER_TAGS.get(k, k)}{v:g}" if isinstance(v, float) else f"{_PARAMETER_TAGS.get(k, k)}{v}"
        for k, v in (table.get("parameters") or {}).items()
    ]
    if "num_clients" in table:
        parts.append(f"K{table['num_clients']}")
    return "_".join(parts)


def partition_title(table: dict, data: str | None = None, seeds: Sequence[object] = ()) -> str:
    """A heat map's title: the dataset, the partition and its parameters, the clients, the seeds.

    >>> partition_title({"partition": "dirichlet", "parameters": {"alpha": 0.1, "min_partition_size": 10},
    ...                  "num_clients": 8}, data="mnist1d", seeds=[0, 1])
    'mnist1d: dirichlet (alpha = 0.1, min_partition_size = 10), 8 clients, seeds 0, 1'
    """
    parameters = ", ".join(
        f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
        for k, v in (table.get("parameters") or {}).items()
    )
    text = f"{data}: " if data else ""
    text += str(table.get("partition", "partition")) + (f" ({parameters})" if parameters else "")
    if "num_clients" in table:
        text += f", {table['num_clients']} clients"
    if seeds:
        shown = (
            [str(seed) for seed in seeds]
            if len(seeds) <= 6
            else [*map(str, seeds[:3]), "...", str(seeds[-1])]
        )
        text += f", seed{'s' if len(seeds) > 1 else ''} " + ", ".join(shown)
    return text


def partition_heatmap(table: dict, path_stem: str | Path, *, title: str | None = None) -> list[Path]:
    """A run's partition as a heat map: clients down, classes across, each client's samples of each
    class as the colour (annotated with the count when the table has at most 300 cells; each client's
    total beside its index when there are at most 32).

    ``table`` is a run's ``partition.json`` (:meth:`~federated.data.tasks.Task.partition`): it needs
    ``counts``, the client x class counts. Writes ``{path_stem}.png`` and ``{path_stem}.pdf`` and
    returns their paths.

    >>> import pathlib, shutil, tempfile
    >>> table = {"partition": "shards", "parameters": {"shards_per_client": 1}, "num_clients": 2,
    ...          "counts": [[5, 0, 0], [0, 3, 2]]}
    >>> stem = pathlib.Path(tempfile.mkdtemp()) / partition_stem(table)
    >>> [p.name for p in partition_heatmap(table, stem, title="digits")]
    ['partition_shards_shards1_K2.png', 'partition_shards_shards1_K2.pdf']
    >>> shutil.rmtree(stem.parent)
    """
    return _save(_draw_partition_heatmap(table, title=title), path_stem)
