"""VGG-style plain (non-residual) fixture mirroring torchvision's make_layers / VGG layout."""

from typing import List, Sequence, Union

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["VGG", "make_layers", "vgg_tiny"]

TINY_CFG: List[Union[int, str]] = [8, "M", 16, "M", 32, 32, "M"]


def make_layers(cfg: Sequence[Union[int, str]], batch_norm: bool = False) -> nn.Sequential:
    """torchvision ``make_layers``: conv3x3 [-BN] -ReLU(inplace) per int, MaxPool2d(2, 2) per ``"M"``."""
    layers: List[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            v = int(v)
            conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            else:
                layers += [conv2d, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """torchvision ``VGG`` layout (pooled to 2x2 instead of 7x7, one hidden FC layer).

    ::

        x ─ features[(conv3x3 ─ [bn] ─ relu)+ ─ maxpool ...] ─ avgpool(2x2) ─ flatten
          ─ classifier[Linear ─ ReLU ─ Dropout ─ Linear]
    """

    def __init__(self, features: nn.Module, last_channels: int, num_classes: int = 10, hidden: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(last_channels * 2 * 2, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


def vgg_tiny(batch_norm: bool = True, num_classes: int = 10) -> VGG:
    """cfg [8, M, 16, M, 32, 32, M] of conv3x3-BN-ReLU (conv-ReLU if batch_norm=False); Linear-ReLU-Dropout-Linear."""
    last = [v for v in TINY_CFG if v != "M"][-1]
    return VGG(make_layers(TINY_CFG, batch_norm=batch_norm), last_channels=int(last), num_classes=num_classes)
