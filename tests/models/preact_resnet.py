"""Pre-activation ResNet fixture (He et al. 2016, "Identity Mappings in Deep Residual Networks"): BN-ReLU before each conv."""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PreActBlock", "PreActResNet", "preact_resnet_tiny"]


class PreActBlock(nn.Module):
    """Pre-activation basic block (no ReLU after the addition).

    ::

        x ─ bn1 ─ relu ─┬─ conv1(3x3,s) ─ bn2 ─ relu ─ conv2(3x3) ─┐
        │               └─ [shortcut: conv1x1(s)] ──────────────────(+)─► out   (projection)
        └───────────────────────────────────────────────────────────(+)─► out   (identity)

    With a projection the shortcut branches off the *pre-activated* tensor; otherwise it is ``x``.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut: Optional[nn.Sequential] = None
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * self.expansion, kernel_size=1, stride=stride, bias=False)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Small pre-activation ResNet.

    ::

        x ─ conv1(3x3) ─ layer1[PreActBlock identity] ─ layer2[PreActBlock projection s2]
          ─ bn ─ relu ─ avgpool ─ flatten ─ linear
    """

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = nn.Sequential(PreActBlock(width, width, stride=1))
        self.layer2 = nn.Sequential(PreActBlock(width, width * 2, stride=2), PreActBlock(width * 2, width * 2))
        self.bn = nn.BatchNorm2d(width * 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(width * 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.layer1(out)
        out = self.layer2(out)
        out = F.relu(self.bn(out))
        out = self.avgpool(out)
        out = torch.flatten(out, 1)
        return self.linear(out)


def preact_resnet_tiny(num_classes: int = 10) -> PreActResNet:
    """conv stem, PreActBlock(identity), PreActBlock(projection, stride 2), PreActBlock(identity), BN-ReLU head."""
    return PreActResNet(width=8, num_classes=num_classes)
