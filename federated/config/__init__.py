"""Run configuration: frozen dataclasses are the schema, YAML files are data, ``key.sub=value``
overrides come from the command line.

Every field has a comment and a unit where it has one. :func:`load_config` checks names, types and
ranges before any work starts and raises :class:`ConfigError`, whose one-line message names the key,
the value and what is accepted.

Example:
    >>> config = load_config(None, ["compressor.name=zsgd", "power.energy=1e3", "rounds=10"])
    >>> config.compressor.name, config.power.energy, config.rounds
    ('zsgd', 1000.0, 10)
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "ConfigError",
    "Config",
    "DataConfig",
    "ModelConfig",
    "ClientsConfig",
    "CompressorConfig",
    "ChannelConfig",
    "DownlinkConfig",
    "PowerConfig",
    "OptimizerConfig",
    "load_config",
    "config_to_dict",
    "same_config",
]


class ConfigError(ValueError):
    """A bad configuration: ``key``, ``value`` and what is ``accepted``."""

    def __init__(self, key: str, value: object, accepted: str) -> None:
        self.key, self.value, self.accepted = key, value, accepted
        super().__init__(f"{key} = {value!r} is not accepted; expected {accepted}")

    def under(self, section: str) -> ConfigError:
        return ConfigError(f"{section}.{self.key}", self.value, self.accepted)


def _check(ok: bool, key: str, value: object, accepted: str) -> None:
    if not ok:
        raise ConfigError(key, value, accepted)


CLASSIFICATION_DATA = ("mnist1d", "digits", "cifar10", "cifar100")
TEXT_DATA = ("wikitext103", "pydoc")


@dataclass(frozen=True)
class DataConfig:
    # offline: mnist1d (generated locally), digits (ships with scikit-learn), pydoc (the Python
    # standard library's help texts); downloaded once into root: cifar10, cifar100, wikitext103
    name: Literal["mnist1d", "digits", "cifar10", "cifar100", "wikitext103", "pydoc"] = "mnist1d"
    num_samples: int = 10000  # mnist1d: samples generated, train + test (digits: fixed 1797)
    test_fraction: float = 0.2  # mnist1d, digits: share held out for testing; pydoc: for validation
    root: str = "data"  # where datasets are cached or downloaded to
    download: bool = True  # cifar10, cifar100, wikitext103: fetch the official archive if root lacks it
    augment: bool = True  # cifar10, cifar100: random crop (4-pixel padding) and horizontal flip
    tokenizer: Literal["byte", "gpt2"] = "byte"  # wikitext103, pydoc: UTF-8 bytes, or GPT-2 BPE (tiktoken)

    def __post_init__(self) -> None:
        _check(self.num_samples >= 100, "num_samples", self.num_samples, "an integer >= 100")
        _check(0 < self.test_fraction < 1, "test_fraction", self.test_fraction, "a number in (0, 1)")

    @property
    def is_text(self) -> bool:
        """Whether the task is language modelling (else classification)."""
        return self.name in TEXT_DATA


# model name -> the data it reads
MODEL_DATA = {
    "cnn": ("mnist1d", "digits"),
    "linear": ("mnist1d", "digits"),
    "mlp": ("mnist1d", "digits"),
    "resnet18": ("cifar10", "cifar100"),
    "gpt": TEXT_DATA,
}


@dataclass(frozen=True)
class ModelConfig:
    # cnn: 1-D CNN; linear: linear classifier; mlp: one hidden layer; resnet18: the CIFAR ResNet-18;
    # gpt: a GPT-2-style decoder (nanoGPT), tied embeddings, no biases
    name: Literal["cnn", "linear", "mlp", "resnet18", "gpt"] = "cnn"
    # cnn: channels; mlp: hidden units; resnet18: base width (64: the paper's); gpt: embedding
    # width (768: GPT-2 124M)
    width: int = 64
    layers: int = 12  # gpt: transformer blocks
    heads: int = 12  # gpt: attention heads (divides width)
    context: int = 512  # gpt: tokens per training sequence
    dropout: float = 0.0  # gpt: dropout on embeddings, attention and residuals (paper: 0.2)

    def __post_init__(self) -> None:
        _check(self.width >= 1, "width", self.width, "an integer >= 1")
        _check(self.layers >= 1, "layers", self.layers, "an integer >= 1")
        _check(
            self.heads >= 1 and (self.name != "gpt" or self.width % self.heads == 0),
            "heads",
            self.heads,
            f"an integer >= 1 that divides model.width ({self.width})",
        )
        _check(self.context >= 1, "context", self.context, "an integer >= 1")
        _check(0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")


@dataclass(frozen=True)
class ClientsConfig:
    num_clients: int = 16  # K, all of whom take part in every round
    batch_size: int = 32  # examples (language: sequences) per client per micro-batch
    # micro-batches per client per round; their gradients are summed (not averaged), as the
    # paper's GPT-2 runs do
    accumulation_steps: int = 1
    # loop: one client after another (the default: bit-identical to earlier versions' results);
    # vmap: every client's gradient in one torch.func.vmap call (small models, many clients; the
    # loop's result to float rounding); auto: vmap where the model allows it (no batch norm or
    # dropout in training, no noisy downlink), else the loop
    vectorize: Literal["loop", "vmap", "auto"] = "loop"

    def __post_init__(self) -> None:
        _check(self.num_clients >= 1, "num_clients", self.num_clients, "an integer >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.accumulation_steps >= 1, "accumulation_steps", self.accumulation_steps, "an integer >= 1")


ANALOG_COMPRESSORS = ("laser", "powersgd", "zsgd", "randomk", "sketch", "signum", "adsgd")
DIGITAL_COMPRESSORS = ("topk", "qsgd", "natural", "natural_dithering", "topk_dithering", "signsgd")


@dataclass(frozen=True)
class CompressorConfig:
    # analog (summed over the air): laser (rank-r factor, one per round, error feedback), powersgd
    # (both factors per round, two passes), zsgd (uncompressed), randomk (shared random support,
    # error feedback), sketch (one-row count-mean sketch), signum (signs, majority vote), adsgd
    # (top-k, shared Gaussian projection, MMSE or AMP decoding); digital (bits on orthogonal links at
    # the Shannon rate): topk (error feedback), qsgd, natural (compression), natural_dithering,
    # topk_dithering (top-k then natural dithering, error feedback), signsgd (majority vote)
    name: Literal[
        "laser",
        "powersgd",
        "zsgd",
        "randomk",
        "sketch",
        "signum",
        "adsgd",
        "topk",
        "qsgd",
        "natural",
        "natural_dithering",
        "topk_dithering",
        "signsgd",
    ] = "laser"
    rank: int = 4  # laser, powersgd: rank r of the transmitted factors
    min_compression_rate: float = 2.0  # laser, powersgd: compress a tensor only if it saves more than this
    factors_per_round: int = 1  # laser: 1 (alternating, the paper) or 2 (= powersgd)
    exponent: float | None = None  # laser, powersgd: split a factor's energy over its columns ~ norm^exponent
    fraction: float = 0.1  # randomk, sketch, adsgd, topk, topk_dithering: share of each tensor's entries sent
    error_feedback: bool | None = None  # randomk, sketch, topk, topk_dithering: null = the method's default
    unbiased: bool = False  # randomk: scale the decoded values by d / K
    levels: int = 8  # qsgd, natural_dithering, topk_dithering: quantisation levels s
    momentum: float = 0.0  # signum, signsgd: client momentum beta before taking signs
    decoder: Literal["lmmse", "amp"] = "lmmse"  # adsgd: linear MMSE estimate or message passing
    amp_iterations: int = 30  # adsgd: AMP iterations

    def __post_init__(self) -> None:
        _check(self.rank >= 1, "rank", self.rank, "an integer >= 1")
        _check(
            self.min_compression_rate >= 0, "min_compression_rate", self.min_compression_rate, "a number >= 0"
        )
        _check(
            self.factors_per_round in (1, 2),
            "factors_per_round",
            self.factors_per_round,
            "1 (LASER) or 2 (PowerSGD)",
        )
        _check(
            self.exponent is None or math.isfinite(self.exponent),
            "exponent",
            self.exponent,
            "a finite number, or null (one energy share per factor)",
        )
        _check(0 < self.fraction <= 1, "fraction", self.fraction, "a number in (0, 1]")
        _check(self.levels >= 1, "levels", self.levels, "an integer >= 1")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        _check(self.amp_iterations >= 1, "amp_iterations", self.amp_iterations, "an integer >= 1")

    @property
    def analog(self) -> bool:
        """Whether the method's messages add up over the air (else: digital, orthogonal links)."""
        return self.name in ANALOG_COMPRESSORS


@dataclass(frozen=True)
class ChannelConfig:
    # awgn: the paper's channel (all gains 1); noiseless: exact mean; rayleigh / rician: flat block
    # fading per client and round; tdl: 3GPP TDL profile over OFDM subcarriers (broadband)
    name: Literal["awgn", "noiseless", "rayleigh", "rician", "tdl"] = "awgn"
    noise_var: float = 1.0  # noise variance per real channel use (sigma^2)
    power_control: Literal["inversion", "truncated", "imperfect_csi"] = (
        "inversion"  # see channels.power_control
    )
    threshold: float = 0.0  # truncated / imperfect_csi: silent where |h|^2 (as known) < threshold
    csi_error_var: float = 0.0  # imperfect_csi: variance of the complex channel-estimation error
    coherence_blocks: int = 1  # independent fading draws per round (1: block fading per round)
    k_factor: float = 3.0  # rician: power ratio of the line-of-sight to the scattered part
    tdl_profile: Literal["A", "B", "C", "D", "E"] = "A"  # tdl: 3GPP TR 38.901 profile
    delay_spread_s: float = 100e-9  # tdl: RMS delay spread in seconds
    num_subcarriers: int = 64  # tdl: OFDM subcarriers the blocks are spread over
    subcarrier_spacing_hz: float = 30e3  # tdl: subcarrier spacing
    carrier_frequency_hz: float = 3.5e9  # tdl and path loss: carrier frequency
    path_loss: Literal["none", "umi_los", "umi_nlos"] = "none"  # large-scale gain from client positions
    min_distance_m: float = 10.0  # path loss: clients uniform over the annulus [min, max]
    max_distance_m: float = 200.0
    reference_distance_m: float = 100.0  # path loss: mean gain 1 (SNR = energy / noise_var) here
    shadowing: bool = True  # path loss: log-normal shadowing (4 dB LOS, 7.82 dB NLOS)

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.noise_var) and self.noise_var >= 0,
            "noise_var",
            self.noise_var,
            "a finite number >= 0",
        )
        _check(
            math.isfinite(self.threshold) and self.threshold >= 0,
            "threshold",
            self.threshold,
            "a finite number >= 0 (a channel power gain)",
        )
        _check(
            math.isfinite(self.csi_error_var) and self.csi_error_var >= 0,
            "csi_error_var",
            self.csi_error_var,
            "a finite number >= 0",
        )
        _check(self.coherence_blocks >= 1, "coherence_blocks", self.coherence_blocks, "an integer >= 1")
        _check(
            math.isfinite(self.k_factor) and self.k_factor >= 0,
            "k_factor",
            self.k_factor,
            "a finite number >= 0 (0 is Rayleigh)",
        )
        _check(self.delay_spread_s > 0, "delay_spread_s", self.delay_spread_s, "a number > 0 (seconds)")
        _check(self.num_subcarriers >= 1, "num_subcarriers", self.num_subcarriers, "an integer >= 1")
        _check(
            self.subcarrier_spacing_hz > 0,
            "subcarrier_spacing_hz",
            self.subcarrier_spacing_hz,
            "a number > 0",
        )
        _check(
            0.5e9 <= self.carrier_frequency_hz <= 100e9,
            "carrier_frequency_hz",
            self.carrier_frequency_hz,
            "a frequency in [0.5e9, 100e9] Hz (the 3GPP TR 38.901 models' range)",
        )
        _check(
            10 <= self.min_distance_m <= self.max_distance_m <= 5000,
            "max_distance_m",
            self.max_distance_m,
            "10 <= min_distance_m <= max_distance_m <= 5000 (metres)",
        )
        _check(
            self.reference_distance_m > 0, "reference_distance_m", self.reference_distance_m, "a number > 0"
        )


@dataclass(frozen=True)
class DownlinkConfig:
    snr_db: float | None = None  # per-entry SNR of the model broadcast; null: noiseless (the paper's)

    def __post_init__(self) -> None:
        if self.snr_db is not None:
            _check(
                -200 <= self.snr_db <= 200, "snr_db", self.snr_db, "a number of dB in [-200, 200], or null"
            )


@dataclass(frozen=True)
class PowerConfig:
    energy: float | None = 100.0  # energy-limited regime: per-client energy per round (the paper's P)
    snr_db: float | None = None  # power-limited regime: per-channel-use SNR in dB (set energy: null)
    allocation: Literal["norm", "norm_sqrt_dim", "uniform"] = "norm"  # split of energy over blocks
    # heterogeneous budgets: client k gets 10^(u_k/10) times the budget, u_k uniform in
    # [-spread_db/2, spread_db/2], drawn once per run
    spread_db: float = 0.0

    def __post_init__(self) -> None:
        _check(
            (self.energy is None) != (self.snr_db is None),
            "energy",
            self.energy,
            "exactly one of power.energy and power.snr_db to be set (the other null)",
        )
        if self.energy is not None:
            _check(self.energy >= 0, "energy", self.energy, "a number >= 0 (.inf for noiseless)")
        if self.snr_db is not None:
            _check(-200 <= self.snr_db <= 200, "snr_db", self.snr_db, "a number of dB in [-200, 200]")
        _check(
            math.isfinite(self.spread_db) and self.spread_db >= 0,
            "spread_db",
            self.spread_db,
            "a finite number >= 0 (dB)",
        )


@dataclass(frozen=True)
class OptimizerConfig:
    # the server's optimizer, fed with the decoded gradient. sgd: weight decay is L2 on every
    # parameter (the paper's vision tasks); adamw: decoupled weight decay on the weights of Linear
    # layers only (not LayerNorm, biases, embeddings or the tied head; the paper's GPT-2)
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.05  # peak learning rate
    momentum: float = 0.9  # sgd: heavy-ball momentum
    nesterov: bool = False  # sgd
    beta1: float = 0.9  # adamw
    beta2: float = 0.95  # adamw
    weight_decay: float = 1e-4
    # learning-rate schedule over rounds. multistep: lr *= gamma at each round in milestones;
    # onecycle: warm up from lr / div_factor to lr over warmup_fraction of the rounds, then cosine
    # down to lr * final_lr_fraction (the paper's GPT-2: 0.02, 100, 0.2)
    schedule: Literal["constant", "multistep", "onecycle"] = "constant"
    milestones: tuple[int, ...] = ()  # multistep: rounds (an epoch is ceil(shard / batch) rounds)
    gamma: float = 0.1  # multistep: factor per milestone
    warmup_fraction: float = 0.02  # onecycle
    div_factor: float = 100.0  # onecycle: starting lr = lr / div_factor
    final_lr_fraction: float = 0.2  # onecycle: final lr = lr * final_lr_fraction

    def __post_init__(self) -> None:
        _check(math.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "a finite number > 0")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        _check(0 <= self.beta1 < 1, "beta1", self.beta1, "a number in [0, 1)")
        _check(0 <= self.beta2 < 1, "beta2", self.beta2, "a number in [0, 1)")
        _check(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            "weight_decay",
            self.weight_decay,
            "a finite number >= 0",
        )
        _check(
            not self.nesterov or (self.name == "sgd" and self.momentum > 0),
            "nesterov",
            self.nesterov,
            "false unless optimizer.name is sgd with momentum > 0 (Nesterov needs momentum)",
        )
        _check(
            all(m >= 1 for m in self.milestones) and list(self.milestones) == sorted(set(self.milestones)),
            "milestones",
            list(self.milestones),
            "increasing round numbers >= 1, e.g. [3750, 6250]",
        )
        _check(math.isfinite(self.gamma) and self.gamma > 0, "gamma", self.gamma, "a finite number > 0")
        _check(0 < self.warmup_fraction < 1, "warmup_fraction", self.warmup_fraction, "a number in (0, 1)")
        _check(self.div_factor >= 1, "div_factor", self.div_factor, "a number >= 1")
        _check(
            0 < self.final_lr_fraction <= 1, "final_lr_fraction", self.final_lr_fraction, "a number in (0, 1]"
        )


@dataclass(frozen=True)
class Config:
    seed: int = 0  # one seed per run, split into independent streams
    rounds: int = 300  # communication rounds (= server steps)
    eval_every: int = 50  # evaluate on the test set every this many rounds (and at the end)
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: the clients' forward and backward under bf16 autocast
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

    def __post_init__(self) -> None:
        _check(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        _check(self.rounds >= 1, "rounds", self.rounds, "an integer >= 1")
        _check(self.eval_every >= 1, "eval_every", self.eval_every, "an integer >= 1")
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


# --------------------------------------------------------------------------------- parsing
def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return "a list of " + _describe(typing.get_args(tp)[0]).removeprefix("an ").removeprefix("a ") + "s"
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        type(None): "null",
    }.get(tp, str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (from YAML or a command-line string), or a ConfigError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(key, value, option)
            except ConfigError:
                pass
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)) and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    elif tp is type(None):
        if value is None or value in ("null", "None", "~"):
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e3" as a string
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(key, value, _describe(tp))


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or "config", data, "a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                prefix + str(key), value, "a known key: " + ", ".join(prefix + n for n in names)
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, prefix + key + ".")
        else:
            kwargs[key] = _coerce(prefix + key, value, tp)
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise error.under(prefix.rstrip(".")) if prefix else error from None


def _set_path(tree: dict, override: str) -> None:
    if "=" not in override:
        raise ConfigError("override", override, "key.sub=value")
    path, raw = override.split("=", 1)
    keys = path.strip().split(".")
    if not all(keys):
        raise ConfigError("override", override, "key.sub=value")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(path, raw, "a key inside a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML file (``None``: the defaults), apply ``key.sub=value`` overrides, validate."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("config", str(path), "an existing YAML file")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError(
                "config", str(path), f"valid UTF-8 YAML ({str(error).splitlines()[0]})"
            ) from None
        if not isinstance(tree, dict):
            raise ConfigError("config", str(path), "a YAML mapping of keys to values at the top level")
    for override in overrides or []:
        _set_path(tree, override)
    return _build(Config, tree, "")


def same_config(stored: dict, config: Config) -> bool:
    """Whether a stored configuration (a run directory's ``config.yaml``, a checkpoint's) is ``config``,
    keys added to the schema since it was written counting as their defaults.

    >>> same_config({"seed": 0}, load_config(None)), same_config({"seed": 1}, load_config(None))
    (True, False)
    """
    try:
        return _build(Config, stored, "") == config
    except ConfigError:
        return False


def config_to_dict(config: Config) -> dict:
    """A plain dict of the whole resolved configuration (what a run directory stores; lists, not tuples)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))
