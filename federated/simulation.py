"""One run's simulation: its state (task, model, compressor, channel, generators, history) and its
round: clients compute gradients, compress, transmit over the air; the server decodes, steps and
broadcasts. :func:`federated.train.train` runs it round after round."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from federated.checkpoint import check_state
from federated.components import build_channel, build_compressor, client_budget_scales, split_seed
from federated.config import Config, ConfigError, config_to_dict, same_config
from federated.data.tasks import build_task, cross_entropy
from federated.distributed import Shard
from federated.downlink import NoisyDownlink
from federated.history import History
from federated.models import build_model
from federated.optim import WeightEMA, build_optimizer, build_scheduler
from federated.vectorized import VectorizedClients, vmap_supported
from laser import NonFiniteGradientError, RoundResult, transmit_blocks

__all__ = ["Simulation", "NonFiniteError", "resolve_device"]


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient; the history so far is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device = {name!r} is not available here; use auto or cpu")
    return device


def _check_finite(name: str, value: Tensor, round_: int) -> None:
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteError(
            f"round {round_}: the {name} is not finite (NaN or inf); the run stopped "
            "here (a very noisy channel, i.e. a low power.energy, or a large optimizer.lr can "
            "make training diverge)"
        )


def channel_record(result: RoundResult) -> dict[str, object]:
    """The per-round channel log over all passes of a round: each client's energy (max and mean),
    channel uses, the mean and per-block effective noise variance, the clients heard, bits."""
    passes = result.passes
    energy = result.energy_used
    uses = result.channel_uses
    noise_energy = sum(r.noise_energy for r in passes)
    record = {
        "energy_max": float(energy.max()),
        "energy_mean": float(energy.mean()),
        "channel_uses": uses,
        "noise_var_mean": noise_energy / uses if uses else 0.0,
        "noise_var": [float(v) for v in result.noise_var],
        "active_clients": int(result.active.sum()),
    }
    if passes[0].bits is not None:
        record["bits_mean"] = float(passes[0].bits.mean())
    return record


class Simulation:
    """One run's state (task, model, server optimizer, compressor, channel, generators, the rounds
    done and their history) and its round. :meth:`state_dict` holds everything needed to continue
    bit-identically; :meth:`load_state_dict` restores it.

    Example:
        >>> from federated.config import load_config
        >>> config = load_config(None, ["data.name=digits", "model.name=linear", "clients.num_clients=4"])
        >>> sim = Simulation(config)
        >>> record = sim.round(0)
        >>> record["round"], record["channel_uses"] > 0
        (0, True)
    """

    STATE_FORMAT = 2  # bumped when the layout of state_dict changes

    def __init__(
        self, config: Config, device: torch.device | None = None, shard: Shard | None = None
    ) -> None:
        self.config = config
        self.history = History()  # the rounds' records
        self.rounds_done = 0
        self.shard = shard  # clients split over processes (federated.distributed)
        self.device = device if device is not None else resolve_device(config.device)
        streams = split_seed(config.seed)
        self.task = build_task(config, self.device, streams.data)
        self.model = build_model(config.model, self.task.model_inputs, seed=streams.model).to(self.device)
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.params = list(self.model.parameters())
        # batch-norm statistics: the server keeps client 0's (the paper's), not those of all K passes
        self.buffers = [b for b in self.model.buffers() if b.is_floating_point()]
        num_clients = config.clients.num_clients
        self.compressor = build_compressor(config.compressor, seed=streams.compressor)
        try:
            self.compressor.setup([p.detach() for p in self.params], num_clients)
        except ValueError as error:  # the method does not fit this model (A-DSGD's projection)
            raise ConfigError(
                "compressor.fraction",
                config.compressor.fraction,
                f"a setting {config.compressor.name} can run with on this model ({error})",
            ) from None
        self.channel = build_channel(config.channel, streams.channel, self.device)
        self.budget_scale = None
        if config.power.spread_db > 0:
            self.budget_scale = client_budget_scales(config.power.spread_db, num_clients, streams.budgets)
        self.downlink = None
        if config.downlink.snr_db is not None:
            self.downlink = NoisyDownlink(config.downlink.snr_db, streams.downlink, self.device)
        self.optimizer = build_optimizer(config.optimizer, self.model)
        self.scheduler = build_scheduler(config.optimizer, self.optimizer, config.rounds)
        self.ema = WeightEMA(self.model, config.ema) if config.ema is not None else None
        self.dropout_seed = streams.dropout
        self.vectorized = self._vectorized(config.clients.vectorize)

    def _vectorized(self, mode: str) -> VectorizedClients | None:
        """The vmapped clients (``clients.vectorize``), or None for the loop."""
        if mode == "loop":
            return None
        supported, reason = vmap_supported(self.model)
        if self.downlink is not None:
            supported, reason = (
                False,
                "each client receives its own noisy copy of the model (downlink.snr_db)",
            )
        if not supported and mode == "vmap":
            raise ConfigError("clients.vectorize", mode, f"loop or auto for this run: {reason}")
        return VectorizedClients(self.model, cross_entropy) if supported else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The clients' and the evaluation's precision context (bf16 autocast or nothing)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    def client_gradient(self, client: int) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The client's mean loss and its gradient (summed over its micro-batches) at the model it
        received (the broadcast one, or its own noisy copy over a noisy downlink)."""
        forward: Callable[[Tensor], Tensor] = self.forward
        wrt: Sequence[Tensor] = self.params
        if self.downlink is not None:
            received = {
                n: p.requires_grad_()
                for n, p in self.downlink.receive(dict(self.model.named_parameters())).items()
            }
            forward, wrt = (lambda x: functional_call(self.model, received, (x,))), list(received.values())
        return self._client_from_batches(self._batches(client), forward, wrt)

    def _batches(self, client: int) -> list[tuple[Tensor, Tensor]]:
        """The client's micro-batches of this round (drawing them advances the task's data stream)."""
        return [self.task.batch(client) for _ in range(self.config.clients.accumulation_steps)]

    def _encode(self, client: int, grads: Sequence[Tensor], t: int) -> list[Tensor]:
        """Client ``client``'s blocks for this round (a non-finite gradient ends the run, diverged)."""
        try:
            return self.compressor.encode(client, grads)
        except NonFiniteGradientError:
            raise NonFiniteError(
                f"round {t}: client {client}'s gradient is not finite (NaN or inf); the run stopped here "
                "(a very noisy channel, i.e. a low power.energy, or a large optimizer.lr can make training "
                "diverge)"
            ) from None

    @property
    def main_process(self) -> bool:
        """Whether this process evaluates and writes the run (process 0, or the only one)."""
        return self.shard is None or self.shard.rank == 0

    def _vectorized_round(
        self,
        clients: range,
        batches: list[list[tuple[Tensor, Tensor]]],
    ) -> tuple[list[Tensor], list[list[Tensor]]]:
        """The clients' losses and encoded blocks from one vmapped pass per micro-batch (the clients'
        shards are equal, so their batches have one shape, the short end of an epoch included)."""
        steps = [
            (torch.stack([x for x, _ in step]), torch.stack([y for _, y in step])) for step in zip(*batches)
        ]
        assert self.vectorized is not None  # batches are collected only for the vmapped clients
        with self.autocast():
            losses, grads = self.vectorized.accumulate(steps)
        return list(losses), self.compressor.encode_many(list(clients), grads)

    def _client_from_batches(
        self,
        client_batches: list[tuple[Tensor, Tensor]],
        forward: Callable[[Tensor], Tensor] | None = None,
        wrt: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """A client's mean loss over its micro-batches and its gradient summed over them."""
        forward = self.forward if forward is None else forward  # not `or`: a compiled module has no bool
        wrt = self.params if wrt is None else wrt
        grads: tuple[Tensor, ...] | None = None
        total: Tensor | None = None
        for x, y in client_batches:
            with self.autocast():
                loss = cross_entropy(forward(x), y)
            g = torch.autograd.grad(loss, wrt)
            grads = g if grads is None else tuple(a + b for a, b in zip(grads, g))
            total = loss.detach() if total is None else total + loss.detach()
        assert grads is not None and total is not None  # clients.accumulation_steps >= 1 micro-batches
        return total / len(client_batches), grads

    def round(self, t: int | None = None) -> dict[str, object]:
        """Round ``t`` (default: the next): clients' gradients, uplink, the server's step; returns the
        round's record, which the history keeps."""
        t = self.rounds_done if t is None else t
        config = self.config
        # --- clients: local gradient at the broadcast model, then encode (updates EF memory)
        num_clients, shard = config.clients.num_clients, self.shard
        local = range(num_clients) if shard is None else shard.local
        client_blocks, losses, kept, batches = [], [], None, []
        for k in range(num_clients):
            if k not in local:  # another process's client: draw its batches all the same, so
                self._batches(k)  # every process's data stream stays the one-process one
                continue
            if self.vectorized is not None:
                batches.append(self._batches(k))
                continue
            loss, grads = self.client_gradient(k)
            if k == 0 and self.buffers:
                kept = [b.clone() for b in self.buffers]
            client_blocks.append(self._encode(k, grads, t))
            losses.append(loss)
        if batches:
            losses, client_blocks = self._vectorized_round(local, batches)
        if kept is not None:
            for b, value in zip(self.buffers, kept):
                b.copy_(value)
        train_loss = torch.stack(losses).sum()
        if shard is not None:
            train_loss = shard.sum(train_loss)
            for b in self.buffers:  # client 0's statistics, from the process holding it
                shard.broadcast(b, src=0)
        train_loss = train_loss / num_clients
        _check_finite("training loss", train_loss, t)

        # --- uplink (energy split across blocks, over-the-air mean of each pass), server decodes
        power, compressor = config.power, self.compressor
        result = transmit_blocks(
            self.channel,
            compressor.server,
            [compressor.clients[k] for k in local],
            client_blocks,
            energy=power.energy,
            snr_db=power.snr_db,
            allocation=power.allocation,
            budget_scale=self.budget_scale,
            keep_unheard=config.compressor.keep_unheard,
            processes=shard,
        )
        g_hat = result.gradient
        # --- server: step on the decoded gradient, broadcast; a float64 sum is finite iff every entry
        # is (float32 gradients cannot overflow it), and it needs no copy of the model-sized gradient
        _check_finite("decoded gradient", torch.stack([g.sum(dtype=torch.float64) for g in g_hat]).sum(), t)
        lr = self.optimizer.param_groups[0]["lr"]
        for p, g in zip(self.params, g_hat):
            p.grad = g.to(p.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)

        record = {"round": t, "train_loss": float(train_loss), "lr": lr, **channel_record(result)}
        if ((t + 1) % config.eval_every == 0 or t + 1 == config.rounds) and self.main_process:
            record.update(self.task.evaluate(self.model, self.autocast))
            if self.ema is not None:
                ema = self.task.evaluate(self.ema.model(self.model), self.autocast)
                record.update({f"ema_{k}": v for k, v in ema.items()})
        self.history.rounds.append(record)
        self.rounds_done = t + 1
        return record

    def state_dict(self) -> dict[str, object]:
        """Everything a resumed run needs, as plain containers and tensors: the rounds done and their
        history, the configuration (to check a resume against), model, optimizer, schedule, EMA,
        compressor (memories, shared factors, generators), channel, downlink, data order and
        torch's global generators (dropout). With clients split over processes, each process's
        holds its own clients' memories (and only process 0's the history)."""
        return {
            "format": self.STATE_FORMAT,
            "round": self.rounds_done,
            "config": config_to_dict(self.config),
            "world": 1 if self.shard is None else self.shard.world,
            "history": list(self.history.rounds) if self.main_process else [],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "compressor": self.compressor.state_dict(),
            "task": self.task.state_dict(),
            "channel": self.channel.random_state(),
            "downlink": None if self.downlink is None else self.downlink.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def check_state(self, state: object, path: Path) -> dict:
        """``state`` (read from ``path``) if it is a state of this layout and configuration, else
        :class:`~federated.checkpoint.CheckpointError`."""
        return check_state(
            state,
            path,
            format=self.STATE_FORMAT,
            config_matches=lambda stored: same_config(stored, self.config),
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (tensors from any device)."""
        self.rounds_done = int(state["round"])
        self.history.rounds = list(state["history"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.compressor.load_state_dict(state["compressor"])
        self.task.load_state_dict(state["task"])
        self.channel.set_random_state(state["channel"])
        if self.downlink is not None:
            self.downlink.generator.set_state(state["downlink"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
