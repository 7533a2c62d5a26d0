"""GoogLeNet-style Inception fixture mirroring torchvision (BasicConv2d conv-bn-F.relu, 4-branch torch.cat)."""

from typing import Any, List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BasicConv2d", "Inception", "GoogLeNetTiny", "inception_tiny"]


class BasicConv2d(nn.Module):
    """torchvision GoogLeNet ``BasicConv2d``.

    ::

        x ─ conv(bias=False) ─ bn(eps=1e-3) ─ F.relu(inplace=True) ─► out
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        x = self.bn(x)
        return F.relu(x, inplace=True)


class Inception(nn.Module):
    """torchvision GoogLeNet ``Inception`` module (branch3 uses 3x3, as torchvision does, not 5x5).

    ::

             ┌─ branch1: BasicConv2d 1x1 ──────────────────────────┐
        x ───┼─ branch2: BasicConv2d 1x1 ─ BasicConv2d 3x3 ────────┤
             ├─ branch3: BasicConv2d 1x1 ─ BasicConv2d 3x3 ────────┼─ torch.cat(dim=1) ─► out
             └─ branch4: MaxPool 3x3 s1 ─ BasicConv2d 1x1 ─────────┘
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)

        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )

        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            # Here, kernel_size=3 instead of kernel_size=5 is a known bug in torchvision.
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )

        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def _forward(self, x: Tensor) -> List[Tensor]:
        branch1 = self.branch1(x)
        branch2 = self.branch2(x)
        branch3 = self.branch3(x)
        branch4 = self.branch4(x)

        outputs = [branch1, branch2, branch3, branch4]
        return outputs

    def forward(self, x: Tensor) -> Tensor:
        outputs = self._forward(x)
        return torch.cat(outputs, 1)


class GoogLeNetTiny(nn.Module):
    """Narrow GoogLeNet (no aux heads, no transform_input).

    ::

        x ─ conv1(7x7,s2) ─ maxpool1 ─ conv2(1x1) ─ conv3(3x3) ─ maxpool2
          ─ inception3a ─ inception3b ─ avgpool ─ flatten ─ dropout ─ fc
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = BasicConv2d(3, 16, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(16, 16, kernel_size=1)
        self.conv3 = BasicConv2d(16, 32, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(32, 8, 8, 16, 4, 8, 8)  # -> 40 channels
        self.inception3b = Inception(40, 16, 8, 16, 4, 8, 8)  # -> 48 channels

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(48, num_classes)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                torch.nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.maxpool1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.maxpool2(x)
        x = self.inception3a(x)
        x = self.inception3b(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        return self.fc(x)


def inception_tiny(num_classes: int = 10) -> GoogLeNetTiny:
    """BasicConv2d stem; Inception 32->40 and 40->48 channels (4 branches each, cat on dim 1); linear head."""
    return GoogLeNetTiny(num_classes=num_classes)
