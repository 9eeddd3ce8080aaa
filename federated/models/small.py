"""Small models for the offline tasks: each takes ``[N, features]`` float inputs and returns logits."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Conv1dNet", "LinearNet", "MLP"]


class Conv1dNet(nn.Module):
    """The MNIST-1D CNN (after Greydanus 2020's ConvBase): three stride-2 1-D convolutions with
    ``width`` channels and ReLUs, then a linear classifier.

    >>> import torch
    >>> Conv1dNet(40, 10, width=8)(torch.zeros(3, 40)).shape
    torch.Size([3, 10])
    """

    def __init__(self, num_features: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(1, width, kernel_size=5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
        )
        length = num_features
        for kernel in (5, 3, 3):
            length = (length + 2 - kernel) // 2 + 1
        self.head = nn.Linear(width * length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs(x.unsqueeze(1))  # (N, width, L')
        return self.head(h.flatten(1))  # (N, classes)


class LinearNet(nn.Module):
    """A linear classifier (the LASER paper's MNIST model, one layer, no nonlinearity).

    >>> import torch
    >>> LinearNet(64, 10)(torch.zeros(2, 64)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_features: int, num_classes: int, width: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class MLP(nn.Module):
    """One hidden layer of ``width`` ReLU units.

    >>> import torch
    >>> MLP(64, 10, width=32)(torch.zeros(2, 64)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_features: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(num_features, width), nn.ReLU(), nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
