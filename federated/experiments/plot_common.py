"""The drawing that the figures of ``laser plot`` share (:mod:`federated.experiments.plots`).

The figures draw from plain data (lists of dicts; the statistics are computed elsewhere), give each
method the same colour and marker in every figure (:func:`method_style`), each variant of a method
(another configuration) its own marker and line style, mark diverged runs with an "x" in every
panel (in a strip labelled "diverged" below the metric's range, where it cannot read as a value),
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

_LineStyle = Literal["-", "--", ":", "-."]
# variants of one method ("laser, rounds=100", ...): the method's colour, each its marker and line style
_VARIANT_LINESTYLES: tuple[_LineStyle, ...] = ("-", "--", ":", "-.")
_VARIANT_MARKERS = ("o", "s", "^", "v", "D", "P", "d", "<", ">", "p", "h", "*")
_REFERENCE_COLOURS = ("black", "0.45", "0.25", "0.6")
_REFERENCE_LINESTYLES: tuple[_LineStyle, ...] = ("--", "-.", ":", "-")
# diverged runs' "x" marks: rows of this height (axes fraction) in a strip at the bottom of the axes,
# below the lowest value the axis shows, so that an "x" never sits at a value of the metric
_STRIP_ROW = 0.05
_STRIP_PAD = 0.01
_STRIP_LABEL = "diverged"
_STRIP_COLOUR = "0.93"

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
