"""The ``laser`` command line. It parses arguments and calls the library; nothing else.

    laser run [CONFIG] [key.sub=value ...] [--out DIR]
    laser run --resume DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path

from federated.config import Config, ConfigError, load_config
from federated.errors import DataError

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="laser", description="Federated learning over wireless channels (LASER and baselines).")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="train one configuration",
        description="Train one configuration. Without CONFIG, the packaged quickstart runs "
                    "(MNIST-1D, 16 clients, LASER at a low energy; about half a minute on 2 CPU cores).")
    run.add_argument("config", nargs="?", help="a YAML file (default: the quickstart)")
    run.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    run.add_argument("--out", help="run directory (default: runs/<config name>-<time>)")
    run.add_argument("--resume", metavar="DIR",
                     help="continue the run in DIR from its last checkpoint, with its stored configuration "
                          "(to the result an uninterrupted run gets)")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    return parser


def _load(args: argparse.Namespace) -> tuple[Config, Path]:
    """The run's configuration and directory from the command line."""
    if args.resume is not None:
        out = Path(args.resume)
        if args.config is not None or args.overrides or args.out:
            raise ConfigError("--resume", args.resume, "no CONFIG, overrides or --out beside it (a resumed run "
                              "keeps the configuration and directory it started with)")
        if not (out / "config.yaml").is_file():
            raise ConfigError("--resume", args.resume, "a run directory written by laser run (with config.yaml)")
        return load_config(out / "config.yaml"), out
    # A bare "key=value" in the config position is an override of the quickstart.
    if args.config is not None and "=" in args.config and not Path(args.config).exists():
        args.overrides.insert(0, args.config)
        args.config = None
    if args.config is None:
        source = resources.files("federated") / "quickstart.yaml"
        with resources.as_file(source) as path:
            config = load_config(path, args.overrides)
        name = "quickstart"
    else:
        config = load_config(args.config, args.overrides)
        name = Path(args.config).stem
    return config, Path(args.out) if args.out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _run(args: argparse.Namespace) -> int:
    config, out = _load(args)
    from federated.checkpoint import CheckpointError
    from federated.history import format_summary
    from federated.train import NonFiniteError, resolve_device, train

    try:
        resolve_device(config.device)
    except ValueError as error:
        raise ConfigError("device", config.device, "auto, cpu, or a device this machine has") from error
    if args.resume is not None and (out / "summary.json").is_file():
        summary = json.loads((out / "summary.json").read_text())
        if summary.get("status") == "finished":
            print(f"laser run: {out} already finished ({summary.get('rounds')} rounds); nothing to resume")
            return 0
    try:
        history = train(config, out, progress=not args.quiet, resume=args.resume is not None)
    except NonFiniteError as error:
        print(f"laser run: {error}. History so far: {out}/history.jsonl", file=sys.stderr)
        return 1
    except (CheckpointError, DataError) as error:
        print(f"laser run: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.quiet:
        print(f"\n{format_summary(history.summary)}\n\nrun directory: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may also come after the options: laser run CONFIG --out DIR key=value
    unknown = [a for a in extra if "=" not in a or a.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "run":
        args.overrides.extend(extra)
    try:
        if args.command == "run":
            return _run(args)
    except ConfigError as error:
        print(f"laser {args.command}: config error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:          # an unwritable --out or data.root, a directory given as a file
        print(f"laser {args.command}: {error.strerror or error}: {error.filename or ''}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
