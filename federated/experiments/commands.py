"""What ``laser sweep`` and ``laser plot`` do with a sweep's runs once they exist: the table printed
and written (``summary.csv``, the energy to a target), and the figures with their titles; the
command line (:mod:`federated.cli`) parses the arguments and calls these."""

from __future__ import annotations

import json
from pathlib import Path

from federated.config import ConfigError

__all__ = ["caption", "partition_figures", "plot", "report", "subtitle", "sweep_table"]


AIR_TIME = "air_time"  # laser plot --x air_time: the metric against cumulative seconds on air


def _timed(run_dir: Path) -> bool:
    """Whether the run's rounds record their air time (physical units: its first history line says)."""
    try:
        with (run_dir / "history.jsonl").open(encoding="utf-8") as lines:
            return "air_time_s" in json.loads(lines.readline() or "{}")
    except (OSError, ValueError):
        return False


def sweep_table(root: Path, metric: str | None, x: str | None = None, methods: str | None = None):
    """The sweep table of ``root`` (raises ConfigError when it holds no finished run)."""
    from federated.config import ANALOG_COMPRESSORS, DIGITAL_COMPRESSORS
    from federated.experiments.results import METHOD_KEY, SUMMARY_X, is_reference, load_runs, summarize

    runs = load_runs(root)
    if methods is not None:
        keep = [m.strip() for m in methods.split(",")]
        known = ANALOG_COMPRESSORS + DIGITAL_COMPRESSORS
        if not all(m in known for m in keep):
            raise ConfigError(
                "--methods", methods, "compressor names separated by commas: " + ", ".join(known)
            )
        runs = [r for r in runs if r.config.get(METHOD_KEY) in keep or is_reference(r.config)]
    if not any(r.status in ("finished", "diverged") for r in runs):
        raise ConfigError("SWEEP_DIR", str(root), "a directory holding finished runs (laser sweep --out DIR)")
    if x == AIR_TIME:  # the metric against cumulative air time: a figure of its own (plot), no x key
        if not any(_timed(r.path) for r in runs):
            raise ConfigError(
                "--x", x, "runs in physical units (channel.scenario), whose rounds have air times"
            )
        x = None
    elif x is not None and not any(x in r.config or (x in SUMMARY_X and x in r.summary) for r in runs):
        raise ConfigError(
            "--x",
            x,
            "a configuration key of the runs (e.g. power.energy, power.snr_db or power.max_dbm), "
            f"{', '.join(SUMMARY_X)} (from their summaries) or {AIR_TIME} (cumulative seconds on air)",
        )
    table = summarize(runs, metric=metric, x=x)
    if not any(r["n"] for r in table.rows):
        raise ConfigError(
            "--metric",
            table.metric,
            "a metric the runs' summary.json files hold, e.g. test_accuracy, "
            "best_test_accuracy, ema_test_accuracy, test_perplexity",
        )
    return table


def report(root: Path, metric: str | None, target: float | None) -> None:
    """Print the sweep's table and write summary.csv and energy_to_target.csv."""
    from federated.experiments.results import format_table, write_csv
    from federated.experiments.targets import format_targets, target_table

    table = sweep_table(root, metric)
    write_csv(table.rows, root / "summary.csv")
    print(format_table(table))
    if table.x in ("power.energy", "power.snr_db") and table.methods:
        goal, rows = target_table(table, target)
        write_csv(rows, root / f"{'snr' if table.x == 'power.snr_db' else 'energy'}_to_target.csv")
        print("\n" + format_targets(table, goal, rows))
    extra = [root / f"{name}_to_target.csv" for name in ("energy", "snr")]
    print("\ntables: " + ", ".join(str(p) for p in [root / "summary.csv", *extra] if p.is_file()))


def caption(table, *, over_rounds: bool = False) -> str:
    """A figure's title: the metric and the runs' rounds ("test accuracy after 150 rounds", "over"
    them for the round figure), then what the lines and bands are for the seeds behind the points."""
    from federated.experiments.plots import interval_caption, metric_caption
    from federated.experiments.results import figure_rows

    rows, references = figure_rows(table)
    rounds = [run.config["rounds"] for run in table.plotted_runs() if "rounds" in run.config]
    what = metric_caption(table.metric, rounds, over_rounds=over_rounds)
    return f"{what}: {interval_caption([*rows, *references])}"


def subtitle(table) -> str:
    """The figures' subtitle: the task, model, clients and channel of the runs in the table and, on a
    second line, whether they ran fewer rounds than their shipped configs document (a comparison
    after 150 rounds need not hold after 600)."""
    from federated.experiments.plots import runs_subtitle, shortened_note
    from federated.experiments.results import documented_rounds

    runs = {id(run): run for row in table.rows for run in row.get("_runs", ())}
    line = runs_subtitle(run.config for run in runs.values())
    shortened = []
    for run in table.plotted_runs():
        documented = documented_rounds(run)
        if documented is not None and isinstance(run.config.get("rounds"), int):
            if run.config["rounds"] < documented[1]:
                shortened.append((documented[0], run.config["rounds"], documented[1]))
    note = shortened_note(shortened)
    return f"{line}\n{note}" if note else line


def partition_figures(root: Path, out: Path) -> list[Path]:
    """One heat map per distinct client x class partition among the runs under ``root`` (their
    ``partition.json``), named by its settings (and the seed, or a number, where settings repeat)."""
    from federated.experiments.plots import partition_heatmap, partition_stem, partition_title
    from federated.experiments.results import SEED_KEY, load_runs

    distinct: dict[str, tuple[dict, str | None, list]] = {}  # the table's JSON -> (table, data, seeds)
    for run in load_runs(root):
        try:
            table = json.loads((run.path / "partition.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(table, dict) or not table.get("counts"):
            continue  # a language partition: no classes
        key = json.dumps(table, sort_keys=True)
        _, data, seeds = distinct.setdefault(key, (table, run.config.get("data.name"), []))
        if run.config.get(SEED_KEY) not in seeds:
            seeds.append(run.config.get(SEED_KEY))
    entries = list(distinct.values())
    stems = [partition_stem(table, data) for table, data, _ in entries]
    # the same settings drawn from other seeds (or other data): the seed, else a number, tells them apart
    stems = [
        f"{stem}_seed{seeds[0]}" if stems.count(stem) > 1 and len(seeds) == 1 else stem
        for stem, (_, _, seeds) in zip(stems, entries)
    ]
    stems = [f"{stem}_{n + 1}" if stems.count(stem) > 1 else stem for n, stem in enumerate(stems)]
    written = []
    for stem, (table, data, seeds) in zip(stems, entries):
        written += partition_heatmap(table, out / stem, title=partition_title(table, data, seeds))
    return written


def plot(
    sweep_dir: str | Path, metric: str | None, x: str | None, methods: str | None, out: str | None
) -> list[Path]:
    """``laser plot``'s figures of the sweep under ``sweep_dir`` (into ``out``, default
    ``sweep_dir/figures``): the metric against ``x`` (when the runs sweep one), against the round,
    and each distinct partition of the data; the files written."""
    from federated.experiments.plots import plot_metric_vs_round, plot_metric_vs_x
    from federated.experiments.results import figure_rows, round_curves

    root = Path(sweep_dir)
    if not root.is_dir():
        raise ConfigError("SWEEP_DIR", sweep_dir, "an existing directory")
    table = sweep_table(root, metric, x, methods)
    target = Path(out) if out else root / "figures"
    written = []
    line = subtitle(table)
    if table.x is not None and x != AIR_TIME:
        rows, references = figure_rows(table)  # bands: the t-interval from 3 seeds on, else the range
        written += plot_metric_vs_x(
            rows,
            target / f"{table.metric}_vs_{table.x.split('.')[-1]}",
            metric=table.metric,
            x=table.x,
            references=[{**r, "label": r["method"]} for r in references],
            title=caption(table),
            subtitle=line,
        )
    if x != AIR_TIME:
        written += plot_metric_vs_round(
            round_curves(table),
            target / f"{table.metric}_vs_round",
            metric=table.metric,
            title=caption(table, over_rounds=True),
            subtitle=line,
        )
    timed = round_curves(table, air_time=True) if any(_timed(r.path) for r in table.plotted_runs()) else []
    if timed:  # physical units: the metric against the air time spent, how methods compare on air
        written += plot_metric_vs_round(
            timed,
            target / f"{table.metric}_vs_air_time",
            metric=table.metric,
            title=caption(table, over_rounds=True).replace("over", "against the air time of", 1),
            subtitle=line,
            xlabel="cumulative air time (s)",
            xscale="log",
        )
    written += partition_figures(root, target)
    return written
