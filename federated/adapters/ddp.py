"""Over-the-air Z-SGD and LASER as a ``DistributedDataParallel`` communication hook: each rank a client.

DDP all-reduces the gradients after each backward pass; :func:`ota_hook` sends them through a
``channels`` channel instead, as the clients of one over-the-air round (:func:`laser.transmit_round`
with the ranks as its processes): each rank encodes its gradient with its own side of the compressor
(Z-SGD: the raw gradient; LASER: its low-rank factor, with its error-feedback memory), the
channel's superposition of the ranks' scaled signals is an all-reduce SUM, the common alignment
scale an all-reduce MIN before it (the channel's ``reduce=``), and the noise is drawn on every rank
from identically seeded generators. Every rank decodes the same estimate with its own copy of the
server side, so the ranks' models stay identical, and DDP writes that estimate of the mean gradient
into every ``.grad``. The result is the simulator's round over the same gradients to float tolerance.

Usage (every rank, after ``torch.distributed.init_process_group``)::

    from channels import AWGNChannel
    from federated.adapters.ddp import OTAHookState, one_bucket_cap_mb, ota_hook
    from laser import LaserCompressor

    channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))  # same seed everywhere
    state = OTAHookState(channel, model.parameters(), energy=100.0, compressor=LaserCompressor(rank=2))
    model = DistributedDataParallel(model, bucket_cap_mb=one_bucket_cap_mb(model))
    model.register_comm_hook(state, ota_hook)
    # then train as usual: loss.backward() leaves the over-the-air mean gradient in every .grad
    ...
    del model  # the DDP model goes first (see "Shutting down")
    torch.distributed.destroy_process_group()

One bucket. DDP calls a hook once per gradient *bucket*, as soon as that bucket's gradients are
ready. LASER's power allocation splits a client's energy E over its blocks in proportion to their
norms, which needs the norm of every block of the round; a hook that sent bucket by bucket would
have to give each bucket the share E x (its channel uses / the round's) instead (a different,
uniform-by-size split). This hook sends the whole round at once, so DDP must put every gradient in
one bucket: ``bucket_cap_mb`` at least the model's size (:func:`one_bucket_cap_mb` computes one), and
all parameters of one dtype and device (DDP buckets them apart otherwise). A second bucket in one
iteration is refused with an error that says so (DDP rebuilds its buckets after the first iteration,
so a cap that is too small may show only then). The cost is overlap: the round starts when the
whole backward pass is done.

Energy is per rank and iteration (a round); ``snr_db`` instead sets a per-channel-use SNR. The
channel's generator must start in the same state on every rank (seed it the same): the state checks
this on its first round (an all-reduce) and refuses to go on otherwise.

Shutting down: drop the DDP model (``del ddp``, or let the function that made it return) *before*
``torch.distributed.destroy_process_group()``. A model dropped after it holds the last reference to
the gloo process group, and destroys it from Python's thread: gloo's worker thread, freeing a
collective issued from this (Python) hook, then waits for the GIL that the destroying thread holds,
and the process hangs (seen with torch 2.13, intermittently).
"""

# no ``from __future__ import annotations``: DDP checks the hook's annotations at run time
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from channels import FadingChannel
from laser import Compressor, RoundResult, ZSGDCompressor, transmit_round
from laser.allocation import Allocation
from laser.compressor import check_params

__all__ = ["OTAHookState", "ota_hook", "one_bucket_cap_mb", "RankProcesses"]


class RankProcesses:
    """The ranks of a process group as the clients of a round (:class:`channels.processes.Processes`):
    rank r holds client r; ``sum`` and ``min`` are all-reduces, ``gather`` and ``per_process``
    all-gathers in rank order.

    Args:
        group: the process group (default: the world).
    """

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "torch.distributed is not initialised: call init_process_group first (torchrun sets "
                "its environment)"
            )
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        backend = str(dist.get_backend(group))
        # where the backend's collectives run: NCCL on this rank's GPU, gloo (and others) on the CPU
        self.device = (
            torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        )

    @property
    def num_clients(self) -> int:
        return self.world

    @property
    def index(self) -> slice:
        return slice(self.rank, self.rank + 1)

    def sum(self, value: Tensor) -> Tensor:
        """The sum over ranks (complex tensors included)."""
        out = value.to(self.device, copy=True)
        dist.all_reduce(torch.view_as_real(out) if out.is_complex() else out, dist.ReduceOp.SUM, self.group)
        return out.to(value.device)

    def min(self, value: Tensor) -> Tensor:
        """The minimum over ranks."""
        out = value.to(self.device, copy=True)
        dist.all_reduce(out, dist.ReduceOp.MIN, self.group)
        return out.to(value.device)

    def gather(self, value: Tensor) -> Tensor:
        """Every rank's rows ``[1, ...]``, concatenated in rank order ``[world, ...]``."""
        local = value.to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(parts, local, self.group)
        return torch.cat(parts).to(value.device)

    def per_process(self, value: Tensor) -> Tensor:
        """Every rank's ``value`` (same shape on each), stacked in rank order ``[world, ...]``."""
        local = value.to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(parts, local, self.group)
        return torch.stack(parts).to(value.device)


def one_bucket_cap_mb(module: nn.Module) -> int:
    """A ``bucket_cap_mb`` for ``DistributedDataParallel`` that puts all of ``module``'s gradients in
    one bucket (its trainable parameters' size in MiB, rounded up, plus one).

    >>> one_bucket_cap_mb(nn.Linear(1024, 1024))      # 4 MiB of float32 weights and a bias
    6
    """
    size = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    return math.ceil(size / 2**20) + 1


class OTAHookState:
    """What :func:`ota_hook` needs on one rank: the channel, the energy, this rank's client side of the
    compressor and a server side (like PyTorch's ``PowerSGDState``).

    Args:
        channel: the uplink (``AWGNChannel``, ``FadingChannel``), built alike on every rank, its
            ``generator`` seeded the same (the fading and the noise are drawn on every rank) and on
            the gradients' device (``torch.Generator(device="cuda")`` for a model on a GPU).
        params: the model's parameters (``model.parameters()``, of the model DDP wraps or of DDP
            itself); those that require a gradient are the ones DDP buckets.
        energy: each rank's energy per iteration (a float), or ``snr_db`` (per channel use); exactly
            one of them.
        compressor: ``None`` (Z-SGD: the raw gradients) or a ``laser`` compressor (``LaserCompressor``,
            any other; several passes and digital methods work too). Rank r gets client side r.
        allocation: the split of a rank's energy over its blocks (``"norm"``: LASER's).
        weight: this rank's weight in the mean (e.g. its batch size; ``None``: the plain mean).
        keep_unheard: give a rank's unheard blocks back to its error feedback (see
            :func:`laser.transmit_blocks`).
        process_group: the ranks that are the clients (default: the world).

    Attributes:
        client, server: the compressor's sides on this rank; ``iteration``: rounds so far;
        ``last_round``: the last :class:`laser.RoundResult` (energy per rank, noise, channel uses).

    Outside DDP, :meth:`round` runs a round of this rank's gradients directly (every rank together).

    Example (one process, a gloo group of one; with N ranks every one runs the same lines):
        >>> from channels import AWGNChannel
        >>> from laser import LaserCompressor
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> model = nn.Linear(32, 16)
        >>> channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
        >>> state = OTAHookState(channel, model.parameters(), energy=10.0, compressor=LaserCompressor(rank=2))
        >>> ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=one_bucket_cap_mb(model))
        >>> ddp.register_comm_hook(state, ota_hook)
        >>> ddp(torch.randn(64, 32)).square().mean().backward()
        >>> state.iteration, state.last_round.channel_uses   # a 32 x 2 factor and the bias, not 528
        (1, 80)
        >>> model.weight.grad.shape, torch.linalg.matrix_rank(model.weight.grad).item()
        (torch.Size([16, 32]), 2)
        >>> del ddp                      # before destroying the group: see the module's "Shutting down"
        >>> dist.destroy_process_group()
    """

    def __init__(
        self,
        channel: FadingChannel,
        params: Iterable[Tensor],
        *,
        energy: float | None = None,
        snr_db: float | None = None,
        compressor: Compressor | None = None,
        allocation: Allocation = "norm",
        weight: float | None = None,
        keep_unheard: bool = False,
        process_group: dist.ProcessGroup | None = None,
    ) -> None:
        if not isinstance(channel, FadingChannel):
            raise TypeError(f"channel must be a channels channel (AWGNChannel, FadingChannel): {channel!r}")
        if (energy is None) == (snr_db is None):
            raise ValueError("give exactly one of energy (per rank and iteration) or snr_db (per use)")
        if weight is not None and not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"weight must be a finite number > 0, got {weight!r}")
        self.processes = RankProcesses(process_group)
        self.params = check_params([p for p in params if p.requires_grad])
        self.channel = channel
        self.energy = energy
        self.snr_db = snr_db
        self.compressor = compressor if compressor is not None else ZSGDCompressor()
        self.allocation: Allocation = allocation
        self.weight = weight
        self.keep_unheard = keep_unheard
        self.client = self.compressor.make_client(self.params, self.processes.rank)
        self.server = self.compressor.make_server(self.params)
        self.iteration = 0
        self.last_round: RoundResult | None = None
        self._position = {id(p): i for i, p in enumerate(self.params)}
        self._generator_checked = False

    @property
    def rank(self) -> int:
        return self.processes.rank

    @property
    def world(self) -> int:
        return self.processes.world

    def _check_generators(self) -> None:
        """Refuse channels whose generators differ between ranks (they would decode different noise)."""
        state = self.channel.generator.get_state().cpu().numpy().tobytes()
        digest = int.from_bytes(hashlib.sha256(state).digest()[:7], "little")
        value = torch.tensor([digest], dtype=torch.int64)
        low, high = self.processes.min(value), -self.processes.min(-value)
        if bool(low != high):
            raise RuntimeError(
                "the channel's generator is not in the same state on every rank: seed it the same on each "
                "(e.g. generator=torch.Generator().manual_seed(0)), or every rank decodes other noise"
            )
        self._generator_checked = True

    def round(self, grads: Sequence[Tensor]) -> RoundResult:
        """One over-the-air round of this rank's gradients (in the order of ``params``), every rank
        calling it together; the decoded estimate of the ranks' mean gradient (the same on every rank)
        and the round's record."""
        if not self._generator_checked:
            self._check_generators()
        weights = None if self.weight is None else torch.tensor([float(self.weight)], dtype=torch.float64)
        self.channel.time_step = self.iteration  # a time-correlated channel (ClusterFading) samples it
        result = transmit_round(
            self.channel,
            self.server,
            [self.client],
            [grads],
            energy=self.energy,
            snr_db=self.snr_db,
            allocation=self.allocation,
            keep_unheard=self.keep_unheard,
            processes=self.processes,
            weights=weights,
        )
        self.iteration += 1
        self.last_round = result
        return result

    def positions(self, params: Sequence[Tensor]) -> list[int]:
        """Where each of a bucket's parameters is in ``params`` (the bucket's order changes when DDP
        rebuilds its buckets after the first iteration)."""
        try:
            return [self._position[id(p)] for p in params]
        except KeyError:
            raise ValueError(
                "the bucket holds a parameter that this OTAHookState was not made with: pass it the "
                "parameters of the model DDP wraps"
            ) from None

    def state_dict(self) -> dict[str, Any]:
        """This rank's state: the iteration, both compressor sides and the channel's random state."""
        return {
            "iteration": self.iteration,
            "client": self.client.state_dict(),
            "server": self.server.state_dict(),
            "channel": self.channel.random_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on the same rank)."""
        self.iteration = int(state["iteration"])
        self.client.load_state_dict(state["client"])
        self.server.load_state_dict(state["server"])
        self.channel.set_random_state(state["channel"])

    def __repr__(self) -> str:
        budget = f"energy={self.energy}" if self.energy is not None else f"snr_db={self.snr_db}"
        return (
            f"OTAHookState(rank={self.rank}/{self.world}, {self.compressor!r}, {self.channel!r}, {budget}, "
            f"iteration={self.iteration})"
        )


def ota_hook(state: OTAHookState, bucket: dist.GradBucket) -> torch.futures.Future[Tensor]:
    """DDP communication hook: the bucket's gradients as this rank's part of an over-the-air round;
    returns a completed future holding the decoded mean gradient, flattened in the bucket's order.
    Register it with ``ddp_model.register_comm_hook(state, ota_hook)``.

    Raises ``RuntimeError`` when DDP splits the gradients into more than one bucket (see the module's
    docstring: ``bucket_cap_mb=one_bucket_cap_mb(model)``)."""
    params = bucket.parameters()
    positions = state.positions(params)
    if bucket.index() != 0 or not bucket.is_last() or sorted(positions) != list(range(len(state.params))):
        raise RuntimeError(
            f"ota_hook got bucket {bucket.index()} holding {len(positions)} of the model's "
            f"{len(state.params)} gradients: DDP split them into buckets, but an over-the-air round "
            "splits its energy over every block's norm and needs them all at once. Make one bucket: "
            "DistributedDataParallel(model, bucket_cap_mb=one_bucket_cap_mb(model)), with every "
            "parameter of one dtype and device"
        )
    grads: list[Tensor | None] = [None] * len(positions)
    for position, grad in zip(positions, bucket.gradients()):
        grads[position] = grad
    result = state.round([g for g in grads if g is not None])
    buffer = bucket.buffer()
    decoded = torch.cat([result.gradient[i].reshape(-1).to(buffer.dtype) for i in positions])
    future: torch.futures.Future[Tensor] = torch.futures.Future()
    future.set_result(decoded.to(buffer.device))
    return future
