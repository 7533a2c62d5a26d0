"""DenseNet fixture mirroring torchvision (_DenseLayer with torch.cat of a feature list, ModuleDict _DenseBlock, _Transition)."""

from collections import OrderedDict
from typing import List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["_DenseLayer", "_DenseBlock", "_Transition", "DenseNet", "densenet_tiny"]


class _DenseLayer(nn.Module):
    """torchvision ``_DenseLayer`` (bottleneck BN-ReLU-Conv1x1 then BN-ReLU-Conv3x3; no checkpointing).

    ::

        [f0, f1, ...] ─ torch.cat(dim=1) ─ norm1 ─ relu1 ─ conv1(1x1, bn_size*k)
                      ─ norm2 ─ relu2 ─ conv2(3x3, k) ─ [dropout] ─► new features (k channels)
    """

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)

        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)

        self.drop_rate = float(drop_rate)

    def bn_function(self, inputs: List[Tensor]) -> Tensor:
        concated_features = torch.cat(inputs, 1)
        bottleneck_output = self.conv1(self.relu1(self.norm1(concated_features)))
        return bottleneck_output

    def forward(self, input: Union[Tensor, List[Tensor]]) -> Tensor:
        if isinstance(input, Tensor):
            prev_features = [input]
        else:
            prev_features = input

        bottleneck_output = self.bn_function(prev_features)
        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class _DenseBlock(nn.ModuleDict):
    """torchvision ``_DenseBlock``: every layer sees the concatenation of all earlier features.

    ::

        x ─┬──────────────┬──────────────┬─────────────── torch.cat ─► out
           └ denselayer1 ─┤ (cat)        │
             ([x]) ───────┴ denselayer2 ─┤ (cat)
                            ([x, f1]) ───┴ denselayer3 ...
    """

    _version = 2

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(
                num_input_features + i * growth_rate,
                growth_rate=growth_rate,
                bn_size=bn_size,
                drop_rate=drop_rate,
            )
            self.add_module("denselayer%d" % (i + 1), layer)

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for name, layer in self.items():
            new_features = layer(features)
            features.append(new_features)
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """torchvision ``_Transition``.

    ::

        x ─ norm ─ relu ─ conv(1x1) ─ pool(avg 2x2, s2) ─► out
    """

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """torchvision ``DenseNet`` layout.

    ::

        x ─ features[conv0(7x7,s2) ─ norm0 ─ relu0 ─ pool0 ─ denseblock1 ─ transition1 ─ denseblock2 ─ norm5]
          ─ relu ─ adaptive_avg_pool2d ─ flatten ─ classifier
    """

    def __init__(
        self,
        growth_rate: int = 4,
        block_config: Sequence[int] = (2, 3),
        num_init_features: int = 8,
        bn_size: int = 2,
        drop_rate: float = 0.0,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(
                num_layers=num_layers,
                num_input_features=num_features,
                bn_size=bn_size,
                growth_rate=growth_rate,
                drop_rate=drop_rate,
            )
            self.features.add_module("denseblock%d" % (i + 1), block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = _Transition(num_input_features=num_features, num_output_features=num_features // 2)
                self.features.add_module("transition%d" % (i + 1), trans)
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        out = self.classifier(out)
        return out


def densenet_tiny(num_classes: int = 10) -> DenseNet:
    """Stem 8ch; denseblock1 (2 layers, k=4) -> 16ch; transition1 -> 8ch; denseblock2 (3 layers) -> 20ch; norm5; linear."""
    return DenseNet(growth_rate=4, block_config=(2, 3), num_init_features=8, bn_size=2, num_classes=num_classes)
