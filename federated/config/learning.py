"""What is learned and how: the data, the model, the clients and the server's optimiser.

Each section is a frozen dataclass; every field has a comment (and a unit where it has one), and
``__post_init__`` refuses out-of-range values with a :class:`~federated.config.ConfigError` naming
the key (the loader prefixes the section).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

from federated.config.errors import check as _check

__all__ = [
    "DataConfig",
    "ModelConfig",
    "ClientsConfig",
    "OptimizerConfig",
    "PrecondConfig",
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
    # where datasets are cached or downloaded to (default: $LASER_DATA_ROOT, else data/ in the
    # current directory; config.yaml records the directory used)
    root: str = field(default_factory=lambda: os.environ.get("LASER_DATA_ROOT") or "data")
    download: bool = True  # cifar10, cifar100, wikitext103: fetch the official archive if root lacks it
    augment: bool = True  # cifar10, cifar100: random crop (4-pixel padding) and horizontal flip
    tokenizer: Literal["byte", "gpt2"] = "byte"  # wikitext103, pydoc: UTF-8 bytes, or GPT-2 BPE (tiktoken)
    # how the training data is split over the clients (drawn from the data seed, saved in the run
    # directory as partition.json). Classification: iid (equal random shards, the paper's),
    # dirichlet (each class split over the clients in proportions ~ Dir_K(alpha)), shards (sorted by
    # label, cut into shards_per_client x K shards, each client given shards_per_client; McMahan et
    # al.), quantity (client sizes ~ Dir_K(alpha), labels IID). Language: iid (every client's windows
    # anywhere in the stream, the paper's) or contiguous (each client's windows in its own slice)
    partition: Literal["iid", "dirichlet", "shards", "quantity", "contiguous"] = "iid"
    alpha: float = 0.5  # dirichlet, quantity: concentration (small: skewed; large: close to IID)
    shards_per_client: int = 2  # shards
    min_partition_size: int = 10  # dirichlet, quantity: redraw until every client has this many samples

    def __post_init__(self) -> None:
        _check(
            100 <= self.num_samples <= 10**7,
            "num_samples",
            self.num_samples,
            "an integer in 100..1e7 (MNIST-1D samples are generated in memory)",
        )
        _check(0 < self.test_fraction < 1, "test_fraction", self.test_fraction, "a number in (0, 1)")
        _check(math.isfinite(self.alpha) and self.alpha > 0, "alpha", self.alpha, "a finite number > 0")
        _check(self.shards_per_client >= 1, "shards_per_client", self.shards_per_client, "an integer >= 1")
        _check(self.min_partition_size >= 0, "min_partition_size", self.min_partition_size, "an integer >= 0")
        text = self.name in TEXT_DATA
        _check(
            self.partition in (("iid", "contiguous") if text else ("iid", "dirichlet", "shards", "quantity")),
            "partition",
            self.partition,
            "iid or contiguous for a language task" if text else "iid, dirichlet, shards or quantity",
        )

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


# The most local steps, and micro-batches per client per round (local_steps x accumulation_steps),
# a run accepts: more is no experiment one waits for. A micro-batch's gradient on the smallest
# shipped task (digits or MNIST-1D, linear or MLP model, 2 CPU cores) takes about 0.5 ms, so 1e6 of
# them are some 8 minutes per client and 2 hours per round of 16 clients, on the paper's CIFAR and
# GPT-2 models hundreds of times more; 1e4 local steps are already over 600 local epochs of an
# MNIST-1D client's shard (500 samples, 16 batches of 32), where FedAvg uses 1 to 20.
MAX_LOCAL_STEPS = 10**4
MAX_MICRO_BATCHES = 10**6


@dataclass(frozen=True)
class ClientsConfig:
    num_clients: int = 16  # K
    per_round: int | None = None  # m, the clients that take part in a round (null: all K)
    # who takes part when per_round < K: uniform (m of K without replacement, the sampler's own seed
    # stream) or best_channel (the m with the largest channel quality |h|^2 this round: favours near
    # clients; not reweighted) or poisson (privacy mode: each client takes part independently with
    # probability per_round / num_clients, hidden from the server, which divides by the expected count)
    sampling: Literal["uniform", "best_channel", "poisson"] = "uniform"
    batch_size: int = 32  # examples (language: sequences) per client per micro-batch
    # micro-batches per client per step (FedSGD: per round), 1..1e6; their gradients are summed (not
    # averaged), as the paper's GPT-2 runs do (3). They are drawn one at a time, so memory does not
    # grow with it (except with the vmapped clients, which hold a round's micro-batches)
    accumulation_steps: int = 1
    # what a client sends. lr null (FedSGD, the paper's): one gradient at the model it received.
    # lr set (local training): local_steps steps of its optimizer from the received model x, each on
    # accumulation_steps micro-batches, then the model change x - x_k (a pseudo-gradient)
    lr: float | None = None
    # H, 1..1e4 and local_steps x accumulation_steps <= 1e6 (MAX_MICRO_BATCHES: what a round costs);
    # more than 1 needs clients.lr
    local_steps: int = 1
    optimizer: Literal["sgd", "adam"] = "sgd"  # the clients' optimizer (local training)
    momentum: float = 0.0  # sgd: heavy-ball momentum of the client optimizer
    keep_state: bool = False  # keep each client's optimizer state between its rounds (else reset)
    # the server's mean of the clients' updates: uniform, or weighted by each client's number of
    # training samples (data_size; self-normalised over the clients heard, as FedAvg's)
    weighting: Literal["uniform", "data_size"] = "uniform"
    # loop: one client after another (the default: bit-identical to earlier versions' results);
    # vmap: every client's gradient, or its local steps (fresh SGD or Adam state each round), in one
    # torch.func.vmap call per micro-batch (small models, many clients; the loop's result to float
    # rounding); auto: vmap where the model allows it (no batch norm or dropout in training, no noisy
    # downlink, no kept client state or scaled steps; non-IID shards: one pass per batch shape), else
    # the loop
    vectorize: Literal["loop", "vmap", "auto"] = "loop"

    def __post_init__(self) -> None:
        _check(self.num_clients >= 1, "num_clients", self.num_clients, "an integer >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(
            1 <= self.accumulation_steps <= MAX_MICRO_BATCHES,
            "accumulation_steps",
            self.accumulation_steps,
            "an integer in 1..1e6 (micro-batches per client per step)",
        )
        _check(
            self.per_round is None or 1 <= self.per_round <= self.num_clients,
            "per_round",
            self.per_round,
            f"an integer in 1..num_clients ({self.num_clients}), or null (all)",
        )
        _check(
            self.lr is None or (math.isfinite(self.lr) and self.lr > 0),
            "lr",
            self.lr,
            "a finite number > 0, or null (FedSGD: clients send a gradient)",
        )
        most = min(MAX_LOCAL_STEPS, MAX_MICRO_BATCHES // self.accumulation_steps)
        _check(
            1 <= self.local_steps <= most,
            "local_steps",
            self.local_steps,
            "an integer in 1..1e4 (local steps per client per round)"
            if most == MAX_LOCAL_STEPS
            else f"an integer in 1..{most} (with accumulation_steps {self.accumulation_steps}: at most 1e6 "
            "micro-batches per client per round)",
        )
        _check(
            self.local_steps == 1 or self.lr is not None,
            "local_steps",
            self.local_steps,
            "1 unless clients.lr is set (local steps need the clients' learning rate)",
        )
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")


@dataclass(frozen=True)
class OptimizerConfig:
    # the server's optimizer, fed with the decoded gradient (or pseudo-gradient x - mean x_k: sgd
    # with lr 1 and no momentum is FedAvg, with momentum FedAvgM). sgd: weight decay is L2 on every
    # parameter (the paper's vision tasks); adamw: decoupled weight decay on the weights of Linear
    # layers only (not LayerNorm, biases, embeddings or the tied head; the paper's GPT-2);
    # fedadam, fedyogi, fedadagrad: Reddi et al. 2021, Algorithm 2 (no bias correction, m_0 = 0,
    # v_0 = tau^2; no weight decay)
    name: Literal["sgd", "adamw", "fedadam", "fedyogi", "fedadagrad"] = "sgd"
    lr: float = 0.05  # peak learning rate (the server's; a schedule scales it)
    momentum: float = 0.9  # sgd: heavy-ball momentum
    nesterov: bool = False  # sgd
    betas: tuple[float, ...] = (0.9, 0.95)  # adamw, fedadam, fedyogi (beta1, beta2), fedadagrad (beta1)
    tau: float = 1e-3  # fedadam, fedyogi, fedadagrad: adaptivity (added to sqrt(v); v_0 = tau^2)
    # fedadam: v_0 = 0 and the step lr sqrt(1 - beta2^(t+2)) / (1 - beta1^(t+2)) in round t (from
    # 0), Flower 1.42's FedAdam exactly
    bias_correction: bool = False
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
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            list(self.betas),
            "two numbers in [0, 1), e.g. [0.9, 0.99]",
        )
        _check(math.isfinite(self.tau) and self.tau > 0, "tau", self.tau, "a finite number > 0")
        _check(
            not self.bias_correction or self.name == "fedadam",
            "bias_correction",
            self.bias_correction,
            "false unless optimizer.name is fedadam (Flower's bias-corrected FedAdam)",
        )
        _check(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            "weight_decay",
            self.weight_decay,
            "a finite number >= 0",
        )
        _check(
            self.weight_decay == 0 or self.name not in ("fedadam", "fedyogi", "fedadagrad"),
            "weight_decay",
            self.weight_decay,
            f"0 for optimizer.name={self.name} (Reddi et al.'s Algorithm 2 has no weight decay; the default "
            "is 1e-4, so write optimizer.weight_decay=0 with it)",
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
class PrecondConfig:
    # local steps with adaptive scaling (federated.optim.Preconditioner; needs clients.lr and
    # clients.optimizer sgd): inside a round every client steps x_k <- x_k - clients.lr * g_k / D^
    # with the same frozen diagonal D^, which the server updates at the synchronisation and
    # broadcasts with the model.
    # none: plain local steps; adam: Adam/RMSProp type, D <- beta D + (1 - beta) s, D^ = max(alpha,
    # sqrt(D)); oasis: s = z * (Hessian z) with a Rademacher z shared by all clients (a second
    # analog pass), D^ = max(alpha, |D|)
    name: Literal["none", "adam", "oasis"] = "none"
    # adam: square_of_mean (the server's g = D^ * mean change / (lr H), squared: no extra channel
    # use) or mean_of_squares (each client's mean of g * g over its local steps, sent in a second
    # analog pass: d more channel uses, a different statistic)
    statistic: Literal["square_of_mean", "mean_of_squares"] = "square_of_mean"
    # the floor of D^ (keeps it invertible: steps at most lr / alpha per gradient unit); near a typical
    # minibatch gradient entry (the mean gradient that D^ follows is much smaller)
    alpha: float = 1e-3
    beta: float = 0.99  # decay of D's moving average
    # the second pass (oasis, adam with mean_of_squares): its share of each client's energy budget
    # per round (the update's pass gets the rest); power.snr_db: both passes at that per-use SNR
    energy_fraction: float = 0.2

    def __post_init__(self) -> None:
        _check(math.isfinite(self.alpha) and self.alpha > 0, "alpha", self.alpha, "a finite number > 0")
        _check(0 <= self.beta < 1, "beta", self.beta, "a number in [0, 1)")
        _check(0 < self.energy_fraction < 1, "energy_fraction", self.energy_fraction, "a number in (0, 1)")

    @property
    def second_pass(self) -> bool:
        """Whether the clients send their statistic in a second analog pass each round."""
        return self.name == "oasis" or (self.name == "adam" and self.statistic == "mean_of_squares")
