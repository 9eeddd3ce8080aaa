"""One run's simulation: its state (task, model, compressor, channel, generators, history) and its
round: the participants compute their updates (:mod:`federated.clients`), compress, transmit over
the air; the server decodes, steps and broadcasts. :func:`federated.train.train` runs it round
after round."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from channels import ChannelState, PrivacyAccountant
from federated.checkpoint import check_by_index, check_state
from federated.clients import Clients, build_sampler
from federated.components import build_channel, build_compressor, client_budget_scales, split_seed
from federated.config import Config, ConfigError, config_to_dict, same_config
from federated.data.tasks import build_task, cross_entropy
from federated.distributed import Shard
from federated.history import History
from federated.models import build_model
from federated.optim import Preconditioner, StatisticPass, WeightEMA, build_optimizer, build_scheduler
from federated.radio.downlink import NoisyDownlink
from federated.radio.units import PhysicalUnits, snr_per_use_db
from federated.vectorized import VectorizedClients, stack_batches, vmap_supported
from laser import NonFiniteGradientError, NonFiniteNoiseError, PassOptions, RoundResult, transmit_blocks

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


# how every diverged run's message ends
_STOPPED = (
    "the run stopped here (a very noisy channel, i.e. a low power.energy, or a large optimizer.lr can make "
    "training diverge)"
)


def _check_finite(name: str, value: Tensor, round_: int) -> None:
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteError(f"round {round_}: the {name} is not finite (NaN or inf); {_STOPPED}")


def _sum(tensors: Sequence[Tensor]) -> Tensor:
    """The sum of every entry of ``tensors`` in float64 (finite iff every entry is)."""
    return torch.stack([v.sum(dtype=torch.float64) for v in tensors]).sum()


def _floors(options: PassOptions, passes: int, total: int) -> PassOptions:
    """``options`` for ``passes`` of a round's ``total`` passes: the round's noise multiplier floor
    (``min_noise_multiplier``, or ``central``'s) times sqrt(total / passes), which
    :func:`laser.transmit_blocks` multiplies by sqrt(passes) again, so every pass keeps to
    sqrt(total) nu* and the round's passes compose to nu*."""
    factor = math.sqrt(total / passes)
    if options.min_noise_multiplier is not None:
        options = options.replace(min_noise_multiplier=options.min_noise_multiplier * factor)
    if options.central is not None:
        options = options.replace(central=options.central * factor)
    return options


@contextlib.contextmanager
def _noise_overflow_diverges(round_: int) -> Iterator[None]:
    """A pass whose effective noise variance overflowed ends the run as diverged, like a non-finite
    update (the alignment scale underflows only under updates far too large for the energy)."""
    try:
        yield
    except NonFiniteNoiseError as error:
        raise NonFiniteError(f"round {round_}: {error}; {_STOPPED}") from None


def channel_record(result: RoundResult) -> dict[str, object]:
    """The per-round channel log over all passes of a round: each client's energy (max and mean),
    channel uses, the mean and per-block effective noise variance, the clients heard, bits."""
    passes = result.passes
    energy = result.energy_used
    uses = result.channel_uses
    noise_energy = sum(r.noise_energy for r in passes)
    record = {  # a round nobody took part in (hidden Poisson sampling) spent nothing
        "energy_max": float(energy.max()) if energy.numel() else 0.0,
        "energy_mean": float(energy.mean()) if energy.numel() else 0.0,
        "channel_uses": uses,
        "noise_var_mean": noise_energy / uses if uses else 0.0,
        "noise_var": [float(v) for v in result.noise_var],
        "active_clients": int(result.active.sum()),
    }
    if passes[0].bits is not None:
        record["bits_mean"] = float(passes[0].bits.mean())
    return record


def _available_bytes(device: torch.device) -> int | None:
    """Memory free for tensors on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(config: Config, inputs: dict[str, int], device: torch.device) -> None:
    """Refuse, before anything is allocated, a model whose parameters cannot fit: the model, its
    gradient, the server optimizer's state and one error-feedback buffer per client that can take
    part need about parameters x (C + 3) x the element size (counted on PyTorch's meta device),
    where C = min(K, clients per round x rounds): a client's side is made when it first takes part
    (:class:`laser.compressor.ClientSides`), so registered clients that never do cost nothing."""
    with torch.device("meta"):
        count = sum(p.numel() for p in build_model(config.model, inputs, seed=0).parameters())
    width = 8 if config.precision == "fp64" else 4
    clients = config.clients
    # Poisson sampling's per_round is an expected count: any client may take part
    per_round = clients.num_clients if clients.sampling == "poisson" else clients.per_round
    taking_part = min(clients.num_clients, (per_round or clients.num_clients) * config.rounds)
    needed = count * (taking_part + 3) * width
    available = _available_bytes(device)
    if available is not None and needed > available:
        model = config.model
        raise ConfigError(
            "model",
            f"{model.name}, width {model.width}"
            + (f", {model.layers} layers" if model.name == "gpt" else ""),
            f"a model that fits: {count:.3g} parameters x ({taking_part} clients that can take part + 3) x "
            f"{width} B = {needed / 1e9:.3g} GB, and {available / 1e9:.3g} GB are available here "
            "(a smaller model.width or model.layers, or fewer clients.num_clients or clients.per_round)",
        )


class _Float64Inputs(nn.Module):
    """A model run in float64 (``precision: fp64``): floating-point inputs are cast to float64."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        """The model's output for ``x`` (cast to float64 if it is a float tensor)."""
        return self.model(x.double() if x.is_floating_point() else x)


def _without_identities(state: object) -> object:
    """A compressor's state dict without who its sides are (a server's ``identity``, a client's
    ``index`` and ``server``), which checkpoints written before sides recorded them lack."""
    if isinstance(state, dict):
        client = (
            isinstance(state.get("index"), int)
            and "server" in state
            and not isinstance(state["server"], dict)
        )
        drop = ("index", "server") if client else ("identity",)
        return {k: _without_identities(v) for k, v in state.items() if k not in drop}
    if isinstance(state, list):
        return [_without_identities(v) for v in state]
    return state


def _upgraded(state: object) -> object:
    """A state of layout 2 (every client's compressor side, in a list) as layout 3 (the sides made,
    by client index): a run checkpointed before client sides were made on first use resumes."""
    if not isinstance(state, dict) or state.get("format") != 2:
        return state
    compressor = state.get("compressor")
    if not isinstance(compressor, dict) or not isinstance(compressor.get("clients"), list):
        return state
    return {
        **state,
        "format": 3,
        "compressor": {**compressor, "clients": dict(enumerate(compressor["clients"]))},
    }


@dataclass
class LocalUpdates:
    """What the local-updates stage hands the uplink: this process's participants' training losses and
    encoded blocks and, for the preconditioner's extra pass, their statistics, in participant order."""

    losses: list[Tensor] = field(default_factory=list)
    blocks: list[list[Tensor]] = field(default_factory=list)
    statistics: list[list[Tensor]] = field(default_factory=list)


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

    STATE_FORMAT = 3  # bumped when the layout of state_dict changes (3: client sides by index, made ones)

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
        _check_memory(config, self.task.model_inputs, self.device)
        self.model = build_model(config.model, self.task.model_inputs, seed=streams.model).to(self.device)
        self.net: nn.Module = self.model  # what evaluates: the model, or its float64 wrapper
        if config.precision == "fp64":
            self.model.double()
            self.net = _Float64Inputs(self.model)
        self.forward = torch.compile(self.net) if config.compile else self.net
        self.params = list(self.model.parameters())
        # batch-norm statistics: with FedSGD the server keeps the first participant's (the paper's
        # client 0), with local training the participants' mean (federated.clients)
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
        self.compressor.server.identity = streams.identity >> 1  # the run's (see Streams.identity)
        # client sides are made on first use (laser.compressor.ClientSides), with the server's identity
        # physical units: the clients' drop, the link budget and their power caps (federated.radio.units)
        self.units = PhysicalUnits(config, streams.topology) if config.channel.scenario != "none" else None
        units = self.units
        self.channel = build_channel(
            config.channel,
            streams.channel,
            self.device,
            None if units is None else units.gains,
            None if units is None else units.noise_var,
            None if units is None else units.small_scale,
        )
        self.budget_scale = None
        if config.power.spread_db > 0:
            self.budget_scale = client_budget_scales(config.power.spread_db, num_clients, streams.budgets)
        self.downlink = None
        if config.downlink.snr_db is not None:
            self.downlink = NoisyDownlink(config.downlink.snr_db, streams.downlink, self.device)
        self.clients = Clients(
            self.model, self.forward, self.task, config.clients, self.downlink, self.autocast
        )
        self.sampler = build_sampler(config.clients, streams.sampling)
        self.weights: Tensor | None = None  # each client's weight in the server's mean
        if config.clients.weighting == "data_size":
            self.weights = torch.tensor(self.task.client_sizes(), dtype=torch.float64)
        self.optimizer = build_optimizer(config.optimizer, self.model)
        self.scheduler = build_scheduler(config.optimizer, self.optimizer, config.rounds)
        self.ema = WeightEMA(self.model, config.ema) if config.ema is not None else None
        self.dropout_seed = streams.dropout
        # local steps with adaptive scaling (federated.optim.Preconditioner)
        self.precond: Preconditioner | None = None
        if config.precond.name != "none":
            assert config.clients.lr is not None  # the config's check
            self.precond = Preconditioner(
                config.precond,
                [p.detach() for p in self.params],
                lr=config.clients.lr,
                local_steps=config.clients.local_steps,
                seed=streams.precond,
            )
        # the preconditioner's extra pass over the air, if it asks for one (its clients' statistic)
        self.extra_pass: StatisticPass | None = None
        if self.precond is not None:
            self.extra_pass = self.precond.extra_pass([p.detach() for p in self.params], num_clients)
        # physical units' digital link (digital.*): OFDMA shares, at the Shannon rate or over NR
        self.uplink = None if units is None or self.compressor.server.analog else units.uplink(config)
        # channel.shared_draws: every round's channel from a generator of its own (the round's)
        self.channel_seed = streams.channel
        # what every pass of a round shares; the round sets its clients' budget scales and weights
        power = config.power
        self.options = PassOptions(
            energy=power.energy,
            # physical units: one unit of energy per channel use, the client's cap (federated.radio.units)
            snr_db=self.units.budget_snr_db if self.units is not None else power.snr_db,
            allocation=power.allocation,
            keep_unheard=config.compressor.keep_unheard,
            processes=shard,
            clip=config.privacy.clip,  # privacy mode: clipped passes (docs/physics.md, section 14)
            keep_clipped=config.privacy.keep_clipped,
            uplink=self.uplink,
        )
        # privacy mode: every round's client-level (epsilon, delta) from its own noise
        self.privacy: PrivacyAccountant | None = None
        if config.privacy.clip is not None and self.buffers:
            raise ConfigError(
                "model.name",
                config.model.name,
                "a model without batch norm with privacy.clip (its running statistics would reach the "
                "server outside the channel, without noise)",
            )
        self._warned_floor = False  # privacy.snr_floor_db: the warning is said once a run
        # hidden participation (clients.sampling poisson): q, each client's probability of taking part
        self.hidden: float | None = None
        if config.clients.sampling == "poisson":  # privacy mode only (the config's check)
            passes = self.compressor.passes  # a round's most (a warm-up's: the method's it hands over to)
            if passes > 1:
                raise ConfigError(
                    "clients.sampling",
                    config.clients.sampling,
                    f"uniform with {config.compressor.name} (poisson sampling hides who takes part, "
                    f"which a single-pass method supports; this one sends {passes} passes)",
                )
            per_round = config.clients.per_round
            self.hidden = 1.0 if per_round is None else per_round / num_clients
            self.options = self.options.replace(participation=self.hidden)
        if config.privacy.clip is not None:
            self.privacy = PrivacyAccountant(
                config.privacy.delta,
                config.privacy.accountant,
                "none" if self.hidden is None else "poisson",
                probability=self.hidden,
            )
            if config.privacy.target_epsilon is not None:  # every round at least this noise multiplier
                floor = self.privacy.noise_multiplier_for(config.privacy.target_epsilon, config.rounds)
                if config.privacy.mechanism == "central":  # the server adds it over the exact mean
                    self.options = self.options.replace(central=floor)
                else:
                    self.options = self.options.replace(min_noise_multiplier=floor)
        # the local-updates stage: the vmapped clients, or the loop over them
        self.vectorized = self._vectorized(config.clients.vectorize)
        self.local_updates: Callable[[list[int], list[int], int], LocalUpdates] = (
            self._loop_updates if self.vectorized is None else self._vmapped_updates
        )

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
        elif supported and self.config.precision == "fp64":
            supported, reason = (False, "precision fp64 runs client by client")
        elif (
            supported
            and self.clients.local
            and (self.config.clients.keep_state or self.config.precond.name != "none")
        ):
            supported, reason = (
                False,
                "local training that keeps each client's optimizer state (clients.keep_state) or scales "
                "its steps (precond) runs client by client",
            )
        if not supported and mode == "vmap":
            raise ConfigError("clients.vectorize", mode, f"loop or auto for this run: {reason}")
        return VectorizedClients(self.model, cross_entropy) if supported else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The clients' and the evaluation's precision context (bf16 autocast or nothing)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    def client_gradient(self, client: int) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The client's FedSGD gradient this round (see :meth:`federated.clients.Clients.gradient`)."""
        return self.clients.gradient(client)

    def _encode(self, client: int, update: Sequence[Tensor], t: int) -> list[Tensor]:
        """Client ``client``'s blocks for this round (a non-finite update ends the run, diverged)."""
        try:
            return self.compressor.encode(client, update)
        except NonFiniteGradientError:
            raise NonFiniteError(
                f"round {t}: client {client}'s update is not finite (NaN or inf); {_STOPPED}"
            ) from None

    @property
    def main_process(self) -> bool:
        """Whether this process evaluates and writes the run (process 0, or the only one)."""
        return self.shard is None or self.shard.rank == 0

    def _vectorized_round(
        self, clients: Sequence[int], batches: list[list[tuple[Tensor, Tensor]]]
    ) -> tuple[list[Tensor], list[list[Tensor]]]:
        """The clients' losses and encoded blocks from one vmapped pass per micro-batch (over non-IID
        shards, a client at the short end of its epoch has a batch of another shape: one vmapped pass
        per shape there, :func:`federated.vectorized.stack_batches`)."""
        steps = [stack_batches(list(step)) for step in zip(*batches)]
        assert self.vectorized is not None  # batches are collected only for the vmapped clients
        with self.autocast():
            if self.clients.local:  # H steps of each client's optimizer, A micro-batches a step
                config = self.config.clients
                assert config.lr is not None  # local training
                per_step = len(steps) // config.local_steps
                losses, grads = self.vectorized.local_train(
                    [steps[h * per_step : (h + 1) * per_step] for h in range(config.local_steps)],
                    lr=config.lr,
                    optimizer=config.optimizer,
                    momentum=config.momentum,
                )
            else:
                losses, grads = self.vectorized.accumulate(steps)
        return list(losses), self.compressor.encode_many(list(clients), grads)

    def _participants(self, t: int) -> tuple[list[int], ChannelState | None]:
        """This round's participants and, when not everyone takes part (or with
        ``channel.shared_draws``), the round's first channel realization for them (drawn for every
        client first, so each keeps its own fading and path loss; channel-aware sampling ranks the
        clients by it)."""
        num_clients = self.config.clients.num_clients
        shared = self.config.channel.shared_draws
        if self.sampler.everyone and not shared:
            return list(range(num_clients)), None
        server = self.compressor.server
        # shared draws: the same dtype and draw for analog and digital methods (their round's channel)
        wide = (not server.analog and not shared) or self.params[0].dtype == torch.float64
        uses = sum(server.block_sizes()) if server.analog else 1
        dtype = torch.complex128 if wide else torch.complex64
        generator = self._round_generator(t) if shared else None
        state = self.channel.realize(num_clients, uses, generator, dtype=dtype)
        if self.sampler.everyone:
            return list(range(num_clients)), state
        chosen = self.sampler.sample(state.quality())
        if self.hidden is not None:  # the pass goes over the whole population (absent clients silent)
            return chosen, state
        return chosen, state.clients(torch.tensor(chosen))

    def _round_generator(self, t: int) -> torch.Generator:
        """``channel.shared_draws``: round ``t``'s own generator, seeded from the run's channel stream and
        ``t`` (NumPy's SeedSequence), on the channel's device."""
        seed = int(np.random.SeedSequence([self.channel_seed, t]).generate_state(1, np.uint64)[0] >> 1)
        device = self.channel.generator.device if self.channel.generator is not None else "cpu"
        return torch.Generator(device=device).manual_seed(seed)

    def round(self, t: int | None = None) -> dict[str, object]:
        """The next round (``t``, if given, must be its number: rounds run in order, once each), as its
        stages: who takes part, their local updates (encoded), the uplink, the server's step, the
        record; returns the round's record, which the history keeps."""
        t = self._next_round(t)
        self.channel.time_step = t  # a time-correlated channel (channel.name scenario) samples round t
        participants, state = self._participants(t)
        mine = participants if self.shard is None else [k for k in participants if k in self.shard.local]
        updates = self.local_updates(participants, mine, t)
        train_loss = self._train_loss(updates.losses, len(participants), t)
        if self.config.privacy.artificial_noise:  # the signals keep at least the floor's energy
            self.options = self.options.replace(min_energy_scale=self._floor_scale())
        result, statistic = self._uplink(participants, mine, updates, state, t)
        lr = self._server_step(result.gradient, statistic)
        record = self._record(t, train_loss, lr, result, statistic, participants)
        self.history.rounds.append(record)
        self.rounds_done = t + 1
        return record

    def _budget_snr_db(self, channel_uses: int) -> float | None:
        """The clients' budget as an SNR per channel use (dB) for a round of ``channel_uses``: physical
        units' cap, ``power.snr_db``, or 10 log10(E / (noise_var uses))."""
        if self.units is not None:
            return self.units.budget_snr_db
        return snr_per_use_db(self.config, channel_uses)

    def _floor_scale(self) -> float:
        """``privacy.snr_floor_db`` as the fraction of the budget the clients' signals keep at least,
        10^((floor - budget SNR) / 10), at most 1 (a floor above the budget: they lower nothing)."""
        floor = self.config.privacy.snr_floor_db
        uses = self.compressor.server.channel_uses()  # the round's, as its record counts them
        if self.extra_pass is not None:
            uses += self.extra_pass.compressor.server.channel_uses()
        budget = self._budget_snr_db(uses)
        assert floor is not None and budget is not None  # the config's and privacy mode's checks
        return min(1.0, 10 ** ((floor - budget) / 10))

    def _privacy_floor(self, t: int, passes: RoundResult, record: dict[str, object]) -> None:
        """A target's round: the fraction of the budget the signals kept, their SNR per channel use,
        the artificial noise sent; a warning, once a run, when the SNR falls below the floor."""
        scales = [p.energy_scale for p in passes.passes if p.energy_scale is not None]
        if not scales:
            return
        alpha = min(scales)
        record["privacy_energy_scale"] = alpha
        budget = self._budget_snr_db(int(record["channel_uses"]))  # type: ignore[call-overload]
        if budget is not None and alpha > 0:
            record["privacy_snr_db"] = budget + 10 * math.log10(alpha)
        if self.config.privacy.artificial_noise:
            record["privacy_artificial_noise_var"] = max(p.artificial_noise_var for p in passes.passes)
        floor = self.config.privacy.snr_floor_db
        snr = record.get("privacy_snr_db")
        if floor is not None and isinstance(snr, float) and snr < floor - 1e-6 and not self._warned_floor:
            self._warned_floor = True
            if alpha >= 1:
                how = "the clients' budget itself is below the floor: the target lowered nothing"
            elif self.config.privacy.artificial_noise:
                how = "the clients' budgets cannot carry the artificial noise the floor needs"
            else:
                how = "privacy.artificial_noise: true keeps the signals at the floor and sends more noise"
            warnings.warn(
                f"round {t}: the energy that meets privacy.target_epsilon leaves the clients {snr:.1f} dB "
                f"per channel use, below privacy.snr_floor_db = {floor:g} ({how}); each round records "
                "privacy_snr_db",
                stacklevel=2,
            )

    def _next_round(self, t: int | None) -> int:
        """The number of the next round (``t``, if given, must be it)."""
        if t is not None and (isinstance(t, bool) or t != self.rounds_done):
            raise ValueError(
                f"t = {t!r}: the next round of this simulation is round {self.rounds_done} (rounds run in "
                "order, once each; call round() for the next one)"
            )
        if self.rounds_done >= self.config.rounds:
            raise ValueError(f"the run's {self.config.rounds} rounds are done (config.rounds)")
        return self.rounds_done

    # --- stage: local updates. Each participant's update at the broadcast model, encoded at once
    # (which updates its error-feedback memory); another process's clients draw their batches all the
    # same. Two implementations: the loop over clients, and one vmapped pass per micro-batch.

    def _loop_updates(self, participants: list[int], mine: list[int], t: int) -> LocalUpdates:
        """The clients one after another (any model; local training, adaptive scaling, batch norm)."""
        precond = self.precond
        scaling: dict[str, object] = {}
        if precond is not None:  # D^ (and OASIS's probe z), broadcast with the model
            scaling = {"scale": precond.scale(), "statistic": precond.statistic, "probe": precond.probe()}
        snapshot = [b.clone() for b in self.model.buffers()] if self.clients.local and self.buffers else None
        first, total = None, None  # batch-norm statistics: the first participant's, and their sum
        updates = LocalUpdates()
        for k in participants:
            if k not in mine:
                self.clients.skip(k)
                continue
            loss, update = self.clients.update(k, **scaling)
            if self.clients.statistic is not None:
                updates.statistics.append([v.reshape(-1) for v in self.clients.statistic])
            if snapshot is not None:  # local training: keep the client's statistics, restore the server's
                first = [b.clone() for b in self.model.buffers()] if first is None else first
                floats = [b.clone() for b in self.buffers]
                total = floats if total is None else [a + b for a, b in zip(total, floats)]
                for b, value in zip(self.model.buffers(), snapshot):
                    b.copy_(value)
            elif self.buffers and first is None:
                first = [b.clone() for b in self.buffers]
            updates.blocks.append(self._encode(k, update, t))
            updates.losses.append(loss)
        self._set_buffers(first, total, len(participants))
        return updates

    def _vmapped_updates(self, participants: list[int], mine: list[int], t: int) -> LocalUpdates:
        """The clients' FedSGD gradients, or their H local steps, in one vmapped pass per micro-batch
        (``clients.vectorize``; :meth:`federated.vectorized.VectorizedClients.local_train`)."""
        batches = []
        for k in participants:
            if k not in mine:
                self.clients.skip(k)
            else:  # every micro-batch of its round, in the loop's order (local training: H steps of A)
                steps = self.config.clients.local_steps if self.clients.local else 1
                batches.append([batch for _ in range(steps) for batch in self.clients.batches(k)])
        updates = LocalUpdates()
        if batches:
            updates.losses, updates.blocks = self._vectorized_round(mine, batches)
        self._set_buffers(None, None, len(participants))
        return updates

    def _train_loss(self, losses: list[Tensor], count: int, t: int) -> Tensor:
        """The participants' mean training loss (over every process's; NaN in a round nobody took part
        in, which hidden Poisson sampling allows)."""
        if count == 0:
            return torch.tensor(math.nan)
        train_loss = torch.stack(losses).sum()
        if self.shard is not None:
            train_loss = self.shard.sum(train_loss)
        train_loss = train_loss / count
        _check_finite("training loss", train_loss, t)
        return train_loss

    # --- stage: uplink. The update's pass (the energy split over its blocks, the over-the-air mean of
    # each pass of the method), then the preconditioner's extra pass if it asks for one; the server
    # decodes. A float64 sum is finite iff every entry is (float32 values cannot overflow it), and it
    # needs no copy of the model-sized gradient.

    def _uplink(
        self,
        participants: list[int],
        mine: list[int],
        updates: LocalUpdates,
        state: ChannelState | None,
        t: int,
    ) -> tuple[RoundResult, RoundResult | None]:
        """The update's passes and the extra pass's (None without one)."""
        if self.hidden is not None:
            return self._hidden_uplink(participants, updates, state, t), None
        index = torch.tensor(mine, dtype=torch.long)
        options = self.options.replace(
            budget_scale=None if self.budget_scale is None else self.budget_scale[torch.tensor(participants)],
            weights=None if self.weights is None else self.weights[index],
        )
        extra = self.extra_pass
        sides = [self.compressor.clients[k] for k in mine]
        server = self.compressor.server
        mean, second = options, options
        if extra is not None:
            mean, second = options.share(extra.update_share), self._statistic_options(options)
            if options.clip is not None:  # privacy mode: the round's P + 1 passes compose to its floor
                mean = _floors(mean, server.passes, server.passes + 1)
        with _noise_overflow_diverges(t):
            result = transmit_blocks(self.channel, server, sides, updates.blocks, mean, state=state)
        _check_finite("decoded gradient", _sum(result.gradient), t)
        if extra is None:
            return result, None
        with _noise_overflow_diverges(t):
            statistic = extra.send(self.channel, mine, updates.statistics, second)
        _check_finite("decoded statistic", _sum(statistic.gradient), t)
        return result, statistic

    def _statistic_options(self, options: PassOptions) -> PassOptions:
        """The preconditioner's statistic pass's options: the round's, in privacy mode clipped at
        ``privacy.statistic_clip`` (else ``privacy.clip``) and kept to its share of the round's floor
        (one of the round's P + 1 passes)."""
        if options.clip is None:
            return options
        clip = self.config.privacy.statistic_clip
        second = options.replace(clip=options.clip if clip is None else clip)
        return _floors(second, 1, self.compressor.server.passes + 1)

    def _hidden_uplink(
        self, participants: list[int], updates: LocalUpdates, state: ChannelState | None, t: int
    ) -> RoundResult:
        """Hidden participation (``clients.sampling: poisson``): the pass over the whole population,
        the absent clients' blocks zeros (they send nothing, spend nothing), its scale from every
        client's clip and channel and the server's mean over the expected count
        (:class:`laser.PassOptions` ``participation``); the records keep the participants' rows."""
        num_clients = self.config.clients.num_clients
        server = self.compressor.server
        if updates.blocks:
            zeros = [torch.zeros_like(b) for b in updates.blocks[0]]
        else:  # nobody took part: the server receives the noise alone, as in any round
            dtype = self.params[0].dtype
            zeros = [torch.zeros(size, dtype=dtype, device=self.device) for size in server.block_sizes()]
        sent = dict(zip(participants, updates.blocks))
        blocks = [sent.get(k, zeros) for k in range(num_clients)]
        options = self.options.replace(budget_scale=self.budget_scale)
        everyone = list(range(num_clients))
        with _noise_overflow_diverges(t):
            result = transmit_blocks(self.channel, server, everyone, blocks, options, state=state)
        _check_finite("decoded gradient", _sum(result.gradient), t)
        clip = self.options.clip
        if clip is not None and self.options.keep_clipped:  # the clients sent as indices: give it back here
            for k, own in sent.items():
                self.compressor.clients[k].keep_clipped(own, clip)
        index = torch.tensor(participants, dtype=torch.long)
        passes = [
            dataclasses.replace(
                p,
                energy_used=p.energy_used[index],
                active=p.active[index],
                heard=None if p.heard is None else p.heard[index],
            )
            for p in result.passes
        ]
        return RoundResult(result.gradient, passes)

    # --- stage: the server's step on the decoded (pseudo-)gradient, which the next round broadcasts

    def _server_step(self, g_hat: list[Tensor], statistic: RoundResult | None) -> float:
        """The preconditioner's update (before the step reads g_hat), the optimizer's step, the schedule
        and the EMA; the learning rate the step used."""
        if self.precond is not None:
            self.precond.update(change=g_hat, statistic=None if statistic is None else statistic.gradient)
        lr = self.optimizer.param_groups[0]["lr"]
        for p, g in zip(self.params, g_hat):
            p.grad = g.to(p.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return lr

    # --- stage: the round's record (and the evaluation, on its rounds)

    def _record(
        self,
        t: int,
        train_loss: Tensor,
        lr: float,
        result: RoundResult,
        statistic: RoundResult | None,
        participants: list[int],
    ) -> dict[str, object]:
        """The round's record: loss, learning rate, the channel's log over every pass, the
        preconditioner's, who took part (under sampling) and, on evaluation rounds, the test metrics."""
        passes = (
            result if statistic is None else RoundResult(result.gradient, [*result.passes, *statistic.passes])
        )
        record = {"round": t, "train_loss": float(train_loss), "lr": lr, **channel_record(passes)}
        if self.units is not None:
            record.update(self.units.record(passes, participants))
            # running totals, so that an evaluation row says what reaching its accuracy cost
            last = self.history.rounds[-1] if self.history.rounds else {}
            for key in ("air_time_s", "energy_j_mean"):
                before = last.get(f"{key}_cum")  # a history from before these keys: its rows' sum
                if before is None:
                    before = sum(float(row.get(key, 0.0)) for row in self.history.rounds)
                record[f"{key}_cum"] = float(before) + float(record[key])  # type: ignore[arg-type]
        elif self.compressor.server.analog:
            snr = snr_per_use_db(self.config, int(record["channel_uses"]))  # type: ignore[call-overload]
            if snr is not None:
                record["snr_per_use_db"] = snr
        if self.privacy is not None:
            nu = passes.noise_multiplier
            assert nu is not None  # every pass of a privacy-mode round is clipped
            record["privacy_noise_multiplier"] = nu
            record["privacy_epsilon"] = self.privacy.step(nu)
            if self.hidden is not None:  # the accountant's amplification by sampling
                record["privacy_sampling_probability"] = self.hidden
            if self.config.privacy.target_epsilon is not None:
                self._privacy_floor(t, passes, record)
        if self.precond is not None:
            record["precond_mean"] = self.precond.mean_scale()
            if statistic is not None:
                record["precond_channel_uses"] = statistic.passes[-1].channel_uses
        if not self.sampler.everyone:
            record["participants"] = participants
        if ((t + 1) % self.config.eval_every == 0 or t + 1 == self.config.rounds) and self.main_process:
            record.update(self._evaluate())
        return record

    def _evaluate(self) -> dict[str, float]:
        """The test metrics of the model (and of its EMA weights, ``ema_...``)."""
        metrics = dict(self.task.evaluate(self.net, self.autocast))
        if self.ema is not None:
            averaged = self.ema.model(self.model)
            ema = self.task.evaluate(
                _Float64Inputs(averaged) if self.net is not self.model else averaged, self.autocast
            )
            metrics.update({f"ema_{k}": v for k, v in ema.items()})
        return metrics

    def _set_buffers(self, first: list[Tensor] | None, total: list[Tensor] | None, count: int) -> None:
        """The server's batch-norm statistics after the clients' passes: the first participant's
        (FedSGD), or the participants' mean (local training; the first's integer counters)."""
        if not self.buffers:
            return
        shard = self.shard
        if not self.clients.local:
            if first is not None:
                for b, value in zip(self.buffers, first):
                    b.copy_(value)
            if shard is not None:
                for b in self.buffers:  # the first participant's, from the process holding it (0)
                    shard.broadcast(b, src=0)
            return
        if first is not None:
            for b, value in zip(self.model.buffers(), first):
                b.copy_(value)
        summed = total if total is not None else [torch.zeros_like(b) for b in self.buffers]
        if shard is not None:
            summed = [shard.sum(s) for s in summed]
        for b, s in zip(self.buffers, summed):
            b.copy_(s / count)

    def participation(self) -> list[int]:
        """How many rounds each client took part in so far (from the history)."""
        counts = [0] * self.config.clients.num_clients
        for record in self.history.rounds:
            for k in record.get("participants", range(len(counts))):
                counts[k] += 1
        return counts

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
            "clients": self.clients.state_dict(),
            "sampler": self.sampler.state_dict(),
            "task": self.task.state_dict(),
            "channel": self.channel.random_state(),
            "downlink": None if self.downlink is None else self.downlink.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            **({} if self.precond is None else {"precond": self.precond.state_dict()}),
            **(
                {}
                if self.uplink is None or self.uplink.outer is None
                else {"uplink": self.uplink.state_dict()}
            ),
        }

    def check_state(self, state: object, path: Path) -> dict:
        """``state`` (read from ``path``) if it is a state of this layout and configuration, else
        :class:`~federated.checkpoint.CheckpointError`."""
        reference = self.state_dict()  # a fresh run's (resuming happens before the first round)
        reference.pop("config")
        reference["compressor"] = _without_identities(reference["compressor"])  # older states lack them
        state = _upgraded(state)
        checked = check_state(
            state,
            path,
            format=self.STATE_FORMAT,
            config_matches=lambda stored: same_config(stored, self.config),
            reference=reference,
            rounds=self.config.rounds,
        )
        # the client sides it holds (a fresh run has none): each shaped like a fresh side's state
        fresh = self.compressor.make_client([p.detach() for p in self.params]).state_dict()
        check_by_index(
            checked["compressor"]["clients"],
            _without_identities(fresh),
            path,
            where="state['compressor']['clients']",
            count=self.config.clients.num_clients,
        )
        return checked

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (tensors from any device)."""
        self.rounds_done = int(state["round"])
        self.history.rounds = list(state["history"])
        if self.privacy is not None:  # the accountant composes the rounds the history kept again
            self.privacy.load_state_dict(
                {"noise_multipliers": [r["privacy_noise_multiplier"] for r in self.history.rounds]}
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.compressor.load_state_dict(state["compressor"])
        self.clients.load_state_dict(state["clients"])
        self.sampler.load_state_dict(state["sampler"])
        self.task.load_state_dict(state["task"])
        self.channel.set_random_state(state["channel"])
        if self.downlink is not None:
            self.downlink.generator.set_state(state["downlink"].cpu())
        if self.precond is not None:
            self.precond.load_state_dict(state["precond"])
        if self.uplink is not None and self.uplink.outer is not None:
            self.uplink.load_state_dict(state["uplink"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
