"""A run's record: its rounds (one dict each, ``history.jsonl``), its summary (``summary.json``),
and the table a run prints at its end.

Where these files live, and how a run holds its directory, is :mod:`federated.outputs`; the names it
had here (``RunDirectory``, ``claim``, ``lock_run`` ...) are re-exported.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

from federated.outputs import (
    RUN_FILES,
    RUN_LOCK,
    RUN_LOCK_HELD,
    LockHeldError,
    RunDirectory,
    RunExistsError,
    RunLockedError,
    TensorBoardLog,
    claim,
    held_run,
    hold_lock,
    lock_run,
)

__all__ = [
    "History",
    "RUN_FILES",
    "RUN_LOCK",
    "RUN_LOCK_HELD",
    "RunDirectory",
    "RunExistsError",
    "RunLockedError",
    "LockHeldError",
    "claim",
    "held_run",
    "hold_lock",
    "lock_run",
    "TensorBoardLog",
    "format_summary",
    "outcome",
]


def outcome(summary: dict) -> str | None:
    """What a run's ``summary.json`` says became of it: ``finished``, ``diverged`` (it stopped on a
    non-finite loss or gradient: a result, e.g. of too little energy), or None (still running,
    killed, or failed otherwise).

    >>> outcome({"status": "finished"}), outcome({"status": "diverged", "error": "round 3: ..."})
    ('finished', 'diverged')
    """
    if not isinstance(summary, dict):
        return None
    status = summary.get("status")
    if status in ("finished", "diverged"):
        return str(status)
    if status == "failed" and "not finite" in str(summary.get("error", "")):  # written before "diverged"
        return "diverged"
    return None


@dataclass
class History:
    """Per-round records (dicts) and the run's summary."""

    rounds: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def evaluations(self, metric: str = "test_accuracy") -> list[dict]:
        """The records that hold a test evaluation of ``metric``."""
        return [r for r in self.rounds if metric in r]

    def summarize(self, metric: str = "test_accuracy", **extra: object) -> dict:
        """Final metrics (last evaluation, of the EMA weights too where there is one), the best
        evaluation (highest accuracy, lowest perplexity), and energy / channel-use totals."""
        evals = self.evaluations(metric)
        last = evals[-1] if evals else {}
        best = min if metric == "test_perplexity" else max
        self.summary = {
            "rounds": len(self.rounds),
            metric: last.get(metric),
            "test_loss": last.get("test_loss"),
            f"best_{metric}": best((e[metric] for e in evals), default=None),
        }
        if f"ema_{metric}" in last:
            self.summary.update(
                {
                    f"ema_{metric}": last[f"ema_{metric}"],
                    f"best_ema_{metric}": best(e[f"ema_{metric}"] for e in evals),
                }
            )
        # a round nobody took part in (hidden Poisson sampling) has no training loss (NaN)
        losses = [r["train_loss"] for r in self.rounds if math.isfinite(r["train_loss"])]
        self.summary.update(
            {
                "train_loss": _mean_tail(losses),
                "energy_per_client_total": sum(r["energy_max"] for r in self.rounds),
                "energy_per_client_mean_total": sum(r["energy_mean"] for r in self.rounds),
                "channel_uses_total": sum(r["channel_uses"] for r in self.rounds),
                "noise_var_mean": _mean_tail([r["noise_var_mean"] for r in self.rounds], tail=None),
                "active_clients_mean": _mean_tail([r["active_clients"] for r in self.rounds], tail=None),
            }
        )
        if self.rounds and "air_time_s" in self.rounds[0]:  # physical units (channel.scenario)
            joules = sum(r["energy_j_mean"] for r in self.rounds)
            air_time = sum(r["air_time_s"] for r in self.rounds)
            heard = [r["rx_snr_db"] for r in self.rounds if "rx_snr_db" in r]
            self.summary.update(
                {
                    "air_time_s_total": air_time,
                    "energy_j_total": sum(r["energy_j_max"] for r in self.rounds),
                    "energy_j_mean_total": joules,
                    "tx_power_dbm_mean": 10 * math.log10(joules / air_time) + 30 if joules > 0 else None,
                    # the dB of the rounds' mean linear SNR, as each round's is of its participants'
                    # (rounds nobody took part in have none)
                    "rx_snr_db_mean": 10 * math.log10(sum(10 ** (s / 10) for s in heard) / len(heard))
                    if heard
                    else None,
                }
            )
        snrs = [(r["snr_per_use_db"], r["channel_uses"]) for r in self.rounds if "snr_per_use_db" in r]
        if snrs and len(snrs) == len(self.rounds):  # the budget over the mean channel uses of a round
            budget = sum(10 ** (s / 10) * uses for s, uses in snrs)
            self.summary["snr_per_use_db"] = 10 * math.log10(budget / sum(uses for _, uses in snrs))
        if self.rounds and "privacy_epsilon" in self.rounds[-1]:  # privacy mode: the run's epsilon
            self.summary["privacy_epsilon"] = self.rounds[-1]["privacy_epsilon"]
        if self.rounds and "bits_mean" in self.rounds[0]:  # digital compressors
            self.summary["bits_per_client_mean"] = _mean_tail(
                [r["bits_mean"] for r in self.rounds], tail=None
            )
        self.summary.update(extra)
        return self.summary


def _mean_tail(values: list[float], tail: int | None = 10) -> float | None:
    values = values if tail is None else values[-tail:]
    return sum(values) / len(values) if values else None


# summary.json's keys as the end-of-run table names them: what each number is, and whether per round or
# over the run. The keys ending in _total hold sums over rounds; the table shows each such number per
# round (the mean over rounds, as its name says) and its total (what the key holds). docs/outputs.md
# documents every key; `laser run --help` lists them.
SUMMARY_FIELDS: dict[str, str] = {
    "rounds": "rounds run",
    "test_accuracy": "test accuracy, last evaluation",
    "best_test_accuracy": "test accuracy, best evaluation",
    "ema_test_accuracy": "EMA weights' test accuracy, last evaluation",
    "best_ema_test_accuracy": "EMA weights' test accuracy, best evaluation",
    "test_perplexity": "test perplexity, last evaluation",
    "best_test_perplexity": "test perplexity, best evaluation",
    "ema_test_perplexity": "EMA weights' test perplexity, last evaluation",
    "best_ema_test_perplexity": "EMA weights' test perplexity, best evaluation",
    "test_loss": "test loss, last evaluation",
    "train_loss": "training loss, mean of the last 10 rounds",
    "energy_per_client_total": "energy per round, highest-spending client",
    "energy_per_client_mean_total": "energy per round, mean over clients",
    "channel_uses_total": "real channel uses per round",
    "noise_var_mean": "noise variance per decoded entry, mean over rounds",
    "active_clients_mean": "clients heard per round, mean over rounds",
    "bits_per_client_mean": "bits per client per round, mean over rounds",
    "air_time_s_total": "air time per round",
    "energy_j_total": "energy per round, highest-spending client",
    "energy_j_mean_total": "energy per round, mean over clients",
    "tx_power_dbm_mean": "transmit power over the air time, mean over clients",
    "rx_snr_db_mean": "received SNR per use at the power cap, mean over clients",
    "snr_per_use_db": "SNR per channel use (budget over a round's mean uses)",
    "privacy_epsilon": "client-level epsilon of the run (privacy.delta)",
    "participation": "rounds each client took part in",
    "resumed_from_round": "resumed from round",
    "status": "status",
    "error": "why it stopped",
    "wall_time_s": "wall time of the rounds",
    "cpu_isa": "kernels' CPU instruction set (cpu_isa pin)",
    "environment": "torch, CPU, kernel fingerprint (summary.json only)",
}
# The energies' unit in the normalised mode (docs/physics.md, section 1): E counts the noise energy of
# one real channel use, so with noise_var 1 it is the LASER paper's power P. Joules need a physical
# noise power, which this mode does not have.
ENERGY_UNIT = "noise_var units"
ENERGY_NOTE = (
    "energy: in units of the channel's noise_var per real channel use (E = 100 is 100 times the noise "
    "energy of one real use; with noise_var 1, the LASER paper's power P)"
)
PHYSICAL_ENERGY_NOTE = (
    "energy: in physical units (channel.scenario) the noise_var units count channel uses at the client's "
    "power cap (a client at its cap for a whole round spends the round's real channel uses); energy_j_* "
    "are the same energies in joules (docs/physics.md, section 13)"
)
# each number's unit in the table (keys left out: counts, ratios and texts)
SUMMARY_UNITS: dict[str, str] = {
    **dict.fromkeys(
        ("test_accuracy", "best_test_accuracy", "ema_test_accuracy", "best_ema_test_accuracy"), "fraction"
    ),
    **dict.fromkeys(("test_loss", "train_loss"), "nats"),
    "energy_per_client_total": ENERGY_UNIT,
    "energy_per_client_mean_total": ENERGY_UNIT,
    "channel_uses_total": "real uses",
    "noise_var_mean": "(decoded value)^2",
    "active_clients_mean": "clients",
    "bits_per_client_mean": "bits",
    "air_time_s_total": "s",
    "energy_j_total": "J",
    "energy_j_mean_total": "J",
    "tx_power_dbm_mean": "dBm",
    "rx_snr_db_mean": "dB",
    "snr_per_use_db": "dB",
    "participation": "rounds",
    "wall_time_s": "s",
}
PER_ROUND = (
    "energy_per_client_total",
    "energy_per_client_mean_total",
    "channel_uses_total",
    "air_time_s_total",
    "energy_j_total",
    "energy_j_mean_total",
)
ENERGY = ("energy_per_client_total", "energy_per_client_mean_total")


def _show(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = str(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"


def _show_large(value: float) -> str:
    """A count or energy per round or over rounds: whole numbers with thousands separators from 1,000
    on (2,024 channel uses, not 2024.0; a total of 52,402, not 5.24e+04)."""
    if isinstance(value, (int, float)) and math.isfinite(value) and 1_000 <= abs(value) < 1e15:
        return f"{value:,.0f}"
    return _show(value)


def _alternating_uses(rounds: list[dict] | None) -> str | None:
    """For a method that alternates what it sends (LASER's factors, one side a round), the channel
    uses of even and of odd rounds; None where every round is alike or they vary otherwise."""
    parity: dict[int, set[int]] = {0: set(), 1: set()}
    for r in rounds or []:
        if "channel_uses" in r and "round" in r:
            parity[r["round"] % 2].add(r["channel_uses"])
    if len(parity[0]) == len(parity[1]) == 1 and parity[0] != parity[1]:
        (even,), (odd,) = parity[0], parity[1]
        return f"{even:,} / {odd:,} (even / odd rounds)"
    return None


def _alignment_note(summary: dict, budget: float | None) -> str | None:
    """Why the highest-spending client spent less than its budget, where it did: the alignment rule
    (docs/physics.md, section 4). None where it spent the whole budget or the numbers are missing."""
    busiest, count = summary.get("energy_per_client_total"), summary.get("rounds")
    if budget is None or not isinstance(busiest, (int, float)) or not count:
        return None
    spent = busiest / count
    if not (math.isfinite(budget) and budget > 0 and math.isfinite(spent)) or spent >= budget * (1 - 1e-6):
        return None
    return (
        f"under budget: the highest-spending client spent {_show(spent)} of its {_show(budget)} per round. "
        "The alignment rule scales each block to its weakest link (the client of the largest norm / gain), "
        "which alone spends its whole share of the budget: a client spends all of it only in a round where "
        "it is the weakest link of every block (docs/physics.md, section 4)."
    )


def format_summary(
    summary: dict, rounds: list[dict] | None = None, *, noiseless: bool = False, budget: float | None = None
) -> str:
    """The end-of-run table: what each number is, its value, its unit and its key in ``summary.json``;
    then lines on the energy unit, on channel uses that alternate between rounds, and (given the
    clients' ``budget``: ``power.energy`` of an analog method with equal budgets) on why the
    highest-spending client spent less than it.

    A key ending in ``_total`` holds a sum over rounds: its row is named per round and shows the mean
    per round with the total beside it, so that the value reads as its name says and the key as it is
    stored. ``rounds`` (the history's records) tells alternating channel uses apart (LASER's even /
    odd factors); a ``noiseless`` run shows no energy (it transmits none).

    >>> print(format_summary({"test_accuracy": 0.9123, "rounds": 3, "channel_uses_total": 30}))
    quantity                        value          unit       summary.json key
    ------------------------------  -------------  ---------  ------------------
    test accuracy, last evaluation  0.9123         fraction   test_accuracy
    rounds run                      3                         rounds
    real channel uses per round     10 (total 30)  real uses  channel_uses_total
    """
    count = summary.get("rounds")
    rows = []
    for key, value in summary.items():
        if value is None or (noiseless and key in ENERGY) or isinstance(value, dict):  # (environment)
            continue
        shown = _show(value)
        if key in PER_ROUND and isinstance(value, (int, float)) and not isinstance(value, bool) and count:
            shown = f"{_show_large(value / count)} (total {_show_large(value)})"
        rows.append((SUMMARY_FIELDS.get(key, key), shown, SUMMARY_UNITS.get(key, ""), key))
    header = ("quantity", "value", "unit", "summary.json key")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    notes = [ENERGY_NOTE] if any(row[3] in ENERGY for row in rows) else []
    if notes and "air_time_s_total" in summary:  # physical units: energies in cap-uses, and in joules
        notes = [PHYSICAL_ENERGY_NOTE]
    if "channel_uses_total" in summary and (alternating := _alternating_uses(rounds)) is not None:
        notes.append(
            f"channel uses: {alternating}; the method alternates what it sends (LASER: one factor a round, "
            "its sides in turn), and the table shows their mean"
        )
    if not noiseless and (alignment := _alignment_note(summary, budget)) is not None:
        notes.append(alignment)
    if notes:
        lines.append("")
        lines += [textwrap.fill(note, 100, subsequent_indent="  ") for note in notes]
    return "\n".join(lines)
