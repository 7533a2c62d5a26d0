"""EfficientNet-style fixture: MBConv blocks with SiLU (expand / depthwise / project) and NO squeeze-excitation."""

from typing import Callable, List, Optional

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["ConvNormAct", "MBConv", "EfficientNet", "efficientnet_tiny"]


class ConvNormAct(nn.Sequential):
    """Conv-BN-activation ``nn.Sequential`` (like torchvision's ``Conv2dNormActivation``).

    ::

        x ─ [0] conv(kxk, s, groups, bias=False) ─ [1] BatchNorm2d ─ [2] SiLU (if any) ─► out
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation_layer: Optional[Callable[..., nn.Module]] = nn.SiLU,
    ) -> None:
        padding = (kernel_size - 1) // 2
        layers: List[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.01),
        ]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class MBConv(nn.Module):
    """Mobile inverted bottleneck (EfficientNet MBConv) WITHOUT the SE module.

    ::

        x ──┬─ expand[1x1 conv ─ bn ─ SiLU]   <- nn.Identity when expand_ratio == 1
            │  ─ depthwise[kxk dwconv(s, groups=hidden) ─ bn ─ SiLU]
            │  ─ project[1x1 conv ─ bn] ──────────┐
            │                                     torch.add ─► out   if use_res_connect (stride 1, in == out)
            └─────────────────────────────────────┘
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = in_channels * expand_ratio
        if expand_ratio != 1:
            self.expand: nn.Module = ConvNormAct(in_channels, hidden, kernel_size=1, activation_layer=nn.SiLU)
        else:
            self.expand = nn.Identity()
        self.depthwise = ConvNormAct(
            hidden, hidden, kernel_size=kernel_size, stride=stride, groups=hidden, activation_layer=nn.SiLU
        )
        self.project = ConvNormAct(hidden, out_channels, kernel_size=1, activation_layer=None)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.expand(x)
        out = self.depthwise(out)
        out = self.project(out)
        if self.use_res_connect:
            out = torch.add(out, x)
        return out


class EfficientNet(nn.Module):
    """Narrow EfficientNet-B0-like network (torchvision layout: features / avgpool / classifier).

    ::

        x ─ features[ ConvNormAct(3x3,s2,SiLU) ─ MBConv x N ─ ConvNormAct(1x1,SiLU) ]
          ─ avgpool ─ flatten ─ classifier[Dropout ─ Linear]
    """

    def __init__(self, num_classes: int = 10, stem_channels: int = 16, last_channels: int = 64) -> None:
        super().__init__()
        # (expand_ratio, kernel, stride, in, out)
        setting = [
            (1, 3, 1, 16, 8),
            (6, 3, 2, 8, 12),
            (6, 3, 1, 12, 12),
            (6, 5, 2, 12, 16),
            (6, 5, 1, 16, 16),
        ]
        layers: List[nn.Module] = [ConvNormAct(3, stem_channels, kernel_size=3, stride=2, activation_layer=nn.SiLU)]
        for t, k, s, cin, cout in setting:
            layers.append(MBConv(cin, cout, expand_ratio=t, kernel_size=k, stride=s))
        layers.append(ConvNormAct(setting[-1][4], last_channels, kernel_size=1, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(last_channels, num_classes))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -1.0 / m.out_features**0.5, 1.0 / m.out_features**0.5)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def efficientnet_tiny(num_classes: int = 10) -> EfficientNet:
    """Stem s2; MBConv 16->8 (t=1,k3), 8->12 (s2), 12->12 (res), 12->16 (k5,s2), 16->16 (k5,res); 1x1 head; classifier."""
    return EfficientNet(num_classes=num_classes)
