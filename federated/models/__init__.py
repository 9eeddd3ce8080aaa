"""Models by name: small ones for the offline tasks (:mod:`federated.models.small`), the CIFAR
ResNet-18 (:mod:`federated.models.resnet`) and the GPT decoder (:mod:`federated.models.gpt`)."""

from __future__ import annotations

import torch
from torch import nn

from federated.config import ModelConfig
from federated.models.gpt import GPT, padded_vocab
from federated.models.resnet import ResNet18
from federated.models.small import MLP, Conv1dNet, LinearNet

__all__ = ["Conv1dNet", "LinearNet", "MLP", "ResNet18", "GPT", "MODELS", "build_model"]

MODELS = {"cnn": Conv1dNet, "linear": LinearNet, "mlp": MLP, "resnet18": ResNet18, "gpt": GPT}


def build_model(config: ModelConfig, inputs: dict[str, int], seed: int) -> nn.Module:
    """The model of ``config`` for a task's ``inputs`` (``num_features`` and ``num_classes``, or
    ``vocab_size``), initialised from ``seed`` without touching torch's global generator.

    >>> from federated.config import ModelConfig
    >>> model = build_model(ModelConfig(name="mlp", width=8), {"num_features": 4, "num_classes": 3}, seed=0)
    >>> model(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.name == "resnet18":
            return ResNet18(num_classes=inputs["num_classes"], width=config.width)
        if config.name == "gpt":
            return GPT(
                vocab_size=padded_vocab(inputs["vocab_size"]),
                context=config.context,
                layers=config.layers,
                heads=config.heads,
                width=config.width,
                dropout=config.dropout,
            )
        return MODELS[config.name](inputs["num_features"], inputs["num_classes"], width=config.width)
