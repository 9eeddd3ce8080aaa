"""Check that a change leaves every training history byte for byte as it was: each case below runs
30 rounds with the code of a git revision and with the working tree's, and their ``history.jsonl``
must be identical.

    python tests/identical_histories.py --against REV          # every case, 2 at a time
    python tests/identical_histories.py --against REV CASE ...  # some of them
    python tests/identical_histories.py --list

The cases: every shipped config that runs offline (``configs/*.yaml``; ``configs/paper`` needs the
CIFAR and WikiText downloads), then FedAvg with client sampling, the max-min beamformer with 16
antennas, the adaptive scaling with its second pass (OASIS, and Adam with the mean of squares),
PowerSGD with sampling and path loss, and a two-process run (``--nproc 2``). REV is checked out in a
temporary git worktree and its runs import its own packages (they start from its root); the working
tree's runs start from this checkout's root. A refactor must print ``identical`` on every line; exit
status 0 then, 1 otherwise. A case is compared on the same machine, under the same kernels: a
history is a function of the code, the config and the CPU's instruction set (docs/reproducibility.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 30

# name -> (config, overrides, processes)
EXTRA: dict[str, tuple[str, list[str], int]] = {
    "fedavg_sampling": (
        "mnist1d_fedavg_dirichlet",
        ["clients.per_round=4", "clients.num_clients=16"],
        1,
    ),
    "maxmin_16_antennas": (
        "mnist1d_laser_antennas",
        ["channel.rx_antennas=16", "channel.beamformer=maxmin"],
        1,
    ),
    "oasis_second_pass": ("mnist1d_local_adam_scaling", ["precond.name=oasis"], 1),
    "adam_mean_of_squares": ("mnist1d_local_adam_scaling", ["precond.statistic=mean_of_squares"], 1),
    "powersgd_sampling_path_loss": (
        "mnist1d_powersgd",
        [
            "clients.num_clients=8",
            "clients.per_round=3",
            "channel.name=rayleigh",
            "channel.path_loss=umi_los",
        ],
        1,
    ),
    "quickstart_nproc_2": ("quickstart", [], 2),
}


def cases() -> dict[str, tuple[str, list[str], int]]:
    shipped = sorted(p.stem for p in (ROOT / "federated" / "configs").glob("*.yaml"))
    return {**{name: (name, [], 1) for name in shipped}, **EXTRA}


def run(code: Path, out: Path, case: tuple[str, list[str], int]) -> tuple[bytes | None, str]:
    """One case with the code at ``code``: its history's bytes, or None and the error's last line."""
    config, overrides, processes = case
    command = [sys.executable, "-m", "federated.cli", "run", config, f"rounds={ROUNDS}", *overrides]
    command += ["--out", str(out), "-qq"] + (["--nproc", str(processes)] if processes > 1 else [])
    done = subprocess.run(command, cwd=code, capture_output=True, text=True)
    history = out / "history.jsonl"
    if done.returncode != 0 or not history.is_file():
        lines = (done.stderr or done.stdout).strip().splitlines()
        return None, lines[-1] if lines else f"exit status {done.returncode}"
    return history.read_bytes(), ""


def first_difference(before: bytes, after: bytes) -> int:
    """The first line (a round's record) where two histories differ."""
    a, b = before.splitlines(), after.splitlines()
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def imported_from(code: Path) -> Path:
    """Where ``python -m`` started at ``code`` imports the package from (it must be ``code``)."""
    found = subprocess.run(
        [sys.executable, "-c", "import federated; print(federated.__file__)"],
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip()).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="cases to run (default: every case)")
    parser.add_argument("--against", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    every = cases()
    if args.list:
        for name, (config, overrides, processes) in every.items():
            print(
                f"{name:30s} {config} {' '.join(overrides)}"
                + (f" --nproc {processes}" if processes > 1 else "")
            )
        return 0
    unknown = [n for n in args.names if n not in every]
    if unknown:
        print(f"unknown case(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    chosen = {n: every[n] for n in args.names} if args.names else every
    with tempfile.TemporaryDirectory(prefix="identical-") as tmp:
        tree = Path(tmp) / "tree"  # the runs go to tmp/before and tmp/after
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), args.against], check=True
        )
        try:
            for code in (tree, ROOT):
                if imported_from(code) != code.resolve():
                    print(f"runs started at {code} import another checkout's packages", file=sys.stderr)
                    return 2
            started = time.perf_counter()
            jobs = [
                (name, side, code) for name in chosen for side, code in (("before", tree), ("after", ROOT))
            ]
            with ThreadPoolExecutor(max(1, args.jobs)) as pool:
                results = dict(
                    zip(
                        [(name, side) for name, side, _ in jobs],
                        pool.map(lambda job: run(job[2], Path(tmp) / job[1] / job[0], chosen[job[0]]), jobs),
                    )
                )
            failed = 0
            print(f"{ROUNDS} rounds each; before: {args.against}, after: the working tree")
            for name in chosen:
                (before, why_before), (after, why_after) = results[(name, "before")], results[(name, "after")]
                if before is None or after is None:
                    verdict = f"FAILED ({why_before or why_after})"
                elif before == after:
                    verdict = f"identical ({len(after):,} bytes)"
                else:
                    first = first_difference(before, after)
                    verdict = f"DIFFERENT from round {first}"
                failed += not verdict.startswith("identical")
                print(f"{name:30s} {verdict}")
            print(
                f"{len(chosen) - failed} of {len(chosen)} identical ({time.perf_counter() - started:.0f} s)"
            )
            return 0 if failed == 0 else 1
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


if __name__ == "__main__":
    sys.exit(main())
