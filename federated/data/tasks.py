"""What a run learns: the data on the device, each client's minibatches, and the test metric.

Two kinds of task share one small interface (``batch(client)``, ``evaluate(model)``,
``state_dict()``, ``client_sizes()``, ``partition()``): classification (MNIST-1D, digits,
CIFAR-10/100; test accuracy) and language modelling (WikiText-103, the standard library's pydoc
texts; validation perplexity). Both train on the cross-entropy of the model's logits, so the round
loop does not care which it runs.

The split over the clients is ``data.partition`` (:mod:`federated.data.partitions`), drawn from the
data seed's generator where the IID split drew its permutation, so ``iid`` (the default) gives the
batches of earlier versions bit for bit.

Example:
    >>> from federated.config import load_config
    >>> config = load_config(None, ["data.name=digits", "clients.num_clients=4"])
    >>> task = build_task(config, torch.device("cpu"), seed=0)
    >>> x, y = task.batch(0)
    >>> tuple(x.shape), tuple(y.shape), task.metric
    ((32, 64), (32,), 'test_accuracy')
    >>> task.client_sizes(), task.partition()["partition"]
    ([359, 359, 359, 359], 'iid')
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from federated.config import Config, ConfigError
from federated.data.datasets import ClientBatches, load_dataset
from federated.data.partitions import PartitionError, PartitionSpec, contiguous, partition_table
from federated.data.partitions import split as split_clients

__all__ = ["Task", "ClassificationTask", "LanguageTask", "TASKS", "build_task", "cross_entropy"]


def cross_entropy(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``[..., classes]`` logits against ``[...]`` targets (classes or next tokens),
    computed in float32 whatever the autocast precision."""
    return F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), reduction=reduction)


class Task(ABC):
    """The interface the round loop uses; see :class:`ClassificationTask` and :class:`LanguageTask`."""

    metric: str  # the summary's headline metric: test_accuracy or test_perplexity
    model_inputs: dict[str, int]  # what the model builder needs (num_features / num_classes / vocab_size)

    @abstractmethod
    def batch(self, client: int) -> tuple[Tensor, Tensor]:
        """The client's next minibatch ``(inputs, targets)`` on the task's device."""

    @torch.no_grad()
    def evaluate(self, model: nn.Module, autocast: Callable) -> dict[str, float]:
        """``test_loss`` and the task's metric for ``model`` on the held-out split (in eval mode,
        under the ``autocast`` context; the model's mode is restored afterwards)."""
        was_training = model.training
        model.eval()
        try:
            return self._evaluate(model, autocast)
        finally:
            model.train(was_training)

    @abstractmethod
    def _evaluate(self, model: nn.Module, autocast: Callable) -> dict[str, float]:
        """:meth:`evaluate` without the mode and gradient bookkeeping."""

    @abstractmethod
    def client_sizes(self) -> list[int]:
        """Each client's number of training samples (language: tokens of its slice), e.g. for
        weighting the clients' updates by their data size."""

    @abstractmethod
    def partition(self) -> dict[str, Any]:
        """How the training data is split over the clients, JSON-ready: ``partition`` (the name),
        ``parameters``, ``num_clients``, ``unit`` (samples or tokens), ``sizes`` (per client, or None)
        and, for classification, ``num_classes`` and ``counts`` (client x class); what the run
        directory's ``partition.json`` holds."""

    @abstractmethod
    def state_dict(self) -> dict[str, object]:
        """The data order and generator state (for checkpoints)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (tensors may come on any device)."""


class ClassificationTask(Task):
    """Samples kept on the device; one shard per client by ``partition`` (default IID: equal random
    shards), each client walking through its own in a fresh order every epoch (a non-IID shard
    smaller than the batch: the batch drawn from it with replacement, see
    :class:`~federated.data.datasets.ClientBatches`); an optional transform of each training batch
    (CIFAR's augmentation) and of the test inputs (normalisation).

    The partition is drawn from ``generator`` first (IID: the one permutation of earlier versions),
    then each client's first epoch order; a :class:`~federated.data.partitions.PartitionError` (a
    ``ValueError`` naming the ``data.*`` key) when it cannot be made."""

    metric = "test_accuracy"

    def __init__(
        self,
        x_train: Tensor,
        y_train: Tensor,
        x_test: Tensor,
        y_test: Tensor,
        num_classes: int,
        num_clients: int,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device,
        train_transform: Callable[[Tensor, torch.Generator], Tensor] | None = None,
        test_transform: Callable[[Tensor], Tensor] | None = None,
        eval_batch_size: int = 1024,
        partition: PartitionSpec | None = None,
    ) -> None:
        partition = PartitionSpec() if partition is None else partition
        self.spec, self.num_classes = partition, num_classes
        self.parts = split_clients(y_train.cpu(), num_clients, partition, generator)
        empty = [k for k, part in enumerate(self.parts) if len(part) == 0]
        if empty:
            raise PartitionError(
                "data.min_partition_size",
                partition.min_partition_size,
                f"at least 1 (client {empty[0]} of {num_clients} was given no samples; or raise data.alpha)",
            )
        self.counts = partition_table(y_train.cpu(), self.parts, num_classes)
        self.x_train, self.y_train = x_train.to(device), y_train.to(device)
        self.x_test, self.y_test = x_test.to(device), y_test.to(device)
        self.device, self.generator = device, generator
        self.batches = ClientBatches(self.parts, batch_size, generator, replacement=partition.name != "iid")
        self.train_transform, self.test_transform = train_transform, test_transform
        self.eval_batch_size = eval_batch_size
        self.model_inputs = {"num_features": int(np.prod(x_train.shape[1:])), "num_classes": num_classes}

    def batch(self, client: int) -> tuple[Tensor, Tensor]:
        idx = self.batches.next(client).to(self.device)
        x = self.x_train[idx]
        if self.train_transform is not None:
            x = self.train_transform(x, self.generator)
        return x, self.y_train[idx]

    def _evaluate(self, model: nn.Module, autocast: Callable) -> dict[str, float]:
        loss, correct = 0.0, 0
        for start in range(0, len(self.y_test), self.eval_batch_size):
            x = self.x_test[start : start + self.eval_batch_size]
            y = self.y_test[start : start + self.eval_batch_size]
            with autocast():
                logits = model(x if self.test_transform is None else self.test_transform(x))
            loss += float(cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(-1) == y).sum())
        return {"test_loss": loss / len(self.y_test), "test_accuracy": correct / len(self.y_test)}

    def client_sizes(self) -> list[int]:
        return [len(part) for part in self.parts]

    def partition(self) -> dict[str, Any]:
        return {
            "partition": self.spec.name,
            "parameters": self.spec.parameters,
            "num_clients": len(self.parts),
            "unit": "samples",
            "sizes": self.client_sizes(),
            "num_classes": self.num_classes,
            "counts": self.counts,
        }

    def state_dict(self) -> dict[str, object]:
        return {"generator": self.generator.get_state(), "batches": self.batches.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())
        self.batches.load_state_dict(state["batches"])


class LanguageTask(Task):
    """Next-token prediction on one token stream. Each client draws ``batch_size`` windows of
    ``context + 1`` tokens at uniform random positions (with replacement): of the whole training
    stream with ``partition="iid"`` (as the paper's GPT-2 runs), or of its own slice of it with
    ``"contiguous"`` (:func:`~federated.data.partitions.contiguous`: ``num_clients`` equal slices);
    validation covers the whole validation stream in consecutive non-overlapping windows and reports
    ``exp(mean token loss)``."""

    metric = "test_perplexity"

    def __init__(
        self,
        train_tokens: np.ndarray,
        valid_tokens: np.ndarray,
        vocab_size: int,
        context: int,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device,
        num_clients: int = 1,
        partition: PartitionSpec | None = None,
    ) -> None:
        partition = PartitionSpec() if partition is None else partition
        if partition.name not in ("iid", "contiguous"):
            raise ValueError(f"data.partition = {partition.name!r} is not a language partition")
        self.spec, self.num_clients = partition, num_clients
        self.slices = (
            contiguous(len(train_tokens), num_clients, context) if partition.name == "contiguous" else None
        )
        self.train = torch.from_numpy(np.asarray(train_tokens, dtype=np.int32)).to(device)
        self.valid = torch.from_numpy(np.asarray(valid_tokens, dtype=np.int32)).to(device)
        self.context, self.batch_size = context, batch_size
        # evaluation: the training batch, or more windows while their logits stay within 2^26 floats
        self.eval_batch_size = max(batch_size, 2**26 // (context * vocab_size))
        self.generator, self.device = generator, device
        self.offsets = torch.arange(context + 1, device=device)
        self.model_inputs = {"vocab_size": vocab_size}

    def batch(self, client: int) -> tuple[Tensor, Tensor]:
        if self.slices is None:
            starts = torch.randint(
                0, len(self.train) - self.context, (self.batch_size,), generator=self.generator
            )
        else:  # windows inside the client's slice: starts in [start, stop - context - 1]
            own = self.slices[client]
            starts = own.start + torch.randint(
                0, len(own) - self.context, (self.batch_size,), generator=self.generator
            )
        windows = self.train[starts.to(self.device)[:, None] + self.offsets].long()
        return windows[:, :-1], windows[:, 1:]

    def _evaluate(self, model: nn.Module, autocast: Callable) -> dict[str, float]:
        count = (len(self.valid) - 1) // self.context  # whole windows; the tail is dropped
        tokens = self.valid[: count * self.context + 1].long()
        x, y = tokens[:-1].view(count, self.context), tokens[1:].view(count, self.context)
        total = 0.0
        for start in range(0, count, self.eval_batch_size):
            with autocast():
                logits = model(x[start : start + self.eval_batch_size])
            total += float(cross_entropy(logits, y[start : start + self.eval_batch_size], reduction="sum"))
        loss = total / (count * self.context)
        return {"test_loss": loss, "test_perplexity": math.exp(min(loss, 700.0))}

    def client_sizes(self) -> list[int]:
        """Tokens in each client's slice (``contiguous``); an IID language task has no sizes."""
        if self.slices is None:
            raise ValueError(
                "a language task with data.partition = iid has no client sizes: every client draws "
                "its windows from the whole training stream (data.partition = contiguous gives each "
                "client its own slice)"
            )
        return partition_table(None, self.slices)

    def partition(self) -> dict[str, Any]:
        return {
            "partition": self.spec.name,
            "parameters": self.spec.parameters,
            "num_clients": self.num_clients,
            "unit": "tokens",
            "sizes": None if self.slices is None else self.client_sizes(),
            "slices": None if self.slices is None else [[s.start, s.stop] for s in self.slices],
        }

    def state_dict(self) -> dict[str, object]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())


def _text_task(config: Config, device: torch.device, generator: torch.Generator) -> Task:
    from federated.data.text import TOKENIZERS, load_pydoc, load_wikitext103

    data = config.data
    tokenizer = TOKENIZERS[data.tokenizer]()
    tokens = (
        load_pydoc(data.root, tokenizer, valid_fraction=data.test_fraction)
        if data.name == "pydoc"
        else load_wikitext103(data.root, tokenizer, download=data.download)
    )
    context = config.model.context
    for split, stream in (("training", tokens.train), ("validation", tokens.valid)):
        if len(stream) <= context + 1:
            raise ConfigError(
                "model.context",
                context,
                f"fewer tokens than the {len(stream)} of {data.name}'s {split} split",
            )
    return LanguageTask(
        tokens.train,
        tokens.valid,
        tokens.vocab_size,
        context,
        config.clients.batch_size,
        generator,
        device,
        num_clients=config.clients.num_clients,
        partition=_spec(config),
    )


def _image_task(config: Config, device: torch.device, generator: torch.Generator) -> Task:
    from federated.data.cifar import augment, load_cifar, normalize

    data = config.data
    assert data.name in ("cifar10", "cifar100")  # TASKS sends only the CIFAR sets here
    arrays = load_cifar(data.root, data.name, download=data.download)
    train_transform = augment if data.augment else (lambda x, generator: normalize(x))
    return _classification(config, arrays, device, generator, train_transform, normalize)


def _vector_task(config: Config, device: torch.device, generator: torch.Generator) -> Task:
    return _classification(config, load_dataset(config.data), device, generator)


def _classification(
    config: Config,
    arrays,
    device: torch.device,
    generator: torch.Generator,
    train_transform=None,
    test_transform=None,
) -> Task:
    data, clients = config.data, config.clients
    if len(arrays.y_train) < clients.num_clients:
        raise ConfigError(
            "clients.num_clients",
            clients.num_clients,
            f"at most the {len(arrays.y_train)} training samples of {data.name}",
        )
    if len(arrays.y_test) == 0:
        raise ConfigError(
            "data.test_fraction",
            data.test_fraction,
            f"a fraction that leaves at least one test sample of {data.name}",
        )
    return ClassificationTask(
        arrays.x_train,
        arrays.y_train,
        arrays.x_test,
        arrays.y_test,
        arrays.num_classes,
        clients.num_clients,
        clients.batch_size,
        generator,
        device,
        train_transform,
        test_transform,
        partition=_spec(config),
    )


def _spec(config: Config) -> PartitionSpec:
    data = config.data
    return PartitionSpec(data.partition, data.alpha, data.shards_per_client, data.min_partition_size)


# data.name -> the task's builder
TASKS = {
    "mnist1d": _vector_task,
    "digits": _vector_task,
    "cifar10": _image_task,
    "cifar100": _image_task,
    "wikitext103": _text_task,
    "pydoc": _text_task,
}


def build_task(config: Config, device: torch.device, seed: int) -> Task:
    """The task of ``config.data`` on ``device``; ``seed`` drives the split (``data.partition``), the
    client batches and the augmentation (one CPU generator, so a run draws the same data on any
    device). A partition that cannot be made is a :class:`~federated.config.ConfigError` naming the
    key to change."""
    try:
        return TASKS[config.data.name](config, device, torch.Generator().manual_seed(seed))
    except PartitionError as error:
        raise ConfigError(error.key, error.value, error.accepted) from error
