"""Plant each bug the hardening campaign found its tests let through, and check that its test fails.

    python tests/planted_bugs.py            # every planted bug (a few minutes)
    python tests/planted_bugs.py NAME ...   # some of them

Each bug is applied to a fresh git worktree of HEAD (the working tree is never touched), then the test
named for it runs there; the bug must make that test fail. Exit status 0 when every bug is caught, 1
otherwise. Needs git and the project's environment (the worktree's packages are imported first:
pytest runs from its root).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Bug(NamedTuple):
    file: str  # where it is planted
    old: str  # the correct code (exactly once in the file)
    new: str  # the bug
    test: str  # the test that must fail


BUGS: dict[str, Bug] = {
    "keep_unheard_mask_inverted": Bug(
        "laser/ota.py",
        "side.keep_unheard(sent, mask)",
        "side.keep_unheard(sent, ~mask)",
        "tests/laser/test_participants.py::test_keep_unheard_gives_back_exactly_the_blocks_that_were_not_heard",
    ),
    "keep_unheard_keeps_the_heard_blocks": Bug(
        "laser/compressor.py",
        "torch.zeros_like(b) if ok else b",
        "b if ok else torch.zeros_like(b)",
        "tests/laser/test_participants.py::test_keep_unheard_gives_back_exactly_the_blocks_that_were_not_heard",
    ),
    "sweep_runs_diverged_points_again": Bug(
        "federated/experiments/sweep.py",
        '    status = outcome(_read_json(point.path / "summary.json") or {})\n    if status is not None:',
        '    status = outcome(_read_json(point.path / "summary.json") or {})\n    if status == "finished":',
        "tests/federated/experiments/test_sweep.py::test_a_diverged_point_is_done_and_not_run_again",
    ),
    "batch_norm_mean_over_buffers": Bug(
        "federated/simulation.py",
        "self._set_buffers(first, total, len(participants))",
        "self._set_buffers(first, total, len(self.buffers))",
        "tests/federated/test_local_training.py"
        "::test_local_training_sets_the_batch_norm_statistics_to_the_participants_mean",
    ),
    "matched_beamformer_without_unit_directions": Bug(
        "channels/beamforming.py",
        "    directions = torch.where(norms > 0, channels / torch.where(norms > 0, norms, 1), 0)",
        "    directions = channels",
        "tests/channels/test_antennas.py::test_the_matched_beamformer_weighs_every_clients_direction_equally",
    ),
    "umi_los_exponent_2_0": Bug(
        "channels/fading.py",
        "pl1 = 32.4 + 21 * d3d.log10()",
        "pl1 = 32.4 + 20 * d3d.log10()",
        "tests/channels/test_fading.py::test_umi_path_loss_is_the_3gpp_table",
    ),
    "every_pass_spends_the_whole_round": Bug(
        "laser/ota.py",
        "energy=None if energy is None else energy * shares[p],",
        "energy=energy,",
        "tests/laser/test_participants.py::test_the_passes_of_a_round_share_its_energy_budget",
    ),
    "path_loss_drawn_again_for_a_later_pass": Bug(
        "laser/ota.py",
        "    return channel.realize(None, channel_uses, dtype=dtype, clients=everyone)",
        "    channel.large_scale = None  # drawn again for the participants\n"
        "    return channel.realize(len(everyone), channel_uses, dtype=dtype)",
        "tests/laser/test_participants.py::test_a_later_pass_realizes_the_participants_with_their_own_path_loss",
    ),
    "every_client_side_made_at_setup": Bug(
        "laser/compressor.py",
        "        self.clients = ClientSides(self, tensors, num_clients)  # each made on first use\n",
        "        self.clients = ClientSides(self, tensors, num_clients)  # each made on first use\n"
        "        list(self.clients)\n",
        "tests/federated/test_lazy_clients.py::test_memories_are_allocated_for_exactly_the_clients_that_took_part",
    ),
    "a_refused_call_keeps_the_side_it_made": Bug(
        "laser/compressor.py",
        "                sides.made.pop(k, None)",
        "                pass",
        "tests/laser/test_client_sides.py::test_a_side_made_for_a_refused_call_is_forgotten",
    ),
    "grouped_partition_loses_the_sort_key": Bug(
        "federated/data/partitions.py",
        "    keys = torch.sort(owners * num_samples + samples).values",
        "    keys = owners * num_samples + samples",
        "tests/federated/data/test_partitions.py::test_the_grouped_splits_equal_their_client_by_client_definition",
    ),
}


def plant(name: str, bug: Bug, head: str) -> tuple[bool, float, str]:
    """Whether ``bug``'s test fails with it planted, the seconds it took, and the test's last line."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / name
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), head], cwd=ROOT, check=True)
        try:
            path = tree / bug.file
            code = path.read_text()
            if code.count(bug.old) != 1:
                raise SystemExit(
                    f"{name}: the code to replace is not in {bug.file} exactly once (update BUGS)"
                )
            path.write_text(code.replace(bug.old, bug.new))
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", bug.test],
                cwd=tree,
                capture_output=True,
                text=True,
            )
            lines = result.stdout.strip().splitlines()
            return result.returncode == 1, time.perf_counter() - started, lines[-1] if lines else ""
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BUGS]
    if unknown:
        print(f"planted_bugs: unknown bug {', '.join(unknown)}; known: {', '.join(BUGS)}", file=sys.stderr)
        return 2
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    missed = 0
    for name in names or list(BUGS):
        caught, seconds, last = plant(name, BUGS[name], head.stdout.strip())
        missed += not caught
        print(f"{'caught' if caught else 'MISSED'}  {name}  ({seconds:.0f} s: {last})  {BUGS[name].test}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
