"""Regenerate the golden histories: ``python tests/golden/regenerate.py`` (from the repository root).

Each entry of ``runs.json`` is a ``laser run`` command line; its ``history.jsonl`` is stored here as
``<name>.jsonl`` and compared byte for byte by ``tests/test_golden.py``. Regenerate only on purpose,
when a change is meant to move the numbers (a faster or more correct computation), and say why in
the commit that updates them; re-run the documented tables (``docs/results.md``) with the same code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNS: dict[str, list[str]] = json.loads((HERE / "runs.json").read_text())


def run(name: str, out: Path) -> Path:
    """Run golden run ``name`` into ``out`` with ``laser run`` (a fresh process); its history file."""
    command = [sys.executable, "-m", "federated.cli", "run", *RUNS[name], "--quiet", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True)
    return out / "history.jsonl"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in RUNS:
            history = run(name, Path(tmp) / name)
            shutil.copyfile(history, HERE / f"{name}.jsonl")
            print(f"{name}: {sum(1 for _ in history.open())} rounds -> {HERE / f'{name}.jsonl'}")


if __name__ == "__main__":
    main()
