"""MobileNetV2 fixture mirroring torchvision's InvertedResidual (expand / depthwise / linear-bottleneck project)."""

from typing import Callable, List, Optional

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["ConvBNAct", "InvertedResidual", "MobileNetV2", "mobilenetv2_tiny"]


class ConvBNAct(nn.Sequential):
    """Stand-in for torchvision's ``Conv2dNormActivation`` (an ``nn.Sequential`` subclass).

    ::

        x ─ [0] conv(kxk, s, groups, bias=False) ─ [1] BatchNorm2d ─ [2] activation ─► out
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation_layer: Optional[Callable[..., nn.Module]] = nn.ReLU6,
    ) -> None:
        padding = (kernel_size - 1) // 2
        layers: List[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """torchvision MobileNetV2 ``InvertedResidual``.

    ::

        x ──┬─ conv[ ConvBNAct 1x1 expand (ReLU6)   <- omitted when expand_ratio == 1
            │        ConvBNAct 3x3 depthwise (groups=hidden, s, ReLU6)
            │        Conv2d 1x1 project
            │        BatchNorm2d ]  ────────────────┐
            │                                       (+)─► out   if use_res_connect (stride 1 and inp == oup)
            └───────────────────────────────────────┘           else out = conv(x)
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        self.stride = stride
        if stride not in [1, 2]:
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")

        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = self.stride == 1 and inp == oup

        layers: List[nn.Module] = []
        if expand_ratio != 1:
            # pw
            layers.append(ConvBNAct(inp, hidden_dim, kernel_size=1, activation_layer=nn.ReLU6))
        layers.extend(
            [
                # dw
                ConvBNAct(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, activation_layer=nn.ReLU6),
                # pw-linear
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
                nn.BatchNorm2d(oup),
            ]
        )
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        else:
            return self.conv(x)


class MobileNetV2(nn.Module):
    """Narrow MobileNetV2 with torchvision's module layout.

    ::

        x ─ features[ ConvBNAct(3x3,s2) ─ InvertedResidual x N ─ ConvBNAct(1x1) ]
          ─ adaptive_avg_pool2d ─ flatten ─ classifier[Dropout ─ Linear]
    """

    def __init__(
        self,
        num_classes: int = 10,
        stem_channels: int = 16,
        last_channel: int = 64,
        inverted_residual_setting: Optional[List[List[int]]] = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if inverted_residual_setting is None:
            inverted_residual_setting = [
                # t, c, n, s
                [1, 8, 1, 1],
                [6, 12, 2, 2],
                [6, 16, 2, 2],
            ]
        features: List[nn.Module] = [ConvBNAct(3, stem_channels, stride=2, activation_layer=nn.ReLU6)]
        input_channel = stem_channels
        for t, c, n, s in inverted_residual_setting:
            for i in range(n):
                stride = s if i == 0 else 1
                features.append(InvertedResidual(input_channel, c, stride, expand_ratio=t))
                input_channel = c
        features.append(ConvBNAct(input_channel, last_channel, kernel_size=1, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.last_channel = last_channel
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, num_classes))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def _forward_impl(self, x: Tensor) -> Tensor:
        x = self.features(x)
        # Cannot use "squeeze" as batch-size can be 1
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self._forward_impl(x)


def mobilenetv2_tiny(num_classes: int = 10) -> MobileNetV2:
    """Stem ConvBNAct s2; 5 InvertedResiduals: 16->8 (t=1), 8->12 (s2), 12->12 (res), 12->16 (s2), 16->16 (res); 1x1 conv; classifier."""
    return MobileNetV2(num_classes=num_classes)
