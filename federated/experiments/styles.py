"""How each method appears in every table and figure: its legend name, colour and marker."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["METHOD_STYLE", "MethodStyle", "method_style", "split_name"]

_LEADING_IDENTIFIER = re.compile(r"\s*([A-Za-z0-9_]+)")


class MethodStyle(NamedTuple):
    """How a method appears in every figure: legend name, line colour, marker."""

    display: str
    colour: str
    marker: str


# compressor name (federated.components.COMPRESSORS) -> its style; "x" is kept for diverged points
METHOD_STYLE: dict[str, MethodStyle] = {
    "laser": MethodStyle("LASER", "tab:red", "o"),
    "zsgd": MethodStyle("Z-SGD", "tab:blue", "s"),
    "powersgd": MethodStyle("PowerSGD", "tab:orange", "^"),
    "randomk": MethodStyle("Random-K", "tab:green", "v"),
    "sketch": MethodStyle("count sketch", "tab:purple", "D"),
    "signum": MethodStyle("Signum", "tab:brown", "P"),
    "adsgd": MethodStyle("A-DSGD", "tab:pink", "d"),
    "topk": MethodStyle("top-k", "tab:olive", "<"),
    "qsgd": MethodStyle("QSGD", "tab:cyan", ">"),
    "natural": MethodStyle("natural compression", "navy", "p"),
    "natural_dithering": MethodStyle("natural dithering", "darkgoldenrod", "h"),
    "topk_dithering": MethodStyle("top-k + dithering", "teal", "*"),
    "signsgd": MethodStyle("signSGD", "darkmagenta", "H"),
    "qsparse": MethodStyle("Qsparse", "darkolivegreen", "X"),
    "noiseless": MethodStyle("noiseless", "black", ""),  # the reference ("noiseless SGD") in round curves
}
# for names not in METHOD_STYLE, numbered in sorted order (greys are kept for reference lines)
_OTHER_COLOURS = ("#6a3d9a", "#b15928", "#33a02c", "#1f78b4", "#e31a1c", "#ff7f00", "#a6cee3", "#fb9a99")
_OTHER_MARKERS = ("o", "s", "^", "v", "D", "P", "d", "<", ">", "p", "h", "*")


def split_name(name: str) -> tuple[str, str]:
    """(lower-cased leading identifier, the rest): "laser (lr=0.01)" -> ("laser", " (lr=0.01)")."""
    match = _LEADING_IDENTIFIER.match(name)
    if match is None:
        return name.strip().lower(), ""
    return match.group(1).lower(), name[match.end() :].rstrip()


def method_style(name: str, *, among: Iterable[str] = ()) -> MethodStyle:
    """The legend name, colour and marker of method ``name``, matched on its leading identifier.

    A suffix is kept in the legend name. A name not in :data:`METHOD_STYLE` takes the next free
    colour and marker by its rank, in sorted order, among the unknown names of ``among`` (the other
    methods of the figure), so two unknown methods of one figure never share a colour.

    >>> method_style("laser (lr=0.01)")
    MethodStyle(display='LASER (lr=0.01)', colour='tab:red', marker='o')
    >>> method_style("natural_dithering, rayleigh").display
    'natural dithering, rayleigh'
    >>> method_style("foo", among=["bar", "foo"]) != method_style("bar", among=["foo", "bar"])
    True
    """
    key, suffix = split_name(name)
    if key in METHOD_STYLE:
        known = METHOD_STYLE[key]
        return known._replace(display=known.display + suffix)
    unknown = sorted(({split_name(other)[0] for other in among} - METHOD_STYLE.keys()) | {key})
    rank = unknown.index(key)
    return MethodStyle(
        name.strip(), _OTHER_COLOURS[rank % len(_OTHER_COLOURS)], _OTHER_MARKERS[rank % len(_OTHER_MARKERS)]
    )
