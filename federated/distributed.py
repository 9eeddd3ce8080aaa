"""Clients split over processes with ``torch.distributed`` (launched with ``torchrun``).

Every process builds the same simulation from the same seed (model, data order, shared factors,
channel generator), draws every client's batch so that the data streams stay the same, and computes
the gradients, compression and error feedback of its own contiguous share of the clients only. The
uplink then combines the processes' shares as the channel would: the alignment scale is an
all-reduce minimum (the side information), the superposition of the scaled signals and the counts of
clients heard are all-reduce sums, and the noise is drawn on every process from identically seeded
generators, so every process decodes the same gradient and takes the same server step. The result
equals one process's to float tolerance (sums in another order).

Launch with ``laser run CONFIG --nproc N`` (processes on this machine) or
``torchrun --nproc-per-node N -m federated.cli run CONFIG``; the gloo backend on CPUs, NCCL on GPUs.
Each process destroys its group before it exits (:func:`close_group`; ``laser run`` does it, a
script of your own that calls :func:`~federated.train.train` under ``torchrun`` calls it at its end).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from federated.config import Config, ConfigError

__all__ = [
    "Shard",
    "init_shard",
    "world_size_from_env",
    "free_port",
    "check_shardable",
    "launch",
    "close_group",
]

# whether init_shard created the default process group (close_group destroys only that one)
_created_group = False


def world_size_from_env() -> int:
    """The number of processes of a ``torchrun`` / ``laser run --nproc`` launch (1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def free_port() -> int:
    """A TCP port that is free on this machine now (for MASTER_PORT)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_shardable(config: Config, world: int) -> None:
    """Refuse, before any work, what cannot be split over ``world`` processes to the one-process result."""
    if world > config.clients.num_clients:
        raise ConfigError(
            "clients.num_clients",
            config.clients.num_clients,
            f"at least as many clients as processes ({world})",
        )
    if config.clients.sampling == "poisson":
        raise ConfigError(
            "clients.sampling",
            config.clients.sampling,
            "uniform with clients split over processes (the hidden pass goes over the whole population "
            "on one process)",
        )
    if config.privacy.artificial_noise:
        raise ConfigError(
            "privacy.artificial_noise",
            config.privacy.artificial_noise,
            "false with clients split over processes (each client's share of the noise is set from the "
            "count of clients heard on each symbol, on one process)",
        )
    per_round = config.clients.per_round
    if per_round is not None and per_round < config.clients.num_clients:
        raise ConfigError(
            "clients.per_round",
            per_round,
            "null (every client) with clients split over processes (a sampled round would leave a "
            "process idle or unevenly loaded)",
        )
    if config.downlink.snr_db is not None:
        raise ConfigError(
            "downlink.snr_db",
            config.downlink.snr_db,
            "null with clients split over processes (each client's noisy copy of the model is drawn "
            "in turn from one generator)",
        )
    if config.model.dropout > 0:
        raise ConfigError(
            "model.dropout",
            config.model.dropout,
            "0 with clients split over processes (dropout masks are drawn in turn from one generator)",
        )


@dataclass(frozen=True)
class Shard:
    """This process's share of the clients, and the collectives over all processes."""

    rank: int
    world: int
    num_clients: int
    device: torch.device = torch.device("cpu")  # where the backend's collectives run (NCCL: the GPU)

    @property
    def local(self) -> range:
        """The clients this process computes: a contiguous range, ranks in order."""
        return range(
            self.rank * self.num_clients // self.world, (self.rank + 1) * self.num_clients // self.world
        )

    @property
    def index(self) -> slice:
        return slice(self.local.start, self.local.stop)

    def sum(self, value: Tensor) -> Tensor:
        """The sum over processes (all-reduce), complex tensors included."""
        out = value.to(self.device, copy=True)
        dist.all_reduce(torch.view_as_real(out) if out.is_complex() else out, op=dist.ReduceOp.SUM)
        return out.to(value.device)

    def min(self, value: Tensor) -> Tensor:
        out = value.to(self.device, copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.MIN)
        return out.to(value.device)

    def gather(self, value: Tensor) -> Tensor:
        """Every process's rows ``[len(local), ...]`` concatenated in client order ``[K, ...]``."""
        sizes = [Shard(r, self.world, self.num_clients).local for r in range(self.world)]
        most = max(len(s) for s in sizes)
        padded = torch.zeros((most, *value.shape[1:]), dtype=value.dtype, device=self.device)
        padded[: len(value)] = value
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return torch.cat([part[: len(s)] for part, s in zip(parts, sizes)]).to(value.device)

    def per_process(self, value: Tensor) -> Tensor:
        """Every process's ``value`` (same shape on each), stacked in rank order ``[world, ...]``."""
        local = value.to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(parts, local)
        return torch.stack(parts).to(value.device)

    def broadcast(self, value: Tensor, src: int = 0) -> None:
        """Overwrite ``value`` in place with process ``src``'s."""
        dist.broadcast(value, src=src)


def init_shard(config: Config, device: torch.device) -> Shard | None:
    """Join the process group that the environment describes (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT, as torchrun sets them); ``None`` for a single process."""
    global _created_group
    world = world_size_from_env()
    if world <= 1:
        return None
    check_shardable(config, world)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", rank=int(os.environ["RANK"]), world_size=world
        )
        _created_group = True
    return Shard(
        dist.get_rank(),
        dist.get_world_size(),
        config.clients.num_clients,
        device if device.type == "cuda" else torch.device("cpu"),
    )


def close_group() -> None:
    """Destroy the process group that :func:`init_shard` created (a group the caller made is left
    alone); call it before the process exits.

    Without it the group is destroyed by the interpreter's exit, and a process could die there with
    "terminate called without an active exception" (SIGABRT, once in about 25 runs on 2 busy cores):
    a collective returns to Python as soon as its result is ready, while gloo's worker thread still
    holds the collective's work object; when it releases it, the tensors it held need the GIL to drop
    their Python objects, and a thread that asks for the GIL while the interpreter finalizes is ended
    with ``pthread_exit``, whose unwinding through the (noexcept) destructor calls std::terminate.
    Destroyed here, while the interpreter is whole, the group releases the GIL and joins its worker
    threads first. Not collective (no other process waits for it); safe to call twice."""
    global _created_group
    if _created_group and dist.is_initialized():
        dist.destroy_process_group()
    _created_group = False


def launch(arguments: list[str], nproc: int, out: Path) -> int:
    """Run ``laser ARGUMENTS`` as ``nproc`` processes of one torch.distributed job on this machine
    (process r > 0 quiet, its output in ``out/rank<r>.log``); when one fails the others are stopped
    (they would wait for it forever). Returns process 0's exit status, or the first failure's."""
    base = {
        **os.environ,
        "WORLD_SIZE": str(nproc),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    out.mkdir(parents=True, exist_ok=True)
    others = [open(out / f"rank{r}.log", "w") for r in range(1, nproc)]  # the others' output
    logs = [None, *others]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "federated.cli", *arguments, *([] if r == 0 else ["--quiet"])],
            env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=logs[r],
            stderr=None if r == 0 else subprocess.STDOUT,
        )
        for r in range(nproc)
    ]
    codes: list[int | None] = [None] * nproc
    first: int | None = None
    try:
        while any(c is None for c in codes):
            for r, proc in enumerate(procs):
                if codes[r] is None:
                    try:
                        codes[r] = proc.wait(timeout=0.2)
                    except subprocess.TimeoutExpired:
                        continue
                    if codes[r] != 0 and first is None:  # one failed: the others would wait for it forever
                        first = r
                        for other in procs:
                            if other.poll() is None:
                                other.terminate()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for log in others:
            log.close()
    if first is None:
        return 0
    code = codes[first]
    assert code is not None  # first is set only once its exit status is
    if first > 0:
        print(
            f"laser run: process {first} failed (exit status {codes[first]}); "
            f"its output: {out / f'rank{first}.log'}",
            file=sys.stderr,
        )
    return code if code > 0 else 1
