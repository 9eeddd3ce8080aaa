"""ResNet-18, CIFAR variant: the LASER paper's CIFAR-10 / CIFAR-100 model.

The kuangliu/pytorch-cifar network the reference code uses: a 3x3 stride-1 stem (no max-pool, as
32x32 inputs are already small), four stages of two BasicBlocks, global average pooling and a
linear classifier. Convolutions have no bias (each is followed by a BatchNorm, whose shift does
that job).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["BasicBlock", "ResNet18"]


class BasicBlock(nn.Module):
    """``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``; the shortcut is the identity, or
    a 1x1 conv + BN when the stride or the channel count changes.

    Input ``[N, in_channels, H, W]``, output ``[N, channels, H / stride, W / stride]``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 images: stem conv3x3(3 -> w) + BN + ReLU, stages of two BasicBlocks
    with widths ``w, 2w, 4w, 8w`` and strides ``1, 2, 2, 2``, average pooling, linear ``8w -> classes``.

    With ``width = 64`` this is the paper's network: 11,173,962 parameters for 10 classes,
    11,220,132 for 100. The pooling is adaptive (to 1x1), which on 32x32 inputs is the reference's
    4x4 average pool over the 4x4 final feature map.

    Args:
        num_classes: number of output logits.
        width: channels of the first stage (64 in the paper).

    Input ``[N, 3, 32, 32]`` float, output logits ``[N, num_classes]``.

    >>> import torch
    >>> model = ResNet18(num_classes=10, width=8)
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, in_channels = [], width
        for multiple, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            channels = multiple * width
            stages.append(
                nn.Sequential(BasicBlock(in_channels, channels, stride), BasicBlock(channels, channels))
            )
            in_channels = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(8 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))  # (N, w, 32, 32)
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))  # (N, 8w, 4, 4)
        return self.linear(self.pool(h).flatten(1))  # (N, classes)
