"""The ``laser`` command line. It parses arguments and calls the library; nothing else.

laser run [CONFIG] [key.sub=value ...] [--out DIR]
laser run --resume DIR
laser sweep CONFIG [CONFIG ...] [key.sub=value ...] --grid key=v1,v2,... [--jobs N] [--out DIR]
laser plot SWEEP_DIR [--metric NAME] [--x KEY] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
import time
from pathlib import Path

from federated.config import Config, ConfigError, find_config, load_config, shipped_configs
from federated.data.errors import DataError

EXIT_BAD_INPUT = 2


def _summary_epilog() -> str:
    """``laser run --help``'s list of what the results table (and summary.json) holds: each key, what
    its number is and its unit, so that a user reads the table without the docs."""
    from federated.history import ENERGY_NOTE, SUMMARY_FIELDS, SUMMARY_UNITS

    width = max(map(len, SUMMARY_FIELDS))
    lines = [
        f"  {key:<{width}}  {meaning}" + (f" [{SUMMARY_UNITS[key]}]" if key in SUMMARY_UNITS else "")
        for key, meaning in SUMMARY_FIELDS.items()
    ]
    return (
        "The results table at the end shows DIR/summary.json's keys, each with its unit in brackets\n"
        "(docs/outputs.md also has the per-round history). The keys ending in _total hold sums over\n"
        "rounds: the table shows their mean per round, with the total beside it.\n"
        + "\n".join(lines)
        + "\n\n"
        + textwrap.fill(ENERGY_NOTE[0].upper() + ENERGY_NOTE[1:] + ".", 100)
        + "\n"
        + textwrap.fill(
            "The highest-spending client may spend less than its budget: the alignment rule scales each "
            "block to its weakest link (largest norm / gain), which alone spends its whole share; the table "
            "then says so (docs/physics.md, section 4).",
            100,
        )
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="laser",
        description="Federated learning over wireless channels (LASER and baselines).",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        allow_abbrev=False,
        help="train one configuration",
        description="Train one configuration. Without CONFIG, the packaged quickstart runs "
        "(MNIST-1D, 16 clients, LASER at energy 100; about a minute on 2 CPU cores).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_summary_epilog(),
    )
    run.add_argument(
        "config",
        nargs="?",
        help="a YAML file or a shipped config's name (`laser configs`; default: the quickstart)",
    )
    run.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    run.add_argument("--out", help="run directory (default: runs/<config name>-<time>)")
    run.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last checkpoint, with its stored configuration "
        "(to the result an uninterrupted run gets)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out: the files a run writes are deleted (config.yaml, "
        "history.jsonl, summary.json, partition.json, the checkpoints checkpoint.pt, "
        "checkpoint.prev.pt, checkpoint.rank<r>[.prev].pt, the processes' rank<r>.log, the "
        "TensorBoard event files in tensorboard/ and the .NAME.PID.tmp files a killed write left), and "
        "nothing else (your own files, a sweep's run.log, stay); without it a directory holding a run "
        "is refused",
    )
    run.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="no progress; twice (-qq): no results table either",
    )
    run.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="split the clients over this many processes on this machine (torch.distributed: gloo on "
        "CPUs, NCCL with one GPU each); the result equals one process's to float tolerance",
    )

    sweep = commands.add_parser(
        "sweep",
        allow_abbrev=False,
        help="run the cartesian product of configuration values, resumably",
        description=textwrap.fill(
            "Run every config file times the product of the --grid values (no --grid: each config once), "
            "one run directory per point under --out, --jobs at a time. Re-running the same command skips "
            "finished points and resumes unfinished ones; a failed point is recorded and the others go on. "
            "Ends with the summary table (also DIR/summary.csv). Exit status: 0 when every point finished "
            "or diverged, 1 when a point failed, 2 when a point's configuration was refused.",
            100,
        ),
        epilog="examples:\n"
        "  laser sweep configs/mnist1d_laser.yaml configs/mnist1d_zsgd.yaml \\\n"
        "      --grid power.energy=logspace:10:1e4:4 --grid seed=0,1,2 --jobs 2 --out runs/energy\n"
        "  laser sweep configs/mnist1d_noiseless.yaml --grid seed=range:3 --out runs/energy\n"
        "  laser sweep configs/mnist1d_laser.yaml --grid optimizer.lr=0.01,0.05,0.1 --grid seed=0,1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument(
        "configs",
        nargs="+",
        metavar="CONFIG",
        help="YAML files or shipped config names (key=value items: fixed overrides)",
    )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="key=VALUES",
        help="a key and its values: v1,v2,... or logspace:START:STOP:NUM, linspace:START:STOP:NUM, "
        "range:[START:]STOP (repeatable; the product is swept)",
    )
    sweep.add_argument(
        "--jobs", type=int, default=1, help="runs at a time (local: processes here; default 1)"
    )
    sweep.add_argument(
        "--launcher",
        choices=("local", "ray", "slurm"),
        default="local",
        help="where each point runs: a process here (default), a Ray task (--address: a cluster), or a "
        "Slurm job through submitit; with a cluster, --out must be on a file system every node sees",
    )
    sweep.add_argument(
        "--address", help="ray: the address of a running Ray cluster (default: start one here)"
    )
    sweep.add_argument("--cpus-per-run", type=float, default=1.0, help="ray, slurm: CPUs each point asks for")
    sweep.add_argument("--gpus-per-run", type=float, default=0.0, help="ray, slurm: GPUs each point asks for")
    sweep.add_argument(
        "--slurm-cluster",
        choices=("slurm", "local"),
        default="slurm",
        help="slurm: submit with sbatch (default), or run the same jobs as local processes through submitit",
    )
    sweep.add_argument("--partition", help="slurm: the partition to submit to")
    sweep.add_argument(
        "--timeout-min",
        type=int,
        default=24 * 60,
        help="slurm: each job's time limit in minutes (default 1440)",
    )
    sweep.add_argument("--out", help="sweep directory (default: runs/sweep-<first config name>)")
    sweep.add_argument(
        "--metric", help="summary metric (default: test_accuracy, or test_perplexity for text)"
    )
    sweep.add_argument(
        "--target",
        type=float,
        help="metric to reach for the energy-to-target table (default: 90%% of the noiseless "
        "reference's, or of the best mean; perplexity: 110%%)",
    )
    sweep.add_argument(
        "--max-points",
        type=int,
        default=10_000,
        help="refuse a sweep of more points than this, before building it (default 10000)",
    )
    sweep.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress (on a terminal a bar, in a log one line per tenth of the sweep's rounds); "
        "the summary table stays",
    )

    plot = commands.add_parser(
        "plot",
        allow_abbrev=False,
        help="figures of a sweep directory",
        description="Draw the metric against energy (or SNR) with one line per method, 95% confidence bands "
        "over seeds and the noiseless reference, the metric against rounds, and each distinct partition of "
        "the training data over the clients (the runs' partition.json) as a heat map; PNG and PDF.",
    )
    plot.add_argument(
        "sweep_dir", metavar="SWEEP_DIR", help="a directory of run directories (laser sweep --out)"
    )
    plot.add_argument("--metric", help="default: test_accuracy, or test_perplexity for text tasks")
    plot.add_argument(
        "--x",
        help="the x axis: a configuration key (default: power.energy, power.snr_db or power.max_dbm, the "
        "one that varies), snr_per_use_db or privacy_epsilon (from the runs' summaries) or air_time (the "
        "metric against cumulative seconds on air; runs in physical units also get that figure beside the "
        "others)",
    )
    plot.add_argument("--methods", help="only these compressor names, comma-separated (references are kept)")
    plot.add_argument("--out", help="where the figures go (default: SWEEP_DIR/figures)")

    commands.add_parser(
        "configs",
        allow_abbrev=False,
        help="list the configs shipped with the package",
        description="List the shipped configs by name, with their one-line descriptions. Any command "
        "takes a name where it takes a YAML file: laser run mnist1d_laser, laser run paper/gpt2_laser.",
    )
    return parser


def _configs() -> int:
    """``laser configs``: every shipped config's name and description, and where they lie."""
    from federated.config.shipped import SHIPPED_DIR, describe

    shipped = shipped_configs()
    width = max(map(len, shipped))
    for name, path in shipped.items():
        print(f"{name:<{width}}  {describe(path)}")
    print(f"\n{len(shipped)} configs in {SHIPPED_DIR}; run one with `laser run NAME` (a YAML path works too)")
    return 0


def _load(args: argparse.Namespace) -> tuple[Config, Path]:
    """The run's configuration and directory from the command line."""
    if args.resume is not None:
        out = Path(args.resume)
        if args.config is not None or args.overrides or args.out:
            raise ConfigError(
                "--resume",
                args.resume,
                "no CONFIG, overrides or --out beside it (a resumed run "
                "keeps the configuration and directory it started with)",
            )
        if not (out / "config.yaml").is_file():
            raise ConfigError(
                "--resume", args.resume, "a run directory written by laser run (with config.yaml)"
            )
        return load_config(out / "config.yaml"), out
    # A bare "key=value" in the config position is an override of the quickstart.
    if args.config is not None and "=" in args.config and not Path(args.config).exists():
        args.overrides.insert(0, args.config)
        args.config = None
    if args.config is None:
        config = load_config(find_config("quickstart"), args.overrides)
        name = "quickstart"
    else:
        config = load_config(args.config, args.overrides)
        name = Path(args.config).stem
    if args.out:
        return config, Path(args.out)
    out = runs_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    _announce(f"laser run: writing the run to {out}")
    return config, out


RUNS_ENV = "LASER_RUNS_DIR"


def runs_dir() -> Path:
    """Where runs go without --out: ``$LASER_RUNS_DIR``, else ``runs/`` in the current directory."""
    return Path(os.environ.get(RUNS_ENV) or "runs")


def _announce(what: str) -> None:
    """Say where output goes when the user did not choose: one line on stdout (stderr keeps to the
    one-line errors), flushed before any work starts."""
    print(f"{what} (--out DIR, or {RUNS_ENV}, puts it elsewhere)", flush=True)


def _launch(args: argparse.Namespace, argv: list[str], config: Config, out: Path) -> int:
    """Start ``--nproc`` copies of this command as one torch.distributed job; rank 0's status."""
    from federated.distributed import check_shardable, launch

    check_shardable(config, args.nproc)
    child_argv, skip = [], False
    for arg in argv:  # the same command without --nproc (and with --out fixed)
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            child_argv.append(arg)
    if args.resume is None and not args.out:
        child_argv += ["--out", str(out)]
    from federated.outputs import RUN_LOCK_HELD, claim, lock_run

    # this process holds the directory for the whole run, and the processes it starts know it is held
    # for them (a lock of their own would find it taken: federated.train)
    with lock_run(out):
        if args.resume is None:
            claim(out, overwrite=args.overwrite)  # the processes write into it: refuse a run there first
        before = os.environ.get(RUN_LOCK_HELD)
        os.environ[RUN_LOCK_HELD] = str(out.resolve())
        try:
            return launch(child_argv, args.nproc, out)
        finally:
            if before is None:
                del os.environ[RUN_LOCK_HELD]
            else:
                os.environ[RUN_LOCK_HELD] = before


def _pin_cpu_isa(config: Config) -> None:
    """Apply the run's ``cpu_isa`` (``$LASER_CPU_ISA`` overriding it) before torch is imported: torch and
    oneDNN fix their instruction set at their first kernel, and the processes a run starts (``--nproc``)
    inherit the pin through the environment (:mod:`federated.reproducible`). Whether it held goes into
    summary.json (``cpu_isa``), and :func:`~federated.train.train` warns where it did not."""
    from federated.reproducible import pin_cpu_isa

    pin_cpu_isa(config.cpu_isa)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    config, out = _load(args)
    _pin_cpu_isa(config)  # first: nothing below may run a tensor operation before it
    from federated.checkpoint import CheckpointError
    from federated.config import ANALOG_COMPRESSORS
    from federated.history import format_summary, outcome
    from federated.outputs import RunExistsError
    from federated.simulation import NonFiniteError, resolve_device
    from federated.train import train

    if args.nproc < 1:
        raise ConfigError("--nproc", args.nproc, "an integer >= 1")
    try:
        resolve_device(config.device)
    except ValueError as error:
        raise ConfigError("device", config.device, "auto, cpu, or a device this machine has") from error
    if args.resume is not None and (out / "summary.json").is_file():
        try:
            summary = json.loads((out / "summary.json").read_text())
        except (OSError, ValueError):  # damaged: the checkpoint says where the run is
            summary = {}
        if outcome(summary) == "finished":
            print(f"laser run: {out} already finished ({summary.get('rounds')} rounds); nothing to resume")
            return 0
    try:
        if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # (inside a launch, train() joins the group)
            return _launch(args, argv, config, out)
        history = train(
            config, out, progress=args.quiet == 0, resume=args.resume is not None, overwrite=args.overwrite
        )
    except RunExistsError as error:
        print(f"laser run: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NonFiniteError as error:  # a result: the run diverged (summary.json says so)
        print(f"laser run: diverged: {error}. History so far: {out}/history.jsonl", file=sys.stderr)
        return 0
    except (CheckpointError, DataError) as error:
        print(f"laser run: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if "WORLD_SIZE" in os.environ:  # one process of a launch: its group goes before the interpreter
            from federated.distributed import close_group

            close_group()
    if args.quiet < 2:
        # the alignment line needs one budget for all (an analog method, no power.spread_db)
        equal_budgets = config.compressor.name in ANALOG_COMPRESSORS and not config.power.spread_db
        table = format_summary(
            history.summary,
            history.rounds,
            noiseless=config.channel.name == "noiseless",
            budget=config.power.energy if equal_budgets else None,
        )
        print(f"\n{table}\n\nrun directory: {out}")
    return 0


def _launcher_options(args: argparse.Namespace) -> dict:
    """What ``laser sweep``'s launcher options ask :func:`~federated.experiments.sweep.run_sweep` for
    (the launcher builds itself there, checking its packages and --out)."""
    from federated.experiments.launchers import Resources

    for key, value, least in (
        ("--cpus-per-run", args.cpus_per_run, 0.0),
        ("--gpus-per-run", args.gpus_per_run, 0.0),
    ):
        if not (math.isfinite(value) and value >= least) or (key == "--cpus-per-run" and value <= 0):
            raise ConfigError(key, value, "a number > 0" if key == "--cpus-per-run" else "a number >= 0")
    if args.timeout_min < 1:
        raise ConfigError("--timeout-min", args.timeout_min, "an integer >= 1 (minutes)")
    given = {
        "--address": args.address is not None and args.launcher != "ray",
        "--partition": args.partition is not None and args.launcher != "slurm",
    }
    for key, wrong in given.items():
        if wrong:
            needs = "ray" if key == "--address" else "slurm"
            raise ConfigError(key, getattr(args, key[2:]), f"to go with --launcher {needs}")
    options: dict = {"launcher": args.launcher, "resources": Resources(args.cpus_per_run, args.gpus_per_run)}
    if args.launcher == "ray":
        options["address"] = args.address
    if args.launcher == "slurm":
        options.update(
            slurm_cluster=args.slurm_cluster, timeout_min=args.timeout_min, partition=args.partition
        )
    return options


def _sweep(args: argparse.Namespace) -> int:
    from federated.experiments.commands import report
    from federated.experiments.sweep import plan_sweep, run_sweep
    from federated.reproducible import resolve_cpu_isa

    # each point is a `laser run` process that pins its own config's cpu_isa before torch starts;
    # a bad $LASER_CPU_ISA is refused here once rather than by every point
    resolve_cpu_isa("avx2")

    configs = [c for c in args.configs if "=" not in c or Path(c).exists()]
    overrides = [c for c in args.configs if c not in configs]
    if not configs:
        raise ConfigError("CONFIG", " ".join(args.configs), "at least one YAML file")
    if args.jobs < 1:
        raise ConfigError("--jobs", args.jobs, "an integer >= 1")
    if args.max_points < 1:
        raise ConfigError("--max-points", args.max_points, "an integer >= 1")
    if args.target is not None and not math.isfinite(args.target):
        raise ConfigError("--target", args.target, "a finite number (a metric value to reach)")
    out = Path(args.out) if args.out else runs_dir() / f"sweep-{Path(configs[0]).stem}"
    if not args.out:
        _announce(f"laser sweep: writing the sweep to {out}")
    points = plan_sweep(configs, args.grid, out, overrides, max_points=args.max_points)
    result = run_sweep(points, out, jobs=args.jobs, progress=not args.quiet, **_launcher_options(args))
    skipped = sum(r.skipped for r in result.results)
    diverged = sum(r.status == "diverged" for r in result.results)
    failures = result.failures
    report_error = None
    if any(r.status in ("finished", "diverged") for r in result.results):
        print()
        try:
            report(out, args.metric, args.target)
        except ConfigError as error:  # e.g. a --metric the runs do not have: the runs are kept
            report_error = error
    print(
        f"\nlaser sweep: {len(points)} point{'s' * (len(points) != 1)}: {len(points) - len(failures)} done "
        f"({skipped} before this run, {diverged} diverged), {len(failures)} failed; sweep directory {out}"
    )
    if failures:
        print(
            f"laser sweep: {len(failures)} point(s) failed (details in {out / 'sweep.json'}):",
            file=sys.stderr,
        )
        for failure in failures:
            print(
                f"  {failure.point.name}: {failure.error} (log: {failure.point.path / 'run.log'})",
                file=sys.stderr,
            )
    if report_error is not None:
        print(
            f"laser sweep: config error: {report_error} (the runs are done; `laser plot {out} --metric ...` "
            "summarises them again)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return result.exit_status


def _plot(args: argparse.Namespace) -> int:
    from federated.experiments.commands import plot

    for path in plot(args.sweep_dir, args.metric, args.x, args.methods, args.out):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may also come after the options: laser run CONFIG --out DIR key=value
    unknown = [a for a in extra if "=" not in a or a.startswith("-")]
    if unknown:
        option = next((a for a in unknown if a.startswith("--")), None)
        hint = (
            f"; config keys are overrides written key=value, e.g. {option[2:].split('=')[0]}=VALUE"
            if option
            else ""
        )
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    if args.command == "run":
        args.overrides.extend(extra)
    elif args.command == "sweep":
        args.configs.extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "run":
            return _run(args, list(sys.argv[1:] if argv is None else argv))
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "plot":
            return _plot(args)
        if args.command == "configs":
            return _configs()
    except ConfigError as error:
        print(f"laser {args.command}: config error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            f"\nlaser {args.command}: interrupted; what had finished is kept"
            + ("; the same command continues the sweep" if args.command == "sweep" else ""),
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # `laser configs | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:  # an unwritable --out or data.root, a full disk, a directory given as a file
        where = error.filename or getattr(args, "out", None) or getattr(args, "resume", None) or Path.cwd()
        print(f"laser {args.command}: {error.strerror or error} ({where})", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
