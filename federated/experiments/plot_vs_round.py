"""The figure of a metric against the round (:func:`plot_metric_vs_round`): one panel per swept
value, the round axis started at round 0 (the rounds before the first evaluation hatched, "not
evaluated"). The drawing shared with the other figures is in :mod:`federated.experiments.plot_common`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from federated.experiments.plot_common import (
    _RC,
    _STRIP_PAD,
    _STRIP_ROW,
    _diverged_handle,
    _diverged_marks,
    _diverged_strip,
    _legend_order,
    _metric_axis,
    _number,
    _plain_log_ticks,
    _save,
    _styles,
    _titles,
)

__all__ = ["plot_metric_vs_round"]

_ROUND_DIVERGED_LABEL = "diverged"
_NOT_EVALUATED = "not evaluated"
_GAP_HATCH_COLOUR = "0.85"


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
    curves: list[dict],
    *,
    metric: str,
    title: str | None = None,
    subtitle: str | None = None,
    xlabel: str = "round",
    xscale: str = "linear",
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
            ax.set(title=panel, yscale=yscale, xscale=xscale)
            _plain_log_ticks(ax)
            if k % ncols == 0:
                ax.set_ylabel(ylabel)
            if k + ncols >= len(panels):  # nothing below it
                ax.set_xlabel(xlabel)
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
            if xscale == "linear":  # a log axis has no zero to start from
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


def plot_metric_vs_round(
    curves: list[dict],
    path_stem: str | Path,
    *,
    metric: str,
    title: str | None = None,
    subtitle: str | None = None,
    xlabel: str = "round",
    xscale: str = "linear",
) -> list[Path]:
    """A metric against the round: one panel per ``panel`` value, one line with its band per method
    (or against what ``round`` holds, named ``xlabel`` on a ``xscale`` axis: the cumulative air time
    of :func:`~federated.experiments.results.round_curves` with ``air_time=True``, on a log axis).

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
    figure = _draw_metric_vs_round(
        curves, metric=metric, title=title, subtitle=subtitle, xlabel=xlabel, xscale=xscale
    )
    return _save(figure, path_stem)
