"""Where a sweep's points run: child processes of this machine (``local``, the default), Ray tasks
(``ray``: a Ray cluster, or one started here), or Slurm jobs through submitit (``slurm``).

Every launcher runs the same thing for a point, ``python -m federated.cli run ... --out POINT
--quiet`` with its output appended to ``POINT/run.log``, and the sweep reads the point's result
from its directory (``summary.json``) as it does for local runs: resuming, skipping what is done,
isolating a failed point and the summary are the sweep's, whatever the launcher.

So with ``ray`` on a cluster (``--address``) and with ``slurm``, the sweep directory (``--out``)
must be on a file system every node sees (NFS, Lustre, GPFS, BeeGFS, CephFS ...): the runs write
into it on their nodes and the sweep reads it here. A sweep refuses to start where it can tell
that is not so: with Ray, a probe task on each node looks for a file the sweep wrote; with Slurm,
``--out`` on a local file system (ext4, xfs, btrfs, tmpfs, overlay) is refused. A Ray instance the
sweep starts itself (no ``--address``) and ``--slurm-cluster local`` run on this machine, where any
directory will do.

Each point runs in the sweep's working directory (where its node has it: a shared file system
mounted at the same path), so relative paths of configs, ``--out`` and overrides mean there what they
mean here.

Resources: each point asks for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs (Ray's task
resources; Slurm's ``--cpus-per-task`` and ``--gpus-per-node``); ``jobs`` bounds how many are
submitted at once (the cluster runs what fits).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from federated.config import ConfigError

__all__ = [
    "LAUNCHERS",
    "Launcher",
    "LocalLauncher",
    "RayLauncher",
    "SlurmLauncher",
    "Resources",
    "build_launcher",
    "run_command",
]

LAUNCHERS = ("local", "ray", "slurm")
# file systems a cluster's nodes do not share: --out there is refused for Slurm jobs
LOCAL_FILE_SYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "ramfs", "vfat", "f2fs"}
)


@dataclass(frozen=True)
class Resources:
    """What each point asks its launcher for: CPUs and GPUs (fractions are Ray's, Slurm rounds up)."""

    cpus: float = 1.0
    gpus: float = 0.0


def run_command(args: list[str], log: str, cwd: str | None = None) -> int:
    """Run ``python -m federated.cli ARGS`` with this interpreter (the node's, where a launcher runs it
    remotely) in the directory ``cwd`` (the sweep's, so that relative paths mean what they meant
    there; on a node that lacks it, the node's own), its output appended to the file ``log``; its
    exit status. What the Ray and Slurm launchers run."""
    command = [sys.executable, "-m", "federated.cli", *args]
    here = cwd if cwd is not None and os.path.isdir(cwd) else None
    with open(log, "a") as handle:
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=here).returncode


class Launcher(Protocol):
    """Runs a point's ``laser run`` somewhere and waits for it: :meth:`run` blocks (the sweep calls it
    from one thread per point) and returns the exit status; :meth:`cancel` stops every running one
    (an interrupted sweep); :meth:`close` lets the launcher go."""

    name: str

    def run(self, args: list[str], log: Path) -> int: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class _Running:
    """What a launcher has running, one handle per point (a child process, a Ray task, a Slurm job),
    kept while the sweep waits for it, so that :meth:`cancel` stops every one (the sweep calls
    ``run`` from one thread per point)."""

    def __init__(self) -> None:
        self._running: set[Any] = set()
        self._lock = threading.Lock()

    def _wait(self, handle: Any, wait: Callable[[Any], Any]) -> int:
        with self._lock:
            self._running.add(handle)
        try:
            return int(wait(handle))
        finally:
            with self._lock:
                self._running.discard(handle)

    def _stop(self, handle: Any) -> None:
        raise NotImplementedError  # each launcher says how one of its handles stops

    def cancel(self) -> None:
        with self._lock:
            running = list(self._running)
        for handle in running:
            self._stop(handle)

    def close(self) -> None:
        pass


class LocalLauncher(_Running):
    """Child processes of this machine (the default): killed with the sweep (Linux's parent-death
    signal), stopped on Ctrl-C."""

    name = "local"

    def __init__(
        self, env: dict[str, str] | None = None, death_signal: Callable[[], Any] | None = None
    ) -> None:
        super().__init__()
        self.env = dict(os.environ) if env is None else env
        self.death_signal = death_signal

    def run(self, args: list[str], log: Path) -> int:
        command = [sys.executable, "-m", "federated.cli", *args]
        with open(log, "a") as handle:
            child = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, env=self.env, preexec_fn=self.death_signal
            )
            return self._wait(child, subprocess.Popen.wait)

    def _stop(self, handle: Any) -> None:
        handle.terminate()


def _import(module: str, extra: str, option: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(
            "--launcher", option, f"an installed launcher: pip install 'laser-ota[{extra}]' for {option}"
        ) from None


def _probe(path: str) -> str | None:
    """On a node: the node's name if it can read ``path`` (the sweep's token file), else None."""
    import socket

    return socket.gethostname() if os.path.isfile(path) else None


class RayLauncher(_Running):
    """Ray tasks, each asking for its CPUs and GPUs: on the cluster at ``address`` (``ray start
    --head`` on one node, ``ray start --address ...`` on the others), or on a Ray instance started
    here (``address=None``). With a cluster, ``out`` must be shared: checked on every node."""

    name = "ray"

    def __init__(self, resources: Resources, out: Path, address: str | None = None) -> None:
        super().__init__()
        ray = self.ray = _import("ray", "ray", "ray")
        self.started = not ray.is_initialized()
        if self.started:
            # a cluster's own resources, or a Ray instance here with this machine's CPUs
            where: dict[str, Any] = (
                {"address": address} if address is not None else {"num_cpus": os.cpu_count()}
            )
            try:
                ray.init(**where, include_dashboard=False, log_to_driver=False)
            except ConnectionError as error:
                raise ConfigError(
                    "--address", address, f"the address of a running Ray cluster ({error})"
                ) from None
        self.task = ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=0)(run_command)
        self.cwd = os.getcwd()
        if address is not None:
            try:
                self._check_shared(out)
            except BaseException:
                self.close()
                raise

    def _check_shared(self, out: Path) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = out / f".ray-probe-{uuid.uuid4().hex}"
        token.write_text("the sweep's probe: every node must see this file\n")
        try:
            probe = self.ray.remote(num_cpus=0)(_probe)
            nodes = [n for n in self.ray.nodes() if n.get("Alive")]
            seen = self.ray.get(
                [
                    probe.options(
                        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                    ).remote(str(token.resolve()))
                    for n in nodes
                ]
            )
        finally:
            token.unlink(missing_ok=True)
        blind = [n.get("NodeManagerHostname", n["NodeID"]) for n, s in zip(nodes, seen) if s is None]
        if blind:
            raise ConfigError(
                "--out",
                str(out),
                f"a directory every node of the Ray cluster sees (a shared file system): "
                f"{', '.join(blind[:3])} cannot read it, and the runs write there and the sweep reads "
                "their results here",
            )

    def run(self, args: list[str], log: Path) -> int:
        return self._wait(self.task.remote(args, str(log.resolve()), self.cwd), self.ray.get)

    def _stop(self, handle: Any) -> None:
        self.ray.cancel(handle, force=True)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _file_system(path: Path) -> str | None:
    """The type of the file system ``path`` lies on (``/proc/mounts``' longest matching mount), or None."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    target = str(path.resolve())
    best: tuple[int, str] | None = None
    for fields in mounts:
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and (
            best is None or len(point) > best[0]
        ):
            best = (len(point), fields[2])
    return best[1] if best else None


class SlurmLauncher(_Running):
    """Slurm jobs through submitit, one per point (``sbatch`` with ``--cpus-per-task`` and
    ``--gpus-per-node``; ``timeout_min`` and ``partition`` as given). ``cluster="local"`` runs the
    same jobs as local processes through submitit (to try a set-up without a cluster). submitit
    keeps its job files in ``out/.submitit``."""

    name = "slurm"

    def __init__(
        self,
        resources: Resources,
        out: Path,
        *,
        cluster: str = "slurm",
        timeout_min: int = 24 * 60,
        partition: str | None = None,
    ) -> None:
        super().__init__()
        submitit = _import("submitit", "slurm", "slurm")
        if cluster == "slurm":
            kind = _file_system(out)
            if kind in LOCAL_FILE_SYSTEMS:
                raise ConfigError(
                    "--out",
                    str(out),
                    f"a directory on a file system the cluster's nodes share (it is on {kind}, local to this "
                    "machine): the jobs write their runs there and the sweep reads their results here",
                )
        try:
            self.executor = submitit.AutoExecutor(folder=out / ".submitit", cluster=cluster)
        except RuntimeError as error:  # no sbatch / srun here
            raise ConfigError(
                "--launcher",
                "slurm",
                f"a machine of a Slurm cluster, or --slurm-cluster local to run the jobs here ({error})",
            ) from None
        parameters: dict[str, Any] = {
            "timeout_min": timeout_min,
            "cpus_per_task": max(1, int(-(-resources.cpus // 1))),
            "name": "laser-sweep",
        }
        if resources.gpus:
            parameters["gpus_per_node"] = max(1, int(-(-resources.gpus // 1)))
        if partition is not None:
            parameters["slurm_partition"] = partition
        self.executor.update_parameters(**parameters)
        self.cwd = os.getcwd()

    def run(self, args: list[str], log: Path) -> int:
        job = self.executor.submit(run_command, args, str(log.resolve()), self.cwd)
        return self._wait(job, lambda submitted: submitted.result())

    def _stop(self, handle: Any) -> None:
        handle.cancel(check=False)


def build_launcher(
    name: str,
    out: Path,
    resources: Resources | None = None,
    *,
    address: str | None = None,
    slurm_cluster: str = "slurm",
    timeout_min: int = 24 * 60,
    partition: str | None = None,
    death_signal: Callable[[], Any] | None = None,
) -> Launcher:
    """The launcher ``name`` (``local``, ``ray`` or ``slurm``) for a sweep into ``out``; ConfigError
    (exit status 2) for an unknown one, a missing package, or an ``out`` the cluster cannot share."""
    if name == "local":
        return LocalLauncher(death_signal=death_signal)
    resources = Resources() if resources is None else resources
    if name == "ray":
        return RayLauncher(resources, out, address)
    if name == "slurm":
        return SlurmLauncher(
            resources, out, cluster=slurm_cluster, timeout_min=timeout_min, partition=partition
        )
    raise ConfigError("--launcher", name, f"one of {', '.join(LAUNCHERS)}")
