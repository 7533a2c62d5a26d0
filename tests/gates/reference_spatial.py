"""Reference blocks written straight from the papers' / timm's code, independent of seinject, to
check seinject's cbam, coord and simam gates (init="random") against.

- CbamRef: timm's CbamModule (ChannelAttn + SpatialAttn with ConvNormAct(2, 1, k, apply_act=False)),
  mlp_bias=False; fc1/fc2 as 1×1 convs like timm; generalised to 1d/3d by `rank`.
- CoordAttRef: the official CoordAtt (Hou et al., CVPR 2021) with its h_swish / h_sigmoid.
- SimAMRef: the official simam_module (Yang et al., ICML 2021), generalised to any spatial rank.
"""

from __future__ import annotations

import torch
from torch import nn

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class CbamRef(nn.Module):
    """timm CbamModule(channels, rd_channels=hidden, spatial_kernel_size=k, act_layer=ReLU, gate sigmoid)."""

    def __init__(self, channels: int, hidden: int, kernel_size: int = 7, rank: int = 2):
        super().__init__()
        self.rank = rank
        conv = CONV[rank]
        self.fc1 = conv(channels, hidden, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = conv(hidden, channels, 1, bias=False)
        self.conv = conv(2, 1, kernel_size, padding=((1 - 1) + 1 * (kernel_size - 1)) // 2, bias=False)
        self.bn = NORM[rank](1)

    def forward(self, x):
        dims = tuple(range(2, 2 + self.rank))
        x_avg = self.fc2(self.act(self.fc1(x.mean(dims, keepdim=True))))
        x_max = self.fc2(self.act(self.fc1(x.amax(dims, keepdim=True))))
        x = x * torch.sigmoid(x_avg + x_max)
        x_attn = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        x_attn = self.bn(self.conv(x_attn))
        return x * torch.sigmoid(x_attn)


class HSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU6(inplace=True)

    def forward(self, x):
        return self.relu(x + 3) / 6


class HSwish(nn.Module):
    def __init__(self):
        super().__init__()
        self.sigmoid = HSigmoid()

    def forward(self, x):
        return x * self.sigmoid(x)


class CoordAttRef(nn.Module):
    """The official CoordAtt(inp, oup, reduction) with mip passed in (official: max(8, inp // reduction))."""

    def __init__(self, inp: int, oup: int, mip: int):
        super().__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self.conv1 = nn.Conv2d(inp, mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = HSwish()
        self.conv_h = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)
        self.conv_w = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        identity = x
        n, c, h, w = x.size()
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = torch.cat([x_h, x_w], dim=2)
        y = self.conv1(y)
        y = self.bn1(y)
        y = self.act(y)
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        return identity * a_w * a_h


class SimAMRef(nn.Module):
    """The official simam_module(e_lambda), over all spatial dims."""

    def __init__(self, e_lambda: float = 1e-4):
        super().__init__()
        self.activaton = nn.Sigmoid()
        self.e_lambda = e_lambda

    def forward(self, x):
        dims = list(range(2, x.dim()))
        n = 1
        for size in x.shape[2:]:
            n *= size
        n = n - 1
        x_minus_mu_square = (x - x.mean(dim=dims, keepdim=True)).pow(2)
        y = x_minus_mu_square / (4 * (x_minus_mu_square.sum(dim=dims, keepdim=True) / n + self.e_lambda)) + 0.5
        return x * self.activaton(y)
