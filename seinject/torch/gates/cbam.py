"""CBAM: the convolutional block attention module (Woo et al., ECCV 2018) as a torch gate, 1d/2d/3d.

    x ─┬─────────────────────────────────────────────────────────── × ──▶ x1
       ├─ mean(spatial) → fc1 → act → fc2 ─┐                        │
       └─ amax(spatial) → fc1 → act → fc2 ─┴─ + → gain·gate ────────┘
    x1 ─┬───────────────────────────────────────────────────────────── × ──▶ y
        └─ [mean(C), amax(C)] → ConvNd(2→1, k) → BatchNormNd(1) → gain·gate ─┘

fc1 and fc2 are shared by the two pooled paths and have no biases (timm's CbamModule with
mlp_bias=False); the spatial conv and BatchNorm are timm's ConvNormAct(2, 1, k, apply_act=False).

Identity (init="identity"): fc2 is zero and the BatchNorm's weight and bias are zero, so both
pre-activations are exactly 0 (in train and eval mode) and both gates are 2·gate(0) = 1: y equals
x bit for bit, while fc2 and the BatchNorm still receive gradient. fc1 starts with non-negative
weights (|default init|, no bias): the max-pooled path is then positive on the usual maps, so its
ReLUs are alive. init="random": gain 1 and torch's default init, the published block (timm's
CbamModule, same hidden width). torch.nan_to_num after the activation and after the BatchNorm
keeps a map near the dtype's limit from turning the zero layers' output into 0·inf = NaN.
In train mode the spatial BatchNorm needs more than one value (batch × positions > 1), as any
torch BatchNorm does: a single sample with a single position raises torch's ValueError.
"""

from __future__ import annotations

import math

import torch
import torch.fx
from torch import nn

from ...rule.config import SEConfig
from ..block import _ACTIVATIONS, _GATES, _unfilled_linear, scale_channels, squeeze_spatial
from .base import Gate

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_NORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def amax_spatial(x: torch.Tensor) -> torch.Tensor:
    """The max over every spatial dim of an N×C×… tensor: N×C (a leaf call under torch.fx).

    Example:
        >>> amax_spatial(torch.arange(6.0).reshape(1, 2, 3))
        tensor([[2., 5.]])
    """
    spatial = tuple(range(2, x.dim()))
    return x.amax(spatial) if spatial else x


# wrap registers a name in the calling module's globals: the imported helpers need it here too
torch.fx.wrap("amax_spatial")
torch.fx.wrap("squeeze_spatial")
torch.fx.wrap("scale_channels")


class CBAM(Gate):
    """CBAM over an N×C×spatial… tensor: a channel gate from avg- and max-pooled MLPs, then a
    spatial gate from a k-wide conv on the channel mean and max.

    Example:
        >>> cbam = CBAM(32, SEConfig(block="cbam"))
        >>> x = torch.randn(2, 32, 6, 6)
        >>> torch.equal(cbam(x), x), cbam.hidden, cbam.is_identity()    # identity at init
        (True, 2, True)
        >>> sum(p.numel() for p in cbam.parameters()) == SEConfig(block="cbam").added_parameters(32, 2)
        True
    """

    block_type = "cbam"

    def __init__(self, channels: int, config: SEConfig | None = None, *, spatial_rank: int | None = None,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        config = config or SEConfig(block=self.block_type)
        factory = {"device": device, "dtype": dtype}
        rank = 2 if spatial_rank is None else spatial_rank
        identity = self._configure(channels, config)
        self.spatial_rank = rank
        self.kernel_size = config.spatial_kernel_size
        linear = _unfilled_linear if identity else nn.Linear
        self.fc1 = linear(channels, self.hidden, bias=False, **factory)
        self.act = _ACTIVATIONS[config.act]()
        self.fc2 = linear(self.hidden, channels, bias=False, **factory)
        k = self.kernel_size
        self.conv = _CONVS[rank](2, 1, k, padding=k // 2, bias=False, **factory)
        self.bn = _NORMS[rank](1, **factory)
        if identity:
            with torch.no_grad():
                # |U(-b, b)| with torch's default Linear bound b = 1/sqrt(fan_in)
                self.fc1.weight.uniform_(0.0, 1.0 / math.sqrt(channels))
                self.fc2.weight.zero_()
                self.bn.weight.zero_()
                self.bn.bias.zero_()

    def _mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.nan_to_num(self.act(self.fc1(pooled))))

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate gate(a) of each sample and channel (N×C, in [0, 1]); the block scales by gain·gate.

        Example:
            >>> CBAM(8, SEConfig(block="cbam")).gate_values(torch.randn(2, 8, 5)).unique().tolist()
            [0.5]
        """
        return _GATES[self.gate_name](self._mlp(squeeze_spatial(x)) + self._mlp(amax_spatial(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = scale_channels(x, self.gain * self.gate_values(x))
        pooled = torch.cat([x1.mean(dim=1, keepdim=True), x1.amax(dim=1, keepdim=True)], dim=1)
        attn = torch.nan_to_num(self.bn(self.conv(pooled)))
        return x1 * (self.gain * _GATES[self.gate_name](attn))

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly (fc2, BatchNorm weight and bias zero, gain 2).

        Example:
            >>> CBAM(8, SEConfig(block="cbam", init="random")).is_identity()
            False
        """
        return (self.gain == 2.0 and not bool(self.fc2.weight.any())
                and not bool(self.bn.weight.any()) and not bool(self.bn.bias.any()))

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, hidden={self.hidden}, spatial_rank={self.spatial_rank}, "
                f"kernel_size={self.kernel_size}, act={self.act_name}, gate={self.gate_name}, gain={self.gain:g}")
