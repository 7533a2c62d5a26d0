"""Residual net written functionally in one root forward: a shared nn.ReLU module reused, F.relu/torch.relu, four residual-join styles, and an F.conv2d with a registered Parameter."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FunctionalResNet", "functional_resnet"]


class FunctionalResNet(nn.Module):
    """Flat residual net: no block submodules, the four "blocks" are helper methods inlined into forward.

    ::

        x ─ conv1 ─ bn1 ─ act ─┬─ b1_conv1 ─ b1_bn1 ─ act ─ b1_conv2 ─ b1_bn2 ─┐
                               └────────────────────────────── out += identity ─ act              (block1)
          ─┬─ F.conv2d(., b2_conv1_weight) ─ b2_bn1 ─ F.relu ─ b2_conv2 ─ b2_bn2 ─┐
           └──────────────────────────────────────────────── torch.add(out, identity) ─ torch.relu (block2)
          ─┬─ b3_conv1(s2) ─ b3_bn1 ─ act ─ b3_conv2 ─ b3_bn2 ─┐
           └─ b3_down_conv(1x1,s2) ─ b3_down_bn ──────────── out.add_(identity) ─ act             (block3)
          ─┬─ b4_conv1 ─ b4_bn1 ─ torch.relu ─ b4_conv2 ─ b4_bn2 ─┐
           └──────────────────────────────────────────── identity + out ─ F.relu(inplace=True)   (block4)
          ─ adaptive_avg_pool2d ─ flatten ─ fc

    ``act`` is ONE ``nn.ReLU()`` module called five times (stem, block1 x2, block3 x2).
    """

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        w = width
        self.act = nn.ReLU()  # shared, reused across the stem and several blocks
        # stem
        self.conv1 = nn.Conv2d(3, w, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        # block1: `out += identity`
        self.b1_conv1 = nn.Conv2d(w, w, 3, padding=1, bias=False)
        self.b1_bn1 = nn.BatchNorm2d(w)
        self.b1_conv2 = nn.Conv2d(w, w, 3, padding=1, bias=False)
        self.b1_bn2 = nn.BatchNorm2d(w)
        # block2: functional conv with a registered Parameter, `torch.add(out, identity)`
        self.b2_conv1_weight = nn.Parameter(torch.empty(w, w, 3, 3))
        self.b2_bn1 = nn.BatchNorm2d(w)
        self.b2_conv2 = nn.Conv2d(w, w, 3, padding=1, bias=False)
        self.b2_bn2 = nn.BatchNorm2d(w)
        # block3: stride-2 projection, `out.add_(identity)`
        self.b3_conv1 = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False)
        self.b3_bn1 = nn.BatchNorm2d(2 * w)
        self.b3_conv2 = nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False)
        self.b3_bn2 = nn.BatchNorm2d(2 * w)
        self.b3_down_conv = nn.Conv2d(w, 2 * w, 1, stride=2, bias=False)
        self.b3_down_bn = nn.BatchNorm2d(2 * w)
        # block4: `identity + out`
        self.b4_conv1 = nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False)
        self.b4_bn1 = nn.BatchNorm2d(2 * w)
        self.b4_conv2 = nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False)
        self.b4_bn2 = nn.BatchNorm2d(2 * w)
        # head
        self.fc = nn.Linear(2 * w, num_classes)

        nn.init.kaiming_normal_(self.b2_conv1_weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _block1(self, x: Tensor) -> Tensor:
        identity = x
        out = self.act(self.b1_bn1(self.b1_conv1(x)))
        out = self.b1_bn2(self.b1_conv2(out))
        out += identity
        return self.act(out)

    def _block2(self, x: Tensor) -> Tensor:
        identity = x
        out = F.conv2d(x, self.b2_conv1_weight, padding=1)
        out = F.relu(self.b2_bn1(out))
        out = self.b2_bn2(self.b2_conv2(out))
        out = torch.add(out, identity)
        return torch.relu(out)

    def _block3(self, x: Tensor) -> Tensor:
        identity = self.b3_down_bn(self.b3_down_conv(x))
        out = self.act(self.b3_bn1(self.b3_conv1(x)))
        out = self.b3_bn2(self.b3_conv2(out))
        out.add_(identity)
        return self.act(out)

    def _block4(self, x: Tensor) -> Tensor:
        identity = x
        out = torch.relu(self.b4_bn1(self.b4_conv1(x)))
        out = self.b4_bn2(self.b4_conv2(out))
        out = identity + out
        return F.relu(out, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self._block1(x)
        x = self._block2(x)
        x = self._block3(x)
        x = self._block4(x)
        x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)
        return self.fc(x)


def functional_resnet(num_classes: int = 10) -> FunctionalResNet:
    """Flat functional ResNet: 4 residual joins (+=, torch.add, add_, a + b), shared nn.ReLU, one F.conv2d Parameter."""
    return FunctionalResNet(num_classes=num_classes)
