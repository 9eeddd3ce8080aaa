"""The whole run's configuration: its own keys (seed, rounds, evaluation, checkpoints, device) and
one section per concern (:mod:`federated.config.learning`, :mod:`federated.config.wireless`), with
the checks that involve several sections."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from federated.config.errors import check as _check
from federated.config.learning import (
    MODEL_DATA,
    TEXT_DATA,
    ClientsConfig,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    PrecondConfig,
)
from federated.config.wireless import (
    ChannelConfig,
    CompressorConfig,
    DigitalConfig,
    DownlinkConfig,
    PowerConfig,
    PrivacyConfig,
)

__all__ = ["Config"]


@dataclass(frozen=True)
class Config:
    seed: int = 0  # one seed per run, split into independent streams
    rounds: int = 300  # communication rounds (= server steps)
    eval_every: int = 50  # evaluate on the test set every this many rounds (and at the end)
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    # torch's CPU threads for this run (intra-op; BLAS and OpenMP alike), set by the run itself: a
    # run's numbers depend on this value, not on OMP_NUM_THREADS / MKL_NUM_THREADS or on how it was
    # launched (bit-identical for a given value on one machine); more threads speed up large models
    threads: int = 1
    # the instruction set of torch's and oneDNN's CPU kernels: avx2 pins them to AVX2, so that every x86
    # CPU with AVX2 (AVX-512 ones included) runs the same kernels and, where they match, gives the same
    # numbers; native: the CPU's widest (AVX-512 is faster where present; its last digits differ).
    # Applied by `laser run` before torch starts; $LASER_CPU_ISA overrides it; no effect on a CPU without
    # AVX2 or on ARM (summary.json's cpu_isa says what held; docs/reproducibility.md)
    cpu_isa: Literal["avx2", "native"] = "avx2"
    # fp32; bf16: the clients' forward and backward under bf16 autocast; fp64: model and inputs in
    # float64 (exact comparisons, numerics studies)
    precision: Literal["fp32", "bf16", "fp64"] = "fp32"
    compile: bool = False  # torch.compile the model's forward (worth it on a GPU for large models)
    # decay of an exponential moving average of the weights (and BN statistics), evaluated beside
    # them as ema_test_*; the paper's vision tasks: 0.99
    ema: float | None = None
    # rounds between checkpoints in the run directory (0: none); a killed run continues with
    # `laser run --resume DIR`
    checkpoint_every: int = 100
    # also write the per-round history as TensorBoard scalars under DIR/tensorboard (needs the
    # tensorboard extra)
    tensorboard: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    clients: ClientsConfig = field(default_factory=ClientsConfig)
    compressor: CompressorConfig = field(default_factory=CompressorConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    power: PowerConfig = field(default_factory=PowerConfig)
    downlink: DownlinkConfig = field(default_factory=DownlinkConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    precond: PrecondConfig = field(default_factory=PrecondConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    digital: DigitalConfig = field(default_factory=DigitalConfig)

    def __post_init__(self) -> None:
        _check(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        _check(1 <= self.rounds <= 10**9, "rounds", self.rounds, "an integer in 1..1e9")
        _check(self.threads >= 1, "threads", self.threads, "an integer >= 1 (torch's CPU threads)")
        _check(self.eval_every >= 1, "eval_every", self.eval_every, "an integer >= 1")
        _check(
            self.clients.sampling != "poisson" or self.privacy.clip is not None,
            "clients.sampling",
            self.clients.sampling,
            "uniform or best_channel without privacy.clip (poisson sampling hides who takes part from the "
            "server, which only privacy mode needs)",
        )
        if self.privacy.clip is not None:
            self._check_privacy()
        _check(self.ema is None or 0 < self.ema < 1, "ema", self.ema, "a number in (0, 1), or null (no EMA)")
        _check(
            self.checkpoint_every >= 0,
            "checkpoint_every",
            self.checkpoint_every,
            "an integer >= 0 (0: never)",
        )
        _check(
            self.data.name in MODEL_DATA[self.model.name],
            "model.name",
            self.model.name,
            f"a model for data.name={self.data.name}: "
            + ", ".join(m for m, names in MODEL_DATA.items() if self.data.name in names),
        )
        _check(
            self.optimizer.schedule != "multistep" or bool(self.optimizer.milestones),
            "optimizer.milestones",
            list(self.optimizer.milestones),
            "at least one round when optimizer.schedule is multistep",
        )
        _check(
            re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
            "device",
            self.device,
            "auto, cpu, cuda or cuda:N",
        )
        _check(
            self.compressor.analog or self.power.snr_db is None or self.power.spread_db == 0,
            "power.spread_db",
            self.power.spread_db,
            f"0 for a digital compressor ({self.compressor.name}) at a fixed power.snr_db "
            "(heterogeneous budgets apply to energy budgets there)",
        )
        absolute = self.channel.scenario != "none"
        _check(
            absolute == (self.power.max_dbm is not None),
            "power.max_dbm" if absolute else "channel.scenario",
            self.power.max_dbm if absolute else self.channel.scenario,
            f"a transmit power in dBm with channel.scenario = {self.channel.scenario} (and power.energy: "
            "null)"
            if absolute
            else "umi, uma or rma with power.max_dbm (a transmit power needs a link budget)",
        )
        _check(
            not absolute or self.power.spread_db == 0,
            "power.spread_db",
            self.power.spread_db,
            f"0 with channel.scenario = {self.channel.scenario} (each client's cap comes from its drop and "
            "power.control; a spread would push some past power.max_dbm)",
        )
        _check(
            self.channel.bs_pattern == "omni" or absolute,
            "channel.bs_pattern",
            self.channel.bs_pattern,
            "omni unless channel.scenario is set (the sector element is part of a drop's coupling loss)",
        )
        self._check_digital(absolute)
        clients, data = self.clients, self.data
        _check(
            clients.weighting != "data_size" or not (data.name in TEXT_DATA and data.partition == "iid"),
            "clients.weighting",
            clients.weighting,
            "uniform for a language task with data.partition iid (every client samples the whole "
            "stream: no data sizes); data_size needs data.partition contiguous there",
        )
        _check(
            clients.vectorize != "vmap"
            or clients.lr is None
            or not (clients.keep_state or self.precond.name != "none"),
            "clients.vectorize",
            clients.vectorize,
            "loop or auto for local training that keeps each client's optimizer state (clients.keep_state) "
            "or scales its steps (precond): it runs client by client",
        )
        _check(
            self.precond.name == "none" or (clients.lr is not None and clients.optimizer == "sgd"),
            "precond.name",
            self.precond.name,
            "none unless clients.lr is set and clients.optimizer is sgd (the scaling preconditions the "
            "clients' local SGD steps)",
        )

    def _check_digital(self, absolute: bool) -> None:
        """The digital link (digital.*): nr only in physical units; physical units' OFDMA link only
        where it is modelled (flat fading, one antenna, one process, a share for every client)."""
        digital, channel = self.digital, self.channel
        _check(
            digital.link == "shannon" or absolute,
            "digital.link",
            digital.link,
            "shannon unless channel.scenario is set (an NR link's MCS needs each client's SINR per resource "
            "element, from physical units' link budget)",
        )
        _check(
            digital.link == "shannon" or not self.compressor.analog,
            "digital.link",
            digital.link,
            f"shannon with an analog method ({self.compressor.name} sends its sum over the air, not bits)",
        )
        if digital.link != "nr":  # the NR link's own keys would be silently ignored
            defaults = DigitalConfig()
            for key in ("bler_target", "harq_retx", "adaptation", "olla_step_db"):
                value = getattr(digital, key)
                _check(
                    value == getattr(defaults, key),
                    f"digital.{key}",
                    value,
                    f"its default ({getattr(defaults, key)}) unless digital.link is nr (an NR link's "
                    "setting)",
                )
        if not absolute or self.compressor.analog:
            return
        name = self.compressor.name
        _check(
            channel.name in ("awgn", "rayleigh", "rician", "scenario"),
            "channel.name",
            channel.name,
            f"awgn, rayleigh, rician or scenario with a digital method ({name}) in physical units (its "
            "link sees one flat gain a client and round)",
        )
        _check(
            channel.coherence_blocks == 1,
            "channel.coherence_blocks",
            channel.coherence_blocks,
            f"1 with a digital method ({name}) in physical units (one flat gain a client and round)",
        )
        _check(
            channel.rx_antennas == 1,
            "channel.rx_antennas",
            channel.rx_antennas,
            f"1 with a digital method ({name}) in physical units (its link is modelled for one antenna)",
        )
        per_round = self.clients.per_round or self.clients.num_clients
        _check(
            per_round <= channel.resource_blocks,
            "clients.per_round" if self.clients.per_round else "clients.num_clients",
            per_round,
            f"at most channel.resource_blocks ({channel.resource_blocks}) with a digital method in "
            "physical units (OFDMA: a resource block or more for each client of a round)",
        )

    def _check_privacy(self) -> None:
        """What a clipped pass (privacy.clip) cannot do yet, or cannot do privately."""
        _check(
            self.compressor.analog,
            "compressor.name",
            self.compressor.name,
            "an analog method with privacy.clip (the privacy comes from the noise of the over-the-air sum)",
        )
        if self.privacy.mechanism == "central":  # the server's noise over an exact mean
            _check(
                self.channel.name == "noiseless",
                "channel.name",
                self.channel.name,
                "noiseless with privacy.mechanism central (Flower-style central DP: the server's noise "
                "over the exact mean)",
            )
            _check(
                self.clients.sampling == "uniform",
                "clients.sampling",
                self.clients.sampling,
                "uniform with privacy.mechanism central (the server samples, as Flower's does, and "
                "accounts with q = 1)",
            )
            _check(
                self.clients.weighting == "uniform",
                "clients.weighting",
                self.clients.weighting,
                "uniform with privacy.mechanism central (Flower's DP wrapper needs uniform weights)",
            )
            return
        _check(
            self.channel.name != "noiseless",
            "channel.name",
            self.channel.name,
            "a channel with noise with privacy.clip (noiseless releases the exact sum)",
        )
        _check(
            self.power.energy is None or math.isfinite(self.power.energy),
            "power.energy",
            self.power.energy,
            "a finite energy with privacy.clip (an infinite budget sends the sum without noise)",
        )
        _check(
            self.channel.noise_var > 0,
            "channel.noise_var",
            self.channel.noise_var,
            "a number > 0 with privacy.clip (the noise is the privacy)",
        )
        _check(
            self.channel.inter_cell == "none",
            "channel.inter_cell",
            self.channel.inter_cell,
            "none with privacy.clip (other cells' signals are no trusted noise: they may be absent or "
            "cancelled)",
        )
        _check(
            self.clients.weighting == "uniform",
            "clients.weighting",
            self.clients.weighting,
            "uniform with privacy.clip (data-size weights scale each signal: side information)",
        )
        _check(
            self.clients.sampling != "poisson" or not self.precond.second_pass,
            "precond.name",
            self.precond.name,
            "a preconditioner without a statistic pass with clients.sampling poisson (the hidden pass "
            "is a round's only one)",
        )
        _check(
            self.clients.sampling != "poisson" or self.privacy.accountant == "rdp",
            "privacy.accountant",
            self.privacy.accountant,
            "rdp with clients.sampling poisson (the privacy loss distribution of each round's new "
            "Poisson-subsampled Gaussian takes seconds to a minute a round to build)",
        )
        _check(
            self.clients.sampling != "poisson" or not self.compressor.keep_unheard,
            "compressor.keep_unheard",
            self.compressor.keep_unheard,
            "false with clients.sampling poisson (the server cannot tell its unheard participants)",
        )
        _check(
            not self.privacy.keep_clipped or self.compressor.name != "adsgd",
            "privacy.keep_clipped",
            self.privacy.keep_clipped,
            "false with compressor.name adsgd (its error feedback takes back only a whole message)",
        )
        _check(
            self.privacy.statistic_clip is None or self.precond.second_pass,
            "privacy.statistic_clip",
            self.privacy.statistic_clip,
            "null without a preconditioner's statistic pass (precond.name oasis, or adam with "
            "mean_of_squares)",
        )
        if self.privacy.artificial_noise:  # the clients' noise shares must arrive as they are sent
            why = "with privacy.artificial_noise (the clients' noise shares must arrive as they are sent)"
            _check(self.channel.rx_antennas == 1, "channel.rx_antennas", self.channel.rx_antennas, f"1 {why}")
            _check(
                self.channel.csi_error_var == 0,
                "channel.csi_error_var",
                self.channel.csi_error_var,
                f"0 {why}",
            )
            _check(
                self.clients.sampling != "poisson",
                "clients.sampling",
                self.clients.sampling,
                f"uniform or best_channel {why}: absent clients would have to send their shares",
            )
