"""ConvNeXt fixture (official/timm-style Block: dwconv7x7, channels-last LayerNorm + MLP, layer-scale gamma, residual)."""

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LayerNorm2d", "Block", "ConvNeXt", "convnext_tiny_fixture"]


class LayerNorm2d(nn.LayerNorm):
    """Channels-first LayerNorm (torchvision's ``LayerNorm2d``), implemented by permute-LayerNorm-permute.

    ::

        x(N,C,H,W) ─ permute(0,2,3,1) ─ layer_norm(C) ─ permute(0,3,1,2) ─► out(N,C,H,W)
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        x = x.permute(0, 3, 1, 2)
        return x


class Block(nn.Module):
    """ConvNeXt block (facebookresearch/ConvNeXt & timm channels-last variant).

    ::

        x ──┬─ dwconv(7x7, groups=dim) ─ permute(0,2,3,1) ─ norm(LayerNorm dim) ─ pwconv1(Linear dim->4dim)
            │  ─ act(GELU) ─ pwconv2(Linear 4dim->dim) ─ gamma * x ─ permute(0,3,1,2) ─ drop_path ─┐
            └─────────────────────────────────────────────────────────────────────────────────(+)─► out
    """

    def __init__(self, dim: int, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones((dim,)), requires_grad=True)
        self.drop_path = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = self.norm(x)
        x = self.pwconv1(x)
        x = self.act(x)
        x = self.pwconv2(x)
        x = self.gamma * x
        x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        x = shortcut + self.drop_path(x)
        return x


class ConvNeXt(nn.Module):
    """Two-stage ConvNeXt with the official module layout.

    ::

        x ─ downsample_layers[0] = stem[conv4x4 s4 ─ LayerNorm2d] ─ stages[0] (Block x d0)
          ─ downsample_layers[1] = [LayerNorm2d ─ conv2x2 s2]     ─ stages[1] (Block x d1)
          ─ mean over (H, W) ─ norm(LayerNorm) ─ head(Linear)
    """

    def __init__(
        self,
        depths: Sequence[int] = (2, 2),
        dims: Sequence[int] = (16, 32),
        num_classes: int = 10,
        layer_scale_init_value: float = 0.1,
    ) -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        stem = nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        self.downsample_layers.append(stem)
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(dims[i], eps=1e-6), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*[Block(dims[i], layer_scale_init_value) for _ in range(depths[i])]) for i in range(len(dims))
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        self.num_stages = len(dims)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.constant_(m.bias, 0)

    def forward_features(self, x: Tensor) -> Tensor:
        for i in range(self.num_stages):
            x = self.downsample_layers[i](x)
            x = self.stages[i](x)
        return self.norm(x.mean([-2, -1]))  # global average pooling, (N, C, H, W) -> (N, C)

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_features(x)
        x = self.head(x)
        return x


def convnext_tiny_fixture(num_classes: int = 10) -> ConvNeXt:
    """Stem conv4x4/s4 + LayerNorm2d; 2 Blocks @16ch; LayerNorm2d + conv2x2/s2; 2 Blocks @32ch; pooled LayerNorm; Linear."""
    return ConvNeXt(depths=(2, 2), dims=(16, 32), num_classes=num_classes)
