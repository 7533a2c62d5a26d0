"""1D (Conv1d/BatchNorm1d, input N x C x L) and 3D (Conv3d/BatchNorm3d, input N x C x D x H x W) residual-net fixtures."""

from typing import Optional, Type

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["BasicBlock1d", "BasicBlock3d", "ResNetNd", "resnet1d_tiny", "resnet3d_tiny"]


class _BasicBlockNd(nn.Module):
    """Shared implementation of the N-d BasicBlock (see the subclasses)."""

    conv_cls: Type[nn.Module] = nn.Conv2d
    bn_cls: Type[nn.Module] = nn.BatchNorm2d

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = self.conv_cls(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = self.bn_cls(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = self.conv_cls(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = self.bn_cls(planes)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                self.conv_cls(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                self.bn_cls(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class BasicBlock1d(_BasicBlockNd):
    """1D ResNet BasicBlock (Conv1d / BatchNorm1d).

    ::

        x(N,C,L) ──┬─ conv1(k3,s) ─ bn1 ─ relu ─ conv2(k3) ─ bn2 ─┐
                   │                                               (+)─ relu ─► out
                   └──────── [downsample: conv1d k1 s ─ bn] ───────┘
    """

    conv_cls = nn.Conv1d
    bn_cls = nn.BatchNorm1d


class BasicBlock3d(_BasicBlockNd):
    """3D ResNet BasicBlock (Conv3d / BatchNorm3d), as in r3d-style video nets.

    ::

        x(N,C,D,H,W) ──┬─ conv1(3x3x3,s) ─ bn1 ─ relu ─ conv2(3x3x3) ─ bn2 ─┐
                       │                                                     (+)─ relu ─► out
                       └─────────── [downsample: conv3d 1x1x1 s ─ bn] ───────┘
    """

    conv_cls = nn.Conv3d
    bn_cls = nn.BatchNorm3d


class ResNetNd(nn.Module):
    """Tiny N-d ResNet.

    ::

        x ─ conv1 ─ bn1 ─ relu ─ layer1[Block identity] ─ layer2[Block projection s2, Block identity]
          ─ avgpool ─ flatten ─ fc
    """

    def __init__(self, dim: int, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 3: nn.Conv3d}[dim]
        bn = {1: nn.BatchNorm1d, 3: nn.BatchNorm3d}[dim]
        block = {1: BasicBlock1d, 3: BasicBlock3d}[dim]
        pool = {1: nn.AdaptiveAvgPool1d, 3: nn.AdaptiveAvgPool3d}[dim]
        stem_k = 7 if dim == 1 else 3
        stem_s = 2 if dim == 1 else 1
        self.conv1 = conv(3, width, kernel_size=stem_k, stride=stem_s, padding=stem_k // 2, bias=False)
        self.bn1 = bn(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(block(width, width))
        self.layer2 = nn.Sequential(block(width, width * 2, stride=2), block(width * 2, width * 2))
        self.avgpool = pool(1)
        self.fc = nn.Linear(width * 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def resnet1d_tiny(num_classes: int = 10) -> ResNetNd:
    """Conv1d stem (k7,s2); BasicBlock1d identity; BasicBlock1d projection s2; BasicBlock1d identity; linear."""
    return ResNetNd(1, width=8, num_classes=num_classes)


def resnet3d_tiny(num_classes: int = 10) -> ResNetNd:
    """Conv3d stem (3x3x3); BasicBlock3d identity; BasicBlock3d projection s2; BasicBlock3d identity; linear."""
    return ResNetNd(3, width=8, num_classes=num_classes)
