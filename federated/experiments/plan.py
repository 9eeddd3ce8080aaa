"""What a sweep runs: the ``--grid key=values`` specs, their cartesian product, and the points
(config file, overrides, run directory) of every config file times that product.

Grid values are written as on the command line of ``laser run`` (YAML scalars), or as a range:
``logspace:START:STOP:NUM`` (NUM values, log-spaced, both ends included), ``linspace:START:STOP:NUM``
or ``range:[START:]STOP`` (integers, as Python's ``range``). Every key must be a leaf of the
configuration's schema; a bad spec raises :class:`~federated.config.ConfigError` naming ``--grid``.

Example:
    >>> for point in expand_grid(["power.energy=10,100", "seed=range:2"]):
    ...     print(point)
    {'power.energy': '10', 'seed': '0'}
    {'power.energy': '10', 'seed': '1'}
    {'power.energy': '100', 'seed': '0'}
    {'power.energy': '100', 'seed': '1'}
    >>> parse_grid("power.energy=logspace:10:1e4:4")
    ('power.energy', ['10', '100', '1000', '10000'])
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from federated.config import Config, ConfigError, find_config, load_config

__all__ = ["GRID_SYNTAX", "MAX_POINTS", "parse_grid", "expand_grid", "Point", "plan_sweep"]

GRID_SYNTAX = (
    "key=v1,v2,... (YAML values), or key=logspace:START:STOP:NUM, key=linspace:START:STOP:NUM, "
    "key=range:[START:]STOP"
)


# ------------------------------------------------------------------------------------ the grid
def _split_values(raw: str) -> list[str]:
    """Split at commas outside brackets, so that a list value ``[3,5]`` stays one value."""
    values, depth, start = [], 0, 0
    for i, char in enumerate(raw):
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(raw[start:i])
            start = i + 1
    values.append(raw[start:])
    return [v.strip() for v in values]


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("--grid", spec, GRID_SYNTAX) from None
    if not math.isfinite(value):
        raise ConfigError("--grid", spec, "finite range ends")
    return value


def _show(value: float) -> str:
    """A float as a short override text: 100.0 -> '100', 0.001 -> '0.001', 31.6227... -> '31.623'."""
    text = f"{value:.5g}"
    return text if "e" not in text else f"{value:.6g}"


def _key_exists(key: str) -> bool:
    """Whether ``key`` (``section.name``) is a leaf of the configuration's schema."""
    cls: type = Config
    *sections, last = key.split(".")
    for part in sections:
        tp = typing.get_type_hints(cls).get(part)
        if tp is None or not dataclasses.is_dataclass(tp):
            return False
        cls = typing.cast(type, tp)  # a type hint: a dataclass type, not an instance
    tp = typing.get_type_hints(cls).get(last)
    return tp is not None and not dataclasses.is_dataclass(tp)


MAX_POINTS = 10_000  # a larger sweep needs --max-points: the grid is checked before it is built


def _limit(count: int, spec: str, max_points: int) -> None:
    if count > max_points:
        raise ConfigError(
            "--grid",
            spec,
            f"at most {max_points} points ({count} asked; raise the limit with --max-points N)",
        )


def parse_grid(spec: str, max_points: int = MAX_POINTS) -> tuple[str, list[str]]:
    """``key=values`` -> (key, the values as override texts). Raises ConfigError for bad syntax, a
    key the configuration does not have, or more than ``max_points`` values (counted first)."""
    key, sep, raw = spec.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise ConfigError("--grid", spec, GRID_SYNTAX)
    if not _key_exists(key):
        raise ConfigError(
            "--grid",
            spec,
            "a configuration key such as power.energy, power.snr_db, compressor.name, seed or optimizer.lr",
        )
    match = re.fullmatch(r"(logspace|linspace|range):(.+)", raw.strip())
    if match is None:
        values = _split_values(raw)
        _limit(len(values), spec, max_points)
        if not all(values):
            raise ConfigError("--grid", spec, GRID_SYNTAX + " (an empty value between commas)")
    else:
        kind, args = match.group(1), match.group(2).split(":")
        if kind == "range":
            if len(args) not in (1, 2) or not all(re.fullmatch(r"-?\d+", a) for a in args):
                raise ConfigError("--grid", spec, "range:STOP or range:START:STOP with integers")
            span = range(*map(int, args))
            _limit(len(span), spec, max_points)
            values = [str(v) for v in span]
        else:
            if len(args) != 3 or not re.fullmatch(r"\d+", args[2]) or int(args[2]) < 1:
                raise ConfigError("--grid", spec, f"{kind}:START:STOP:NUM with NUM an integer >= 1")
            start, stop, num = _number(args[0], spec), _number(args[1], spec), int(args[2])
            _limit(num, spec, max_points)
            if kind == "logspace":
                if start <= 0 or stop <= 0:
                    raise ConfigError("--grid", spec, "logspace ends > 0")
                lo, hi = math.log10(start), math.log10(stop)
                points = [10 ** (lo + (hi - lo) * i / (num - 1)) if num > 1 else start for i in range(num)]
            else:
                points = [start + (stop - start) * i / (num - 1) if num > 1 else start for i in range(num)]
            values = [_show(v) for v in points]
        if not values:
            raise ConfigError("--grid", spec, "a range with at least one value")
    if len(set(values)) != len(values):
        raise ConfigError("--grid", spec, "distinct values")
    return key, values


def expand_grid(specs: list[str], max_points: int = MAX_POINTS) -> list[dict[str, str]]:
    """The cartesian product of ``--grid`` specs, in the order given (the last key varies fastest);
    refused (ConfigError) beyond ``max_points`` points, counted before it is built."""
    grid = [parse_grid(spec, max_points) for spec in specs]
    keys = [key for key, _ in grid]
    duplicate = next((k for k in keys if keys.count(k) > 1), None)
    if duplicate is not None:
        raise ConfigError("--grid", duplicate, "each key in one --grid only")
    _limit(math.prod(len(values) for _, values in grid), " ".join(specs), max_points)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values for _, values in grid))]


@dataclass(frozen=True)
class Point:
    """One run of a sweep: a config file, its overrides (fixed ones, then the grid's), its directory."""

    config_path: Path
    overrides: tuple[str, ...]
    path: Path

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


def _dirname(values: dict[str, str]) -> str:
    if not values:
        return "run"
    text = ",".join(f"{key}={value}" for key, value in values.items())
    return re.sub(r"[^A-Za-z0-9_.,=+\-\[\]]", "_", text)


def plan_sweep(
    configs: list[str | Path],
    grid: list[str],
    out: str | Path,
    overrides: Sequence[str] = (),
    *,
    max_points: int = MAX_POINTS,
) -> list[Point]:
    """The points of a sweep: every config file times the grid's product, each resolved
    configuration once (``seed=0,0.0`` is one point: the later ones are left out, with a line on
    stderr naming them).

    Raises ConfigError for a bad grid, a missing config file, or more than ``max_points`` points
    (nothing is run then).
    """
    combos = expand_grid(list(grid), max_points)
    if len(combos) * len(configs) > max_points:
        _limit(len(combos) * len(configs), " ".join(map(str, configs)), max_points)
    paths = [find_config(c) for c in configs]  # a file, or a shipped config's name
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ConfigError("config", [str(p) for p in paths], "config files with distinct names")
    fixed = tuple(overrides)
    points = [
        Point(
            path, fixed + tuple(f"{k}={v}" for k, v in combo.items()), Path(out) / path.stem / _dirname(combo)
        )
        for path in paths
        for combo in combos
    ]
    seen: dict[Path, Point] = {}
    for point in points:
        if point.path in seen:
            raise ConfigError(
                "--grid",
                " ".join(grid),
                f"values that name distinct directories (two points would share {point.path})",
            )
        seen[point.path] = point
    return _distinct(points)


def _distinct(points: list[Point]) -> list[Point]:
    """``points`` without those whose resolved configuration an earlier point already has (a point
    whose configuration is refused stays: the sweep reports it)."""
    kept: list[Point] = []
    first: dict[Config, Point] = {}
    repeated: list[str] = []
    for point in points:
        try:
            config = load_config(point.config_path, list(point.overrides))
        except ConfigError:
            kept.append(point)
            continue
        if config in first:
            repeated.append(f"{point.name} (= {first[config].name})")
            continue
        first[config] = point
        kept.append(point)
    if repeated:
        print(
            f"laser sweep: {len(repeated)} point(s) repeat another's configuration and are left out: "
            + ", ".join(repeated[:5])
            + (" ..." if len(repeated) > 5 else ""),
            file=sys.stderr,
        )
    return kept
