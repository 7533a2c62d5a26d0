"""The 1-D residual CNN the study pretrains: a stride-2 stem conv, three stages of two basic blocks, GAP, Linear(10).

Example:
    >>> import torch
    >>> net = ResNet1d()
    >>> net(torch.zeros(2, 1, 40)).shape, sum(p.numel() for p in net.parameters())
    (torch.Size([2, 10]), 42746)
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv3-BN-ReLU-conv3-BN on the branch, plus the shortcut (1×1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv1d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet1d(nn.Module):
    """Stem (conv5 stride 2-BN-ReLU: length 40 → 20), three stages of `blocks` basic blocks at `widths` (stride 2 from stage 2 on), GAP, fc."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 48), blocks: int = 2, classes: int = 10):
        super().__init__()
        if len(widths) != 3 or blocks < 1:
            raise ValueError(f"three stage widths and blocks >= 1, got {widths!r}, {blocks!r}")
        self.stem = nn.Sequential(nn.Conv1d(1, widths[0], 5, 2, 2, bias=False), nn.BatchNorm1d(widths[0]), nn.ReLU())
        stages, cin = [], widths[0]
        for index, width in enumerate(widths):
            layers = [BasicBlock(cin, width, 1 if index == 0 else 2)]
            layers += [BasicBlock(width, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))
