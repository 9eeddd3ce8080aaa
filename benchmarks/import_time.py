"""Import cost: the wall time and peak memory of importing the packages, each in a fresh interpreter.

``channels`` imports Sionna on the first call that draws through it (noise, fading), not at import
(importing any part of ``sionna.phy`` loads all of it: FEC, NR, MIMO, matplotlib, torch._dynamo).
Cases, each a fresh ``python -c`` child, timed inside the child around the statements
(``import_s``) and from the parent around the whole process (``process_s``, interpreter start-up
and shut-down included), with the child's peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``):

* ``python``: nothing (the interpreter alone);
* ``torch``: ``import torch``;
* ``channels+laser``: ``import channels, laser``;
* ``channels+laser+noisy_call``: the same, then one call of a noisy ``AWGNChannel`` (Sionna's
  import, paid on that first call, included);
* ``channels+laser+sionna``: ``import channels, laser, sionna.phy``, what importing the packages
  cost when they imported Sionna at their top.

The cases take turns (a different order each repeat); each is reported as its median over the
repeats (default 5).

    python benchmarks/import_time.py [--quick] [--json PATH] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from common import REPO, emit, machine_info, parse_args, print_table

NOISY_CALL = (
    "channels.AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))"
    "(torch.ones(4, 8), energy=1.0)"
)
CASES = {  # name -> (setup outside the timed span, statements timed)
    "python": ("", "pass"),
    "torch": ("", "import torch"),
    "channels+laser": ("", "import channels, laser"),
    "channels+laser+noisy_call": ("", f"import torch, channels, laser; {NOISY_CALL}"),
    "channels+laser+sionna": ("", "import channels, laser, sionna.phy"),
}
CHILD = """
import json, resource, sys, time
{setup}
start = time.perf_counter()
{statements}
seconds = time.perf_counter() - start
heavy = sorted({{m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("sionna", "matplotlib")}})
print(json.dumps({{"seconds": seconds, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "loaded": heavy}}))
"""


def run_child(setup: str, statements: str) -> dict[str, Any]:
    """One fresh interpreter: the child's own timing, its peak RSS and the parent's wall time."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    code = CHILD.format(setup=setup, statements=statements)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"child failed ({statements!r}):\n{result.stderr}")
    child = json.loads(result.stdout.strip().splitlines()[-1])
    kib = child["maxrss_kib"] * (1 / 1024 if sys.platform == "darwin" else 1)  # bytes on macOS
    return {
        "import_s": child["seconds"],
        "process_s": elapsed,
        "maxrss_mib": kib / 1024,
        "loaded": child["loaded"],
    }


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--repeats", type=int, default=None, help="fresh interpreters per case (5)")

    args = parse_args(__doc__.splitlines()[0], extra=extra)
    repeats = args.repeats or (1 if args.quick else 5)
    names = list(CASES)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(run_child(*CASES[name]))
            print(f"repeat {i + 1}/{repeats} {name}: {samples[name][-1]}", flush=True)
    results = []
    for name in names:
        runs = samples[name]
        results.append(
            {
                "case": name,
                "statements": CASES[name][1],
                "import_s": statistics.median(float(r["import_s"]) for r in runs),
                "process_s": statistics.median(float(r["process_s"]) for r in runs),
                "maxrss_mib": statistics.median(float(r["maxrss_mib"]) for r in runs),
                "loaded": runs[-1]["loaded"],
                "samples": runs,
            }
        )
    print_table(
        ["case", "import s", "process s", "peak RSS MiB", "sionna/matplotlib loaded"],
        [
            [r["case"], r["import_s"], r["process_s"], r["maxrss_mib"], ",".join(r["loaded"]) or "no"]
            for r in results
        ],
        title=f"Fresh interpreters, median of {repeats}",
    )
    emit(
        {"benchmark": "import_time", "machine": machine_info(), "repeats": repeats, "results": results},
        args.json,
    )


if __name__ == "__main__":
    main()
