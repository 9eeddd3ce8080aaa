"""A sweep's results: every run directory under a folder, grouped into curves with confidence
intervals over seeds, and the paper's best-over-learning-rate selection (the energy each method
needs to reach a target is :mod:`federated.experiments.targets`'s).

Grouping. A run's *method* is its ``compressor.name``, followed by the keys that vary among that
method's runs other than the x axis, the seed and the learning rate (``laser, compressor.rank=8``).
Runs over a noiseless channel (``channel.name: noiseless`` or infinite energy) do not depend on the
energy: they are *references* (``noiseless SGD`` for Z-SGD), a horizontal line in the figures. The x
axis is ``power.energy`` when it varies, else ``power.snr_db``, else any key given.

Statistics. Over the seeds of a (method, learning rate, x) cell: the mean, the sample standard
deviation and the two-sided 95% Student-t confidence interval of the mean. A run that diverged (a
non-finite loss) has no metric: it is counted in ``n_diverged``, not in the mean. *Best over the
learning rate* (the paper's protocol) keeps, per (method, x), the learning rate with the fewest
divergences and then the best mean; *plain* keeps every learning rate. The figures' bands
(:func:`figure_band`) are that interval from 3 seeds on, and the seeds' range below: with 2 seeds
the t-interval is the mean ± 6.4 times their spread, wider than anything the runs did.

Example:
    >>> runs = [Run(Path(f"r{s}{e}"), {"compressor.name": "laser", "power.energy": e, "seed": s,
    ...         "optimizer.lr": 0.05, "channel.name": "awgn"}, {"test_accuracy": a}, "finished")
    ...         for s, e, a in [(0, 10, 0.5), (1, 10, 0.7), (0, 100, 0.8), (1, 100, 0.9)]]
    >>> table = summarize(runs)
    >>> [(r["x"], round(r["mean"], 3), r["n"]) for r in table.rows if r["selection"] == "best_lr"]
    [(10, 0.6, 2), (100, 0.85, 2)]
"""

from __future__ import annotations

import csv
import functools
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from federated.config import ConfigError, config_from_dict, config_to_dict, load_config, parse_yaml
from federated.config.shipped import SHIPPED_DIR
from federated.history import outcome

__all__ = [
    "Run",
    "SweepTable",
    "load_runs",
    "summarize",
    "mean_ci",
    "write_csv",
    "format_table",
    "round_curves",
    "figure_band",
    "figure_rows",
    "documented_rounds",
    "default_metric",
    "is_reference",
    "METHOD_KEY",
    "SEED_KEY",
    "LR_KEY",
]

METHOD_KEY, SEED_KEY, LR_KEY = "compressor.name", "seed", "optimizer.lr"
X_KEYS = ("power.energy", "power.snr_db", "power.max_dbm")
# where and how a run ran, not what it computes
_IGNORED = {
    "data.root",
    "data.download",
    "device",
    "checkpoint_every",
    "compile",
    "tensorboard",
    "clients.vectorize",
    "threads",
    "cpu_isa",  # how the kernels compute (like threads), not what: a sweep is not split by it
}


@dataclass
class Run:
    """One run directory: its flattened config (``power.energy``: value), summary and status
    (``finished``, ``diverged``, ``unfinished``)."""

    path: Path
    config: dict
    summary: dict
    status: str

    def value(self, metric: str) -> float | None:
        value = self.summary.get(metric) if self.status == "finished" else None
        return float(value) if isinstance(value, (int, float)) else None


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = tuple(value) if isinstance(value, list) else value
    return flat


def load_runs(root: str | Path) -> list[Run]:
    """Every run directory (a ``config.yaml`` beside a ``history.jsonl``) under ``root``, sorted by path."""
    runs = []
    for config_path in sorted(Path(root).rglob("config.yaml")):
        path = config_path.parent
        if not (path / "history.jsonl").is_file():
            continue
        try:
            stored = parse_yaml(config_path.read_text(), "config", str(config_path)) or {}
        except (OSError, ConfigError, UnicodeDecodeError):
            continue
        try:  # in today's keys, defaults filled in: runs of several versions group alike
            stored = config_to_dict(config_from_dict(stored))
        except ConfigError:
            pass
        config = _flatten(stored) if isinstance(stored, dict) else {}
        try:
            summary = (
                json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else {}
            )
        except (OSError, ValueError):
            summary = {}  # damaged: the run counts as unfinished
        summary = summary if isinstance(summary, dict) else {}
        runs.append(Run(path, config, summary, outcome(summary) or "unfinished"))
    return runs


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sample sd, ci_low, ci_high): the Student-t interval of the mean; NaN sd and a zero-width
    interval for one value; all NaN for none.

    >>> [round(v, 4) for v in mean_ci([1.0, 2.0, 3.0])]
    [2.0, 1.0, -0.4841, 4.4841]
    """
    n = len(values)
    if n == 0:
        return (math.nan,) * 4
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, mean, mean
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


# from this many seeds on, a figure's band is the 95% t-interval of the mean; with fewer, the seeds' range
T_INTERVAL_SEEDS = 3


def figure_band(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) as a figure draws a cell: the mean and, from :data:`T_INTERVAL_SEEDS` (3) seeds
    on, the 95% Student-t interval of the mean (:func:`mean_ci`); with 2 seeds, their range (the
    t-interval of 2 values is the mean ± 6.4 times their distance: a band of 0-100% that says nothing of
    the runs); with one, a band of width 0; NaN for none.

    >>> figure_band([0.5, 0.7])
    (0.6, 0.5, 0.7)
    >>> [round(v, 4) for v in figure_band([1.0, 2.0, 3.0])]
    [2.0, -0.4841, 4.4841]
    """
    if 0 < len(values) < T_INTERVAL_SEEDS:
        return sum(values) / len(values), min(values), max(values)
    mean, _, low, high = mean_ci(values)
    return mean, low, high


def is_reference(config: dict) -> bool:
    """Whether a run's channel adds no noise (noiseless, infinite energy or zero noise): a line
    that does not depend on x."""
    energy = config.get("power.energy")
    return (
        config.get("channel.name") == "noiseless"
        or (isinstance(energy, float) and math.isinf(energy))
        or config.get("channel.noise_var") == 0
    )


def _varying(runs: list[Run], skip: set[str | None]) -> list[str]:
    keys = sorted({k for r in runs for k in r.config} - skip - _IGNORED)
    return [k for k in keys if len({repr(r.config.get(k)) for r in runs}) > 1]


def _label(name: str, config: dict, keys: list[str]) -> str:
    return ", ".join([name, *(f"{k}={_show(config.get(k))}" for k in keys)])


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class SweepTable:
    """The rows of ``summary.csv`` (dicts), the metric, the x key and the references."""

    metric: str
    x: str | None
    rows: list[dict] = field(default_factory=list)

    @property
    def higher_is_better(self) -> bool:
        return "perplexity" not in self.metric and "loss" not in self.metric

    def best(self, method: str) -> list[dict]:
        """A method's best-over-learning-rate curve, sorted by x."""
        return sorted(
            (r for r in self.rows if r["selection"] == "best_lr" and r["method"] == method),
            key=lambda r: r["x"],
        )

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.rows if r["selection"] == "best_lr"))

    @property
    def references(self) -> list[dict]:
        return [r for r in self.rows if r["selection"] == "reference"]

    def plotted_runs(self) -> list[Run]:
        """The runs behind the figures' points: the best-over-lr cells' and the references', once each."""
        runs = {id(run): run for row in self.rows if row["selection"] != "plain" for run in row["_runs"]}
        return list(runs.values())


def _cell(runs: list[Run], metric: str) -> dict:
    values = [v for v in (r.value(metric) for r in runs) if v is not None]
    mean, sd, low, high = mean_ci(values)
    return {
        "n": len(values),
        "n_diverged": sum(r.status == "diverged" for r in runs),
        "seeds": ",".join(str(r.config.get(SEED_KEY)) for r in runs),
        "mean": mean,
        "sd": sd,
        "ci_low": low,
        "ci_high": high,
        "_runs": runs,
    }


def default_metric(runs: list[Run]) -> str:
    """``test_perplexity`` for language models, else ``test_accuracy``."""
    text = any(r.config.get("data.name") in ("wikitext103", "pydoc") for r in runs)
    return "test_perplexity" if text else "test_accuracy"


# x axes that a run's summary.json holds rather than its configuration (rounded to 0.01 dB, so that the
# seeds of one configuration share a point)
SUMMARY_X = ("snr_per_use_db", "privacy_epsilon")


def x_value(run: Run, x: str | None) -> object:
    """Run ``run``'s value of the x axis ``x``: its configuration's, or its summary's for the keys of
    :data:`SUMMARY_X`."""
    if x is None:
        return None
    if x in SUMMARY_X and x not in run.config:
        value = run.summary.get(x)
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            return None
        if x == "privacy_epsilon":  # three significant digits: epsilons span decades
            return float(f"{float(value):.3g}")
        return round(float(value), 2)
    return run.config.get(x)


def summarize(runs: list[Run], metric: str | None = None, x: str | None = None) -> SweepTable:
    """Group finished and diverged runs into cells over seeds (see the module's docstring)."""
    runs = [r for r in runs if r.status in ("finished", "diverged")]
    metric = metric or default_metric(runs)
    references = [r for r in runs if is_reference(r.config)]
    curves = [r for r in runs if not is_reference(r.config)]
    if x is None:
        x = next((k for k in X_KEYS if len({r.config.get(k) for r in curves}) > 1), None)
        x = x or next(
            (k for k in X_KEYS if curves and all(r.config.get(k) is not None for r in curves)), None
        )
    table = SweepTable(metric, x)
    curves = [r for r in curves if x_value(r, x) is not None]  # e.g. SNR runs in an energy sweep
    by_method: dict[str, list[Run]] = defaultdict(list)
    for run in curves:
        by_method[str(run.config.get(METHOD_KEY))].append(run)
    for name, method_runs in by_method.items():
        # the other x keys name no configuration of an energy or SNR sweep; of any other x, they do
        # the x keys name no configuration of an energy, SNR or power sweep, nor of one against a value
        # the summaries hold (the SNR per use follows from the swept energy)
        extra = _varying(method_runs, {x, SEED_KEY, LR_KEY, *(X_KEYS if x in (*X_KEYS, *SUMMARY_X) else ())})
        cells: dict[tuple, list[Run]] = defaultdict(list)
        for run in method_runs:
            cells[(_label(name, run.config, extra), run.config.get(LR_KEY), x_value(run, x))].append(run)
        best: dict[tuple, dict] = {}
        for (label, lr, xv), cell_runs in sorted(
            cells.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])
        ):
            row = {
                "selection": "plain",
                "method": label,
                "lr": lr,
                "x_key": x,
                "x": xv,
                "metric": metric,
                **_cell(cell_runs, metric),
            }
            table.rows.append(row)
            key = (label, xv)
            if key not in best or _better(row, best[key], table.higher_is_better):
                best[key] = row
        table.rows += [{**row, "selection": "best_lr"} for row in best.values()]
    ref_groups: dict[str, list[Run]] = defaultdict(list)
    extra = _varying(references, {SEED_KEY, LR_KEY, *X_KEYS, "channel.name", "channel.noise_var"})
    for run in references:
        name = str(run.config.get(METHOD_KEY))
        label = "noiseless SGD" if name == "zsgd" else f"{name}, noiseless channel"
        ref_groups[", ".join([label, *(f"{k}={_show(run.config.get(k))}" for k in extra)])].append(run)
    for label, ref_runs in ref_groups.items():
        by_lr: dict[object, list[Run]] = defaultdict(list)
        for run in ref_runs:
            by_lr[run.config.get(LR_KEY)].append(run)
        rows = [
            {
                "selection": "reference",
                "method": label,
                "lr": lr,
                "x_key": x,
                "x": None,
                "metric": metric,
                **_cell(group, metric),
            }
            for lr, group in by_lr.items()
        ]
        best_row = rows[0]
        for row in rows[1:]:
            best_row = row if _better(row, best_row, table.higher_is_better) else best_row
        table.rows.append(best_row)
    return table


def _better(a: dict, b: dict, higher_is_better: bool) -> bool:
    """Fewer divergences first, then the better mean (a cell with no finished run is worst)."""
    if a["n_diverged"] != b["n_diverged"]:
        return a["n_diverged"] < b["n_diverged"]
    if math.isnan(b["mean"]):
        return not math.isnan(a["mean"])
    if math.isnan(a["mean"]):
        return False
    return a["mean"] > b["mean"] if higher_is_better else a["mean"] < b["mean"]


def figure_rows(table: SweepTable) -> tuple[list[dict], list[dict]]:
    """The best-over-lr rows and the references as the figures draw them: each row's ``ci_low`` and
    ``ci_high`` are its band (:func:`figure_band`: the 95% t-interval from 3 seeds on, the seeds' range
    with 2), not the table's interval; the other keys are the table's. ``summary.csv`` keeps the
    t-interval of every cell."""

    def banded(row: dict) -> dict:
        values = [v for v in (r.value(table.metric) for r in row.get("_runs", ())) if v is not None]
        if not values:
            return dict(row)
        mean, low, high = figure_band(values)
        return {**row, "mean": mean, "ci_low": low, "ci_high": high}

    rows = [banded(r) for r in table.rows if r["selection"] == "best_lr"]
    return rows, [banded(r) for r in table.references]


@functools.cache
def _shipped(name: str) -> tuple[object, object, int] | None:
    """(data.name, compressor.name, rounds) of the shipped config called ``name`` (or ``paper/name``)."""
    for path in (SHIPPED_DIR / f"{name}.yaml", *sorted(SHIPPED_DIR.glob(f"*/{name}.yaml"))):
        if path.is_file():
            try:
                config = load_config(path)
            except (ConfigError, OSError):
                continue
            return config.data.name, config.compressor.name, config.rounds
    return None


def documented_rounds(run: Run) -> tuple[str, int] | None:
    """(config name, rounds) of the shipped config a sweep's run came from, or None when unknown.

    A sweep writes each point to ``DIR/<config name>/<point>/`` (:mod:`federated.experiments.sweep`),
    so the run's parent folder names its config; when a shipped config of that name exists and runs
    the same task and method (``data.name``, ``compressor.name``: not a user's file that happens to
    share the name), its ``rounds`` is the count the README and ``docs/`` document for it. A run with
    ``rounds=150`` from ``mnist1d_laser`` gives ``("mnist1d_laser", 600)``; a run outside a sweep's
    layout, or from a config of the user's own, gives None.
    """
    shipped = _shipped(run.path.parent.name) if run.path.parent.name else None
    if shipped is None:
        return None
    data, method, rounds = shipped
    if run.config.get("data.name") != data or run.config.get(METHOD_KEY) != method:
        return None
    return run.path.parent.name, rounds


def round_curves(table: SweepTable, *, air_time: bool = False) -> list[dict]:
    """Metric against round, mean and band over seeds (:func:`figure_band`: the 95% t-interval from 3
    seeds on, the seeds' range with 2), for every best-over-lr cell; one panel per x value (in
    increasing order of x), the references drawn in each.

    Each curve has the keys method, panel, x (the panel's value), round, mean, low, high, diverged
    (the rounds, counted as rounds done, at which runs of the cell diverged) and all_diverged. A cell
    whose every run diverged is drawn from its runs' histories up to the divergence, not left out.

    ``air_time=True``: against the cumulative air time in seconds instead (runs in physical units,
    whose rounds record ``air_time_s``): ``round`` then holds, at each evaluated round, the mean over
    the cell's runs of the air time up to and including it, and ``diverged`` each diverged run's air
    time up to its last recorded round; runs without air times are left out.
    """
    curves, references = [], []
    for row in table.rows:
        if row["selection"] not in ("best_lr", "reference"):
            continue
        finished = [r for r in row["_runs"] if r.status == "finished"]
        diverged = [r for r in row["_runs"] if r.status == "diverged"]
        series: dict[int, list[float]] = defaultdict(list)
        seconds: dict[int, list[float]] = defaultdict(list)  # rounds done -> cumulative air times
        diverged_at: list[float] = []
        for run in finished + diverged:
            last, counted = -1, run.status == "finished" or not finished  # else only marked
            elapsed, timed = 0.0, True
            for line in (run.path / "history.jsonl").read_text().splitlines():
                record = json.loads(line)
                last = max(last, int(record.get("round", last)))
                step = record.get("air_time_s")
                timed = timed and isinstance(step, (int, float))
                elapsed += float(step) if timed else 0.0
                if counted and isinstance(record.get(table.metric), (int, float)):
                    if air_time and not timed:
                        continue
                    series[int(record["round"]) + 1].append(float(record[table.metric]))  # rounds done
                    seconds[int(record["round"]) + 1].append(elapsed)
            if run.status == "diverged" and (timed or not air_time):
                # it stopped in the round after the last one recorded
                diverged_at.append(elapsed if air_time else last + 2)
        if not series and not diverged_at:
            continue
        stats = [figure_band(series[t]) for t in sorted(series)]
        curve = {
            "method": row["method"],
            "round": [sum(seconds[t]) / len(seconds[t]) for t in sorted(series)]
            if air_time
            else sorted(series),
            "mean": [s[0] for s in stats],
            "low": [s[1] for s in stats],
            "high": [s[2] for s in stats],
            "diverged": sorted(diverged_at),
            "all_diverged": not finished,
        }
        if row["selection"] == "reference":
            references.append(curve)
        else:
            curves.append({**curve, "x": row["x"], "panel": f"{_axis_name(table.x)} = {_show(row['x'])}"})
    panels = sorted(dict.fromkeys((c["panel"], c["x"]) for c in curves), key=lambda p: _order(p[1]))
    panels = panels or [("no channel noise", None)]
    curves += [{**ref, "x": x, "panel": panel} for panel, x in panels for ref in references]  # in every panel
    return curves


def _order(value: object) -> tuple:
    """A sort key: numbers by value, before anything else (by its text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _axis_name(x: str | None) -> str:
    names = {
        "power.energy": "E",
        "power.snr_db": "SNR (dB)",
        "power.max_dbm": "P_max (dBm)",
        "snr_per_use_db": "SNR per use (dB)",
        "privacy_epsilon": "epsilon",
    }
    return names.get(x or "", x or "")


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Write dict rows as CSV (NaN and None as empty cells; keys starting with "_" left out) atomically."""
    path = Path(path)
    columns = list(dict.fromkeys(k for row in rows for k in row if not k.startswith("_")))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                    for k, v in row.items()
                    if k in columns
                }
            )
    tmp.replace(path)
    return path


def _cell_text(row: dict, percent: bool) -> str:
    if row["n"] == 0:
        return f"diverged ({row['n_diverged']}/{row['n_diverged']})" if row["n_diverged"] else "-"
    scale = 100 if percent else 1
    text = f"{row['mean'] * scale:.1f}" if percent else f"{row['mean']:.4g}"
    if row["n"] > 1:
        half = (row["ci_high"] - row["mean"]) * scale
        text += f" ± {half:.1f}" if percent else f" ± {half:.2g}"
    if row["n_diverged"]:
        text += f" ({row['n_diverged']} diverged)"
    return text


def format_table(table: SweepTable) -> str:
    """The best-over-lr cells as a text table: methods down, x across; mean ± 95% half-width."""
    from federated.experiments.styles import method_style

    percent = "accuracy" in table.metric
    xs = sorted({r["x"] for r in table.rows if r["selection"] == "best_lr" and r["x"] is not None})
    header = ["method", *(f"{_axis_name(table.x)}={_show(v)}" for v in xs)] if xs else ["method", "all runs"]
    lines = [header]
    for method in table.methods:
        cells = {r["x"]: _cell_text(r, percent) for r in table.best(method)}
        lines.append([method_style(method).display, *(cells.get(v, "") for v in xs)])
    for ref in table.references:
        lines.append([ref["method"], *(_cell_text(ref, percent) for _ in xs or [None])])
    widths = [max(len(line[i]) if i < len(line) else 0 for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    unit = " (%)" if percent else ""
    return f"{table.metric}{unit}, mean ± 95% CI over seeds (best learning rate per cell)\n" + "\n".join(out)
