"""A run's record: per-round history (JSON lines), the resolved config and ``summary.json``.

Run directory layout::

    DIR/config.yaml      the resolved configuration (every key, defaults included)
    DIR/history.jsonl    one JSON object per round, written as the run goes
    DIR/summary.json     final metrics and totals, written at the end (or when a run fails)
    DIR/partition.json   how the training data is split over the clients (``Task.partition()``:
                         the partition, its parameters, each client's size and, for classification,
                         its samples of each class), written when the run builds its data
    DIR/checkpoint.pt    every ``checkpoint_every`` rounds and at the end: what ``--resume`` needs
    DIR/tensorboard/     with ``tensorboard: true``: the history as TensorBoard scalars
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = [
    "History",
    "RunDirectory",
    "RunExistsError",
    "claim",
    "held_run",
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


def _jsonable(value: object) -> object:
    """JSON has no inf/NaN: write them as the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


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
        self.summary.update(
            {
                "train_loss": _mean_tail([r["train_loss"] for r in self.rounds]),
                "energy_per_client_total": sum(r["energy_max"] for r in self.rounds),
                "energy_per_client_mean_total": sum(r["energy_mean"] for r in self.rounds),
                "channel_uses_total": sum(r["channel_uses"] for r in self.rounds),
                "noise_var_mean": _mean_tail([r["noise_var_mean"] for r in self.rounds], tail=None),
                "active_clients_mean": _mean_tail([r["active_clients"] for r in self.rounds], tail=None),
            }
        )
        if self.rounds and "bits_mean" in self.rounds[0]:  # digital compressors
            self.summary["bits_per_client_mean"] = _mean_tail(
                [r["bits_mean"] for r in self.rounds], tail=None
            )
        self.summary.update(extra)
        return self.summary


def _mean_tail(values: list[float], tail: int | None = 10) -> float | None:
    values = values if tail is None else values[-tail:]
    return sum(values) / len(values) if values else None


def _write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file renamed over it; the temporary file is removed
    if the write fails (a full disk), and the error names ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


class RunExistsError(FileExistsError):
    """A run directory that already holds a run (its results are never overwritten silently)."""


RUN_FILES = ("config.yaml", "history.jsonl", "summary.json", "partition.json", "checkpoint.pt")


def held_run(path: str | Path) -> list[str]:
    """The files of a run that ``path`` holds (empty: no run there)."""
    path = Path(path)
    found = [name for name in RUN_FILES if (path / name).exists()]
    return found + sorted(p.name for p in path.glob("checkpoint.*.pt")) if path.is_dir() else found


def claim(path: str | Path, *, overwrite: bool = False) -> None:
    """Make ``path`` ready for a new run: refuse (RunExistsError) if it holds one, unless
    ``overwrite``, which removes that run's files (checkpoints included, so no later ``--resume``
    continues the old run)."""
    path = Path(path)
    held = held_run(path)
    if held and not overwrite:
        raise RunExistsError(
            f"{path} already holds a run ({', '.join(held[:4])}): continue it with `laser run --resume "
            f"{path}`, write to another --out, or replace it with --overwrite"
        )
    for name in held:
        (path / name).unlink(missing_ok=True)


class RunDirectory:
    """Writes a run as it goes: config first, one history line per round, the summary last."""

    def __init__(self, path: str | Path, config: dict | None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            (self.path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (self.path / "summary.json").unlink(missing_ok=True)
        self._history = open(self.path / "history.jsonl", "a" if config is None else "w")

    @classmethod
    def reopen(cls, path: str | Path, rounds: list[dict]) -> RunDirectory:
        """A resumed run: the history file is rewritten (atomically) to the checkpoint's ``rounds``,
        dropping rounds logged after it, then appended to."""
        path = Path(path)
        _write_atomically(path / "history.jsonl", "".join(json.dumps(_jsonable(r)) + "\n" for r in rounds))
        return cls(path, None)

    def append(self, record: dict) -> None:
        self._history.write(json.dumps(_jsonable(record)) + "\n")
        self._history.flush()

    def write_partition(self, table: dict) -> Path:
        """Write ``DIR/partition.json`` (indent 2; atomically): ``table`` is the task's
        :meth:`~federated.data.tasks.Task.partition`. Returns its path."""
        path = self.path / "partition.json"
        _write_atomically(path, json.dumps(_jsonable(table), indent=2) + "\n")
        return path

    def finish(self, summary: dict) -> None:
        self._history.close()
        _write_atomically(self.path / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")


class TensorBoardLog:
    """Writes each round's numbers as TensorBoard scalars, at step ``round + 1`` (rounds done),
    tagged by group: ``train/train_loss``, ``test/test_accuracy``, ``channel/energy_max``, ``optim/lr``.

    ``purge_step`` (a resumed run: the checkpoint's rounds + 1) makes TensorBoard drop the steps
    from there on that an earlier, killed writer logged, so that every step has one value (a fresh
    run: 1, dropping an earlier run's in the same directory). TensorBoard keeps scalars as float32.
    """

    def __init__(self, path: str | Path, purge_step: int | None = None) -> None:
        # imported here: tensorboard is an optional extra
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(path), purge_step=purge_step)

    @staticmethod
    def tag(key: str) -> str:
        """The scalar's name: the record's key under its group.

        >>> [TensorBoardLog.tag(k) for k in ("train_loss", "ema_test_loss", "noise_var_mean", "lr")]
        ['train/train_loss', 'test/ema_test_loss', 'channel/noise_var_mean', 'optim/lr']
        """
        if key.startswith(("test_", "ema_test_")):
            return f"test/{key}"
        if key.startswith("train_"):
            return f"train/{key}"
        if key.startswith(("energy_", "noise_", "channel_", "active_clients", "bits_")):
            return f"channel/{key}"
        return "optim/lr" if key == "lr" else f"other/{key}"

    def append(self, record: dict) -> None:
        step = record["round"] + 1
        for key, value in record.items():
            if (
                key != "round"
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                self._writer.add_scalar(self.tag(key), value, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# summary.json's keys as the end-of-run table shows them: (what it is, with its unit). Totals are
# shown per round (the key's value / rounds); docs/outputs.md documents every key.
SUMMARY_FIELDS: dict[str, str] = {
    "rounds": "rounds run",
    "test_accuracy": "test accuracy, last evaluation",
    "best_test_accuracy": "test accuracy, best evaluation",
    "ema_test_accuracy": "test accuracy of the EMA weights, last evaluation",
    "best_ema_test_accuracy": "test accuracy of the EMA weights, best evaluation",
    "test_perplexity": "test perplexity, last evaluation",
    "best_test_perplexity": "test perplexity, best evaluation",
    "ema_test_perplexity": "test perplexity of the EMA weights, last evaluation",
    "best_ema_test_perplexity": "test perplexity of the EMA weights, best evaluation",
    "test_loss": "test loss, last evaluation",
    "train_loss": "training loss, mean of the last 10 rounds",
    "energy_per_client_total": "energy per round, highest-spending client (mean over rounds)",
    "energy_per_client_mean_total": "energy per round, mean over clients (mean over rounds)",
    "channel_uses_total": "real channel uses per round",
    "noise_var_mean": "noise variance per entry of the decoded mean (mean over rounds)",
    "active_clients_mean": "clients heard per round (mean)",
    "bits_per_client_mean": "bits per client per round (mean)",
    "participation": "rounds each client took part in",
    "resumed_from_round": "resumed from round",
    "status": "status",
    "error": "why it stopped",
    "wall_time_s": "wall time, s",
}
PER_ROUND = ("energy_per_client_total", "energy_per_client_mean_total", "channel_uses_total")
ENERGY = ("energy_per_client_total", "energy_per_client_mean_total")


def _show(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = str(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"


def _uses_per_round(summary: dict, rounds: list[dict] | None) -> str | None:
    """Channel uses per round; for compressors that alternate (LASER's even/odd factors), both."""
    records = [r for r in rounds or [] if "channel_uses" in r and "round" in r]
    parity: dict[int, set[int]] = {0: set(), 1: set()}
    for r in records:
        parity[r["round"] % 2].add(r["channel_uses"])
    if len(parity[0]) == len(parity[1]) == 1 and parity[0] != parity[1]:
        (even,), (odd,) = parity[0], parity[1]
        return f"{even:,} / {odd:,} (even / odd rounds)"
    if len(every := parity[0] | parity[1]) == 1:
        return f"{next(iter(every)):,}"
    total, count = summary.get("channel_uses_total"), summary.get("rounds")
    return _show(total / count) if isinstance(total, (int, float)) and count else None


def format_summary(summary: dict, rounds: list[dict] | None = None, *, noiseless: bool = False) -> str:
    """The end-of-run table: what each number is (with its unit), its value, and its key in
    ``summary.json``. Totals over rounds are shown per round; ``rounds`` (the history's records)
    tells alternating channel uses apart; a ``noiseless`` run shows no energy (it transmits none).

    >>> print(format_summary({"test_accuracy": 0.9123, "rounds": 3, "channel_uses_total": 30}))
    quantity                        value   summary.json key
    ------------------------------  ------  ------------------
    test accuracy, last evaluation  0.9123  test_accuracy
    rounds run                      3       rounds
    real channel uses per round     10      channel_uses_total
    """
    count = summary.get("rounds")
    rows = []
    for key, value in summary.items():
        if value is None or (noiseless and key in ENERGY):
            continue
        shown = _show(value)
        if key == "channel_uses_total":
            shown = _uses_per_round(summary, rounds) or shown
        elif key in PER_ROUND and isinstance(value, (int, float)) and count:
            shown = _show(value / count)
        rows.append((SUMMARY_FIELDS.get(key, key), shown, key))
    header = ("quantity", "value", "summary.json key")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
