"""The golden histories: ``python tests/golden/regenerate.py`` (from the repository root) rewrites them.

Each entry of ``runs.json`` is a ``laser run`` command line; its ``history.jsonl`` is stored here as
``<name>.jsonl``, and ``kernels.json`` records the machine that made them (torch's version, the CPU,
torch's capability, the pin's variables and :func:`federated.reproducible.kernel_fingerprint`).
``tests/test_reproducibility.py`` compares a fresh run with them byte for byte where this machine's
kernels (under the AVX2 pin) have the stored fingerprint, and within a measured tolerance elsewhere.

Rewrite them only when a change of the code is meant to move the numbers (a faster or more correct
computation), say why in the commit, and re-run the documented tables (``docs/results.md``) with the
same code. A machine whose kernels differ from the stored ones (another CPU generation, a CPU without
AVX2, another torch) is not a reason: the test already compares within the tolerance there, and its
numbers would make every other machine's comparison inexact. So this script refuses to run where
the fingerprint under the pin differs from ``kernels.json``'s, unless ``--new-kernels`` says that
the reference machine changes on purpose (a torch upgrade of CI), and refuses runs that did not
hold the pin.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNS: dict[str, list[str]] = json.loads((HERE / "runs.json").read_text())
KERNELS = HERE / "kernels.json"
# the environment record's keys that kernels.json keeps (the machine that made the histories)
KERNEL_KEYS = ("kernel_fingerprint", "torch", "capability", "cpu", "variables")


def run(name: str, out: Path) -> Path:
    """Run golden run ``name`` into ``out`` with ``laser run`` (a fresh process, which applies the
    ``cpu_isa`` pin, or ``$LASER_CPU_ISA``); its history file (``out/summary.json`` records the
    machine: ``cpu_isa`` and ``environment``)."""
    command = [sys.executable, "-m", "federated.cli", "run", *RUNS[name], "-qq", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True)
    return out / "history.jsonl"


def machine(out: Path) -> dict:
    """The ``environment`` record of the run in ``out`` with its ``cpu_isa`` line."""
    summary = json.loads((out / "summary.json").read_text())
    return {"cpu_isa": summary["cpu_isa"], **summary["environment"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--new-kernels",
        action="store_true",
        help="accept that this machine's kernels (fingerprint) become the reference",
    )
    args = parser.parse_args(argv)
    stored = json.loads(KERNELS.read_text()) if KERNELS.is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        made = {}
        for name in RUNS:
            made[name] = run(name, Path(tmp) / name)
            record = machine(Path(tmp) / name)
            if not record["cpu_isa"].startswith("avx2: pinned"):
                print(
                    f"{name}: refused: the run did not hold the AVX2 pin ({record['cpu_isa']})",
                    file=sys.stderr,
                )
                return 1
            if stored is not None and record["kernel_fingerprint"] != stored["kernel_fingerprint"]:
                if not args.new_kernels:
                    print(
                        f"refused: this machine's kernels (fingerprint {record['kernel_fingerprint']}, "
                        f"{record['capability']}, torch {record['torch']}, {record['cpu']}) are not the "
                        f"ones that made tests/golden ({stored['kernel_fingerprint']}, torch "
                        f"{stored['torch']}, {stored['cpu']}): its numbers differ in the last digits for "
                        "that reason alone. Regenerate on the reference machine, or pass --new-kernels "
                        "to make this one the reference on purpose",
                        file=sys.stderr,
                    )
                    return 1
        for name, history in made.items():
            shutil.copyfile(history, HERE / f"{name}.jsonl")
            print(f"{name}: {sum(1 for _ in history.open())} rounds -> {HERE / f'{name}.jsonl'}")
        record = machine(Path(tmp) / next(iter(RUNS)))
    KERNELS.write_text(json.dumps({k: record[k] for k in KERNEL_KEYS}, indent=2) + "\n")
    print(
        f"kernels: {record['kernel_fingerprint']} ({record['capability']}, torch {record['torch']}) "
        f"-> {KERNELS}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
