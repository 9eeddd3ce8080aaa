"""What is learned and how: the data, the model, the clients and the server's optimiser.

Each section is a frozen dataclass; every field has a comment (and a unit where it has one), and
``__post_init__`` refuses out-of-range values with a :class:`~federated.config.ConfigError` naming
the key (the loader prefixes the section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from federated.config.errors import check as _check

__all__ = [
    "DataConfig",
    "ModelConfig",
    "ClientsConfig",
    "OptimizerConfig",
    "CLASSIFICATION_DATA",
    "TEXT_DATA",
    "MODEL_DATA",
]


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
