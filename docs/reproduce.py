"""Re-run documented runs from their records in ``docs/data/`` and compare them with what was recorded.

    python docs/reproduce.py --sample N [--seed S] [--table T] [--cell C] [--run NAME] [--data DIR]
    python docs/reproduce.py --shortest [--table T] [--data DIR]

A run is one seed of one cell (a row of a table of ``docs/tables.py``; in a table without a spec,
the runs alike but for the seed). ``--sample N`` re-runs N runs drawn at random (``--seed S``) from
those ``--table``, ``--cell`` and ``--run`` leave; ``--shortest`` every run of the cell whose runs took the
least recorded time. Each is re-run from its recorded ``config.yaml`` in a fresh temporary directory
(``python -m federated.cli run CONFIG --out TMP -qq data.root=...``) and compared with its record:

- **exactly** where the machine matches (the re-run's kernel fingerprint and torch version equal the
  record's; where either has no fingerprint: the same CPU model and torch version):
  the same status, rounds and final metric, and every recorded history row equal on every recorded
  key; a diverged run must diverge again, in the same round;
- **elsewhere**, within the cell's single-run 95% prediction interval, mean +- t_{0.975, n-1} sd
  sqrt(1 + 1/n) over its n finished seeds (the interval of the mean is the wrong yardstick for one
  run). A run that diverges there passes as a note where its cell has a diverged run recorded and
  fails otherwise; a recorded divergence that now finishes is a note, saying what happened.

``--mode exact`` or ``--mode interval`` forces one comparison. It prints one line per run (table,
cell, seed, recorded, re-run, expected, verdict, seconds), then why for every failure and note, and
exits 1 if any run fails its check, 2 for bad input.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # docs/tables.py, for the type checker (imported by path below)
    from tables import Metric, Record

ROOT = Path(__file__).resolve().parents[1]
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def _load_tables() -> ModuleType:
    """docs/tables.py (the records, the cells, the statistics), imported by path: docs/ is no package."""
    name = "docs_tables"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("tables.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


T = _load_tables()


@dataclass
class Candidate:
    """A recorded run to re-run, with its cell's records and its table's manifest and metric."""

    table: str
    cell: str
    record: Record
    cell_records: list
    manifest: dict
    metric: Metric


@dataclass
class Verdict:
    recorded: str
    rerun: str
    expected: str
    verdict: str  # ok, FAIL, note
    why: str = ""


def _metric(table: str, records: list) -> Metric:
    """The table's metric (its spec's), else test_perplexity for text tasks, else test_accuracy."""
    if table in T.TABLES:
        return T.METRICS[T.TABLES[table].metric]
    key = "test_perplexity" if any("test_perplexity" in r.summary for r in records) else "test_accuracy"
    return T.Metric(key, key, "sci")


def candidates(
    data_root: Path, table: str | None = None, cell: str | None = None, run: str | None = None
) -> list[Candidate]:
    """Every recorded run of the tables with data (``table``, ``cell``, ``run``: only those), in order."""
    names = T.tables_with_data(data_root)
    if table is not None:
        if table not in names:
            raise T.TableError(
                f"--table {table}: no data in {data_root} (tables with data: {', '.join(names) or 'none'})"
            )
        names = [table]
    found = []
    cells_seen = set()
    for name in names:
        loaded = T.load_table(name, data_root)
        if loaded is None:
            continue
        manifest, records = loaded
        metric = _metric(name, records)
        for cell_name, cell_records in T.cells_of(name, records).items():
            cells_seen.add(cell_name)
            if cell is not None and cell_name != cell:
                continue
            found += [
                Candidate(name, cell_name, r, cell_records, manifest, metric)
                for r in cell_records
                if run is None or r.name == run
            ]
    if cell is not None and not found:
        raise T.TableError(f"--cell {cell}: no such cell (cells: {', '.join(sorted(cells_seen)) or 'none'})")
    if run is not None and not found:
        raise T.TableError(f"--run {run}: no such recorded run (a path under DATA/TABLE/records/)")
    return found


def shortest_cell(found: list[Candidate]) -> list[Candidate]:
    """The runs of the cell whose recorded runs took the least wall time in all."""
    totals: dict[tuple[str, str], float] = {}
    for c in found:
        totals[(c.table, c.cell)] = totals.get((c.table, c.cell), 0.0) + c.record.wall_time_s
    table, cell = min(totals, key=lambda k: (totals[k], k))
    return [c for c in found if (c.table, c.cell) == (table, cell)]


# -------------------------------------------------------------------------------- re-running
def rerun(candidate: Candidate, out: Path, data_root: Path, timeout: float | None = None) -> tuple:
    """Run the record's config.yaml into ``out`` in a fresh process: (the re-run's Record or None,
    seconds, an error line or None)."""
    command = [
        sys.executable,
        "-m",
        "federated.cli",
        "run",
        str(candidate.record.path / "config.yaml"),
        "--out",
        str(out),
        "-qq",
        f"data.root={data_root}",  # where the datasets are cached: no part of what a run computes
    ]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - started, f"no result within {timeout:g} s"
    seconds = time.perf_counter() - started
    if not (out / "summary.json").is_file():
        lines = (result.stderr or result.stdout).strip().splitlines()
        return (
            None,
            seconds,
            f"the run failed (exit {result.returncode}): {lines[-1] if lines else 'no output'}",
        )
    try:
        return T.read_record(out, candidate.record.name), seconds, None
    except T.TableError as error:  # a damaged summary.json or history
        return None, seconds, str(error)


# ------------------------------------------------------------------------------- comparisons
def same_machine(candidate: Candidate, rerun_env: object) -> tuple[bool, str]:
    """Whether the re-run's machine computes as the record's: equal kernel fingerprints and torch
    versions; where either side has no fingerprint, the same CPU model and torch."""
    recorded_env = candidate.record.summary.get(T.ENVIRONMENT_KEY) or candidate.manifest.get("environment")
    recorded_fp = T.find_fingerprint(recorded_env) or candidate.manifest.get("kernel_fingerprint")
    recorded_torch = T.recorded_torch(candidate.manifest)
    if isinstance(recorded_env, dict) and isinstance(recorded_env.get("torch"), str):
        recorded_torch = recorded_env["torch"]
    now_fp = T.find_fingerprint(rerun_env)
    now_torch = rerun_env.get("torch") if isinstance(rerun_env, dict) else None
    now_torch = now_torch or T.packages().get("torch")
    if recorded_fp and now_fp:
        same = recorded_fp == now_fp and recorded_torch == now_torch
        if same:
            return True, f"kernel fingerprint {now_fp} and torch {now_torch}, as recorded"
        return False, (
            f"kernel fingerprint {now_fp} (recorded {recorded_fp}), "
            f"torch {now_torch} (recorded {recorded_torch})"
        )
    recorded_cpu = (candidate.manifest.get("machine") or {}).get("cpu_model")
    now_cpu = T.machine()["cpu_model"]
    same = recorded_cpu == now_cpu and recorded_torch == now_torch
    recorded_text = "as recorded" if same else f"recorded: {recorded_cpu}, torch {recorded_torch}"
    return same, f"no kernel fingerprint to compare; CPU {now_cpu}, torch {now_torch} ({recorded_text})"


def _summary_key(metric: Metric) -> str | None:
    """The summary.json key behind a metric (None: it comes from the history rows)."""
    kind, _, key = metric.source.rpartition(":")
    return None if kind == "history" else key


def difference(record: Record, new: Record, metric: Metric) -> str | None:
    """The first difference between a record and its re-run (None: identical on everything recorded):
    status, the round a divergence happened in, rounds, the final metric, then every recorded history
    row on every recorded key (new keys of the re-run are not compared)."""
    if new.status != record.status:
        return f"status {new.status} (recorded {record.status})"
    if new.diverged_round != record.diverged_round:
        return f"diverged in round {new.diverged_round} (recorded round {record.diverged_round})"
    for key in ("rounds", _summary_key(metric)):
        if key is not None and new.summary.get(key) != record.summary.get(key):
            return f"{key} {new.summary.get(key)!r} (recorded {record.summary.get(key)!r})"
    rows = new.rows if record.whole else T.evaluation_rows(new.rows)
    if len(rows) != len(record.rows):
        return f"{len(rows)} history rows to compare (recorded {len(record.rows)})"
    for old_row, new_row in zip(record.rows, rows):
        for key, value in old_row.items():
            got = new_row.get(key, "(absent)")
            if got != value:
                return f"round {old_row.get('round')}: {key} {got!r} (recorded {value!r})"
    return None


def _value_text(record: Record | None, metric: Metric) -> str:
    if record is None:
        return "failed"
    if record.status == "diverged":
        return f"diverged (round {record.diverged_round})"
    value = metric.of(record)
    return f"{value:.6g}" if value is not None else record.status


def prediction_interval(values: list[float]) -> tuple[float, float] | None:
    """One more run's 95% prediction interval from n values: mean +- t_{0.975, n-1} sd sqrt(1 + 1/n)
    (None for fewer than 2 values)."""
    s = T.stats(values)
    return None if s.n < 2 else (s.mean - s.predict, s.mean + s.predict)


def judge(candidate: Candidate, new: Record | None, error: str | None, exact: bool) -> Verdict:
    """The verdict on one re-run (see the module's docstring)."""
    record, metric = candidate.record, candidate.metric
    recorded, now = _value_text(record, metric), _value_text(new, metric)
    if new is None:
        return Verdict(recorded, now, "exact" if exact else "-", "FAIL", error or "no result")
    if exact:
        found = difference(record, new, metric)
        return Verdict(recorded, now, "exact", "FAIL" if found else "ok", found or "")
    values = [v for v in (metric.of(r) for r in candidate.cell_records) if v is not None]
    interval = prediction_interval(values)
    expected = "-" if interval is None else f"[{interval[0]:.4g}, {interval[1]:.4g}]"
    cell_diverged = any(r.status == "diverged" for r in candidate.cell_records)
    if new.status == "diverged":
        if record.status == "diverged":
            return Verdict(recorded, now, expected, "ok", "")
        if cell_diverged:
            return Verdict(recorded, now, expected, "note", "diverged; its cell has diverged runs recorded")
        return Verdict(recorded, now, expected, "FAIL", "diverged; no run of its cell diverged")
    value = metric.of(new)
    if value is None:
        return Verdict(recorded, now, expected, "FAIL", f"status {new.status}, no {metric.source}")
    inside = interval is not None and interval[0] <= value <= interval[1]
    if record.status == "diverged":
        where = "inside" if inside else "outside" if interval else "no interval for"
        return Verdict(
            recorded, now, expected, "note", f"finished ({where} the cell's interval); recorded diverged"
        )
    if interval is None:
        return Verdict(
            recorded, now, expected, "note", f"no interval: {len(values)} finished seed(s) recorded"
        )
    if inside:
        return Verdict(recorded, now, expected, "ok", "")
    return Verdict(recorded, now, expected, "FAIL", "outside the cell's 95% prediction interval")


# ------------------------------------------------------------------------------- the command
HEADER = ("table", "cell", "seed", "recorded", "re-run", "expected", "verdict", "seconds")


def format_lines(lines: list[tuple]) -> str:
    texts = [HEADER, *[tuple(str(x) for x in line) for line in lines]]
    widths = [max(len(t[i]) for t in texts) for i in range(len(HEADER))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(t, widths)).rstrip() for t in texts]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python docs/reproduce.py",
        description="Re-run recorded runs of docs/data/ and compare: exactly on a machine that computes "
        "as the recorded one, else within each cell's single-run 95% prediction interval.",
        allow_abbrev=False,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sample", type=int, default=1, metavar="N", help="re-run N random runs (default 1)")
    which.add_argument("--shortest", action="store_true", help="every run of the cell of least recorded time")
    parser.add_argument("--seed", type=int, default=0, help="the draw of --sample (default 0)")
    parser.add_argument("--table", help="only this table's runs")
    parser.add_argument("--cell", help="only this cell's runs (a row id of the table's spec)")
    parser.add_argument("--run", help="only this run (its path under DATA/TABLE/records/)")
    parser.add_argument("--data", type=Path, default=T.DATA, help="the data folder (default docs/data)")
    parser.add_argument(
        "--mode",
        choices=("auto", "exact", "interval"),
        default="auto",
        help="auto (default): exact where the machine matches, else the interval",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=Path(os.environ.get("LASER_DATA_ROOT") or ROOT / "data"),
        help="where the re-runs cache their datasets (default $LASER_DATA_ROOT, else data/)",
    )
    parser.add_argument(
        "--keep", type=Path, help="re-run into KEEP/<table>/<run> and keep it (default: a temporary folder)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: a run already kept there (its summary.json) is judged again, not re-run",
    )
    parser.add_argument("--timeout", type=float, help="seconds a re-run may take (default: no limit)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.sample < 1:
            raise T.TableError(f"--sample {args.sample}: a number of runs >= 1")
        if args.reuse and args.keep is None:
            raise T.TableError("--reuse: needs --keep DIR, where the kept re-runs are")
        found = candidates(args.data, args.table, args.cell, args.run)
        if not found:
            raise T.TableError(
                f"--data {args.data}: no recorded run (collect some: python docs/tables.py collect)"
            )
    except (T.TableError, OSError, ValueError) as error:
        print(f"reproduce.py: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.shortest:
        chosen = shortest_cell(found)
    else:
        order = {id(c): i for i, c in enumerate(found)}
        chosen = sorted(
            random.Random(args.seed).sample(found, min(args.sample, len(found))), key=lambda c: order[id(c)]
        )
    print(f"reproduce.py: {len(chosen)} of {len(found)} recorded runs, from {args.data}")
    lines, notes = [], []
    with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
        for i, candidate in enumerate(chosen):
            out = (
                (args.keep / candidate.table / candidate.record.name) if args.keep else Path(scratch) / str(i)
            )
            if args.reuse and (out / "summary.json").is_file():
                new, seconds, failure = T.read_record(out, candidate.record.name), 0.0, None
            else:
                new, seconds, failure = rerun(candidate, out, args.data_root, args.timeout)
            if args.mode == "auto":
                env = new.summary.get(T.ENVIRONMENT_KEY) if new is not None else None
                exact, basis = same_machine(candidate, env)
            else:
                exact, basis = args.mode == "exact", f"--mode {args.mode}"
            verdict = judge(candidate, new, failure, exact)
            line = (candidate.table, candidate.cell, candidate.record.seed, verdict.recorded, verdict.rerun)
            lines.append((*line, verdict.expected, verdict.verdict, f"{seconds:.0f}"))
            print(f"  {candidate.table} {candidate.record.name}: {verdict.verdict} ({basis})", flush=True)
            if verdict.why:
                notes.append(
                    f"  {candidate.table}/{candidate.cell} seed {candidate.record.seed}: "
                    f"{verdict.verdict}: {verdict.why}"
                )
    print()
    print(format_lines(lines))
    if notes:
        print("\n".join(["", *notes]))
    failed = sum(line[6] == "FAIL" for line in lines)
    print(
        f"\nreproduce.py: {len(lines) - failed} of {len(lines)} re-runs pass their check"
        + (f", {failed} FAIL" if failed else "")
    )
    return EXIT_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
