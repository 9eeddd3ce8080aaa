"""The energy (or SNR) each method needs to reach a target: along a method's best-over-learning-rate
curve (:func:`federated.experiments.results.summarize`), the smallest energy at which the mean
reaches the target, interpolated linearly in log10(energy) between the two energies that bracket
the first crossing (in dB for an SNR sweep); reported with its ratio to LASER's.

Example:
    >>> from pathlib import Path
    >>> from federated.experiments.results import Run, summarize
    >>> runs = [Run(Path(f"r{s}{e}"), {"compressor.name": "laser", "power.energy": e, "seed": s,
    ...         "optimizer.lr": 0.05, "channel.name": "awgn"}, {"test_accuracy": a}, "finished")
    ...         for s, e, a in [(0, 10, 0.5), (1, 10, 0.7), (0, 100, 0.8), (1, 100, 0.9)]]
    >>> round(energy_to_target(summarize(runs).best("laser"), 0.7, higher_is_better=True), 3)
    25.119
"""

from __future__ import annotations

import math
from typing import Any

from federated.experiments.results import SweepTable

__all__ = ["energy_to_target", "target_table", "format_targets"]


def energy_to_target(
    curve: list[dict], target: float, *, higher_is_better: bool, log_x: bool = True
) -> float | None:
    """The smallest x at which the curve's mean reaches ``target``, interpolated linearly in log10(x)
    (``log_x=False``: in x, for an SNR in dB) between the bracketing points; the first x if it is
    reached there already; None if never. Cells where every run diverged count as not reaching it."""
    previous = None
    for row in curve:
        mean, xv = row["mean"], row["x"]
        reached = not math.isnan(mean) and (mean >= target if higher_is_better else mean <= target)
        if reached:
            if (
                previous is None
                or math.isnan(previous["mean"])
                or (log_x and (xv <= 0 or previous["x"] <= 0))
            ):
                return float(xv)
            m0, m1 = previous["mean"], mean
            frac = (target - m0) / (m1 - m0) if m1 != m0 else 1.0
            if not log_x:
                return previous["x"] + frac * (xv - previous["x"])
            lo, hi = math.log10(previous["x"]), math.log10(xv)
            return 10 ** (lo + frac * (hi - lo))
        previous = row
    return None


def target_table(
    table: SweepTable, target: float | None = None, baseline: str = "laser"
) -> tuple[float, list[dict]]:
    """The energy (``power.energy`` sweeps) or SNR (``power.snr_db``) each method needs to reach
    ``target``, with its ratio to ``baseline``'s energy (``ratio_to_laser``) or its difference in dB
    (``db_above_laser``). The default target is 90% of the best reference's mean (perplexity: 110%),
    or of the best mean in the table."""
    better, snr = table.higher_is_better, table.x == "power.snr_db"
    if target is None:
        pool = [r["mean"] for r in (table.references or table.rows) if not math.isnan(r["mean"])]
        anchor = (max if better else min)(pool) if pool else math.nan
        target = anchor * (0.9 if better else 1.1)
    key = "snr_db" if snr else "energy"
    rows: list[dict[str, Any]] = [
        {
            "method": m,
            "target": target,
            key: energy_to_target(table.best(m), target, higher_is_better=better, log_x=not snr),
            "reached_at_first_point": False,
        }
        for m in table.methods
    ]
    for row in rows:
        curve = table.best(row["method"])
        row["reached_at_first_point"] = row[key] is not None and bool(curve) and row[key] == curve[0]["x"]
    # the baseline's row: its exact name, else the one method named after it (e.g. "laser, compressor.rank=4")
    named = [r for r in rows if r["method"] == baseline] or [
        r for r in rows if r["method"].startswith(baseline + ",")
    ]
    base = named[0][key] if len(named) == 1 else None
    for row in rows:
        if snr:
            row[f"db_above_{baseline}"] = (
                row[key] - base if row[key] is not None and base is not None else None
            )
        else:
            row[f"ratio_to_{baseline}"] = row[key] / base if row[key] is not None and base else None
    return target, rows


def format_targets(table: SweepTable, goal: float, rows: list[dict]) -> str:
    """:func:`target_table`'s ``goal`` and ``rows`` as the lines ``laser sweep`` prints."""
    from federated.experiments.styles import method_style

    snr = table.x == "power.snr_db"
    shown = f"{goal * 100:.1f}%" if "accuracy" in table.metric else f"{goal:.4g}"
    lines = [
        f"{'SNR (dB)' if snr else 'energy'} to reach {table.metric} = {shown} (interpolated"
        f"{'' if snr else ' on a log axis'}; {'dB above' if snr else 'x'} LASER's):"
    ]
    for row in rows:
        value = row["snr_db" if snr else "energy"]
        text = (
            "not reached" if value is None else f"{'<= ' if row['reached_at_first_point'] else ''}{value:.4g}"
        )
        versus = row.get("db_above_laser" if snr else "ratio_to_laser")
        extra = "" if versus is None else (f"  ({versus:+.2f} dB)" if snr else f"  ({versus:.3g}x)")
        lines.append(f"  {method_style(row['method']).display:<28} {text:>14}{extra}")
    return "\n".join(lines)
