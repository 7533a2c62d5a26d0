"""Fixtures that torch.fx.symbolic_trace cannot trace as a whole (data-dependent Python control flow) but whose residual blocks can be traced individually."""

import torch.nn as nn
from torch import Tensor

__all__ = [
    "ResidualBlock",
    "GatedResidualBlock",
    "DataDependentNet",
    "UntraceableBlockNet",
    "data_dependent_net",
    "untraceable_block_net",
]


class ResidualBlock(nn.Module):
    """Ordinary, fx-traceable ResNet BasicBlock.

    ::

        x ──┬─ conv1(3x3,s) ─ bn1 ─ relu ─ conv2(3x3) ─ bn2 ─┐
            │                                                 (+)─ relu ─► out
            └──────────── [downsample: conv1x1(s) ─ bn] ──────┘
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class GatedResidualBlock(nn.Module):
    """Residual block whose forward branches on a tensor VALUE (untraceable by torch.fx).

    ::

        x ──┬─ conv1(3x3) ─ bn1 ─ relu ─ conv2(3x3) ─ bn2 ─ out
            │                                 if out.sum() > 0:  out = relu(out + x)
            └─────────────────────────────    else:              out = relu(x)
    """

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if out.sum() > 0:
            out = out + identity
        else:
            out = identity
        return self.relu(out)


class TrainEvalBlock(nn.Module):
    """A block whose forward reads self.training: its rewritten class dispatches on the mode.

        x ─┬─ conv ─ bn ─ (×0.5 in train mode) ─┐
           └──────────────────────────────────(+)─ relu
    """

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.conv(x))
        if self.training:
            out = out * 0.5
        return (out + x).relu()


def _head(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_classes))


class DataDependentNet(nn.Module):
    """Traceable stem and blocks, but the ROOT forward picks a block from the input's value.

    ::

        x ─ (x.mean() > 0 ?) ─ stem[conv-bn-relu] ─┬─ yes: block_a[ResidualBlock identity]   ─┬─ head[pool-flatten-linear]
                                                   └─ no:  block_b[ResidualBlock s2, proj] ─┘
    """

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.block_a = ResidualBlock(width, width)
        self.block_b = ResidualBlock(width, width, stride=2)  # projection shortcut
        self.head = _head(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        positive = x.mean() > 0  # data-dependent predicate (on the raw input so both branches are reachable)
        x = self.stem(x)
        if positive:
            x = self.block_a(x)
        else:
            x = self.block_b(x)
        return self.head(x)


class UntraceableBlockNet(nn.Module):
    """One child (``gated``) has data-dependent control flow; its siblings are normal residual blocks.

    ::

        x ─ stem[conv-bn-relu] ─ layer1[ResidualBlock] ─ gated[GatedResidualBlock] ─ layer3[ResidualBlock s2, proj] ─ head
    """

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.layer1 = ResidualBlock(width, width)
        self.gated = GatedResidualBlock(width)
        self.layer3 = ResidualBlock(width, width * 2, stride=2)
        self.head = _head(width * 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer1(x)
        x = self.gated(x)
        x = self.layer3(x)
        return self.head(x)


def data_dependent_net(num_classes: int = 10) -> DataDependentNet:
    """Root forward branches on ``x.mean() > 0`` between two ResidualBlocks; blocks themselves are traceable."""
    return DataDependentNet(num_classes=num_classes)


def untraceable_block_net(num_classes: int = 10) -> UntraceableBlockNet:
    """ResidualBlock, GatedResidualBlock (``if out.sum() > 0``), ResidualBlock(s2, projection)."""
    return UntraceableBlockNet(num_classes=num_classes)
