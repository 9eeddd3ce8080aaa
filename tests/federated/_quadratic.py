"""A quadratic task for exact tests of local training: one parameter vector w, every batch pulling
toward c, loss 1/2 sum_i a_i (w_i - c_i)^2 (shared by test_local_training and test_local_scaling)."""

import torch
from torch import nn

import federated.clients as clients_module
from federated.clients import Clients
from federated.config import load_config


class Quadratic(nn.Module):
    """The model: its output is w itself."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(start.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.unsqueeze(0)


class Target:
    """A task whose every batch is (anything, c)."""

    def __init__(self, c: torch.Tensor) -> None:
        self.c = c

    def batch(self, client: int):
        return torch.zeros(1), self.c


def quadratic_clients(monkeypatch, a, w0, c, steps: int, lr: float) -> tuple[Quadratic, Clients]:
    """The model at w0 and the clients taking ``steps`` local SGD steps of rate ``lr`` on the quadratic."""
    monkeypatch.setattr(clients_module, "cross_entropy", lambda out, y: 0.5 * (a * (out[0] - y) ** 2).sum())
    model = Quadratic(w0)
    config = load_config(None, [f"clients.lr={lr}", f"clients.local_steps={steps}"]).clients
    return model, Clients(model, model, Target(c), config, None, lambda: torch.autocast("cpu", enabled=False))
