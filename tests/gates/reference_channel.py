"""Hand-written reference blocks for the channel gates ese, eca and gc, straight from the papers
as timm writes them (timm/layers: squeeze_excite.EffectiveSEModule, eca.EcaModule,
global_context.GlobalContext with mlp.ConvMlp and norm.LayerNorm2d), on N×C×H×W maps.

Independent of seinject on purpose (no import from it): the tests copy weights from these into
seinject's modules and compare outputs. The parameter names are timm's.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def hard_sigmoid(x):
    """timm's hard_sigmoid: relu6(x + 3) / 6."""
    return F.relu6(x + 3.0) / 6.0


GATES = {"sigmoid": torch.sigmoid, "hardsigmoid": hard_sigmoid}


class RefEffectiveSE(nn.Module):
    """eSE (CenterMask): x * gate(fc(mean_hw(x))), fc a 1×1 conv C→C."""

    def __init__(self, channels, gate="hardsigmoid", bias=True):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, kernel_size=1, padding=0, bias=bias)
        self.gate = GATES[gate]

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc(x_se))


def eca_kernel(channels, gamma=2, beta=1):
    """ECA-Net's adaptive kernel: t = int(|log2(C) + b| / gamma), made odd, at least 3."""
    t = int(abs(math.log(channels, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


class RefEca(nn.Module):
    """ECA: sigmoid(conv1d_k(mean_hw(x) as a 1×C sequence)) scales x."""

    def __init__(self, channels, gamma=2, beta=1, kernel_size=None, gate="sigmoid"):
        super().__init__()
        k = kernel_size or eca_kernel(channels, gamma, beta)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.gate = GATES[gate]

    def forward(self, x):
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)
        y = self.gate(self.conv(y)).view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)


class RefLayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (eps 1e-6, affine)."""

    def __init__(self, channels):
        super().__init__(channels, eps=1e-6)

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class RefConvMlp(nn.Module):
    """1×1 conv C→h, LayerNorm2d, act, 1×1 conv h→C."""

    def __init__(self, channels, hidden, act=nn.ReLU):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.norm = RefLayerNorm2d(hidden)
        self.act = act()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def forward(self, x):
        return self.fc2(self.act(self.norm(self.fc1(x))))


class RefGlobalContext(nn.Module):
    """GCNet's global context block: softmax attention pooling (or mean), then
    x * sigmoid(mlp_scale(ctx)) (fuse_scale) and x + mlp_add(ctx) (fuse_add), in that order."""

    def __init__(self, channels, hidden, use_attn=True, fuse_add=True, fuse_scale=False, act=nn.ReLU,
                 gate="sigmoid"):
        super().__init__()
        self.conv_attn = nn.Conv2d(channels, 1, kernel_size=1, bias=True) if use_attn else None
        self.mlp_add = RefConvMlp(channels, hidden, act) if fuse_add else None
        self.mlp_scale = RefConvMlp(channels, hidden, act) if fuse_scale else None
        self.gate = GATES[gate]

    def forward(self, x):
        B, C, H, W = x.shape
        if self.conv_attn is not None:
            attn = self.conv_attn(x).reshape(B, 1, H * W)
            attn = F.softmax(attn, dim=-1).unsqueeze(3)             # B×1×HW×1
            context = x.reshape(B, C, H * W).unsqueeze(1) @ attn   # B×1×C×1
            context = context.view(B, C, 1, 1)
        else:
            context = x.mean(dim=(2, 3), keepdim=True)
        if self.mlp_scale is not None:
            x = x * self.gate(self.mlp_scale(context))
        if self.mlp_add is not None:
            x = x + self.mlp_add(context)
        return x
