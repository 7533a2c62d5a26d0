"""Coordinate attention (Hou et al., CVPR 2021) as a torch gate, on 2-D maps only.

    x ─┬──────────────────────────────────────────────────────────────────────── × ─ × ──▶ y
       ├─ mean(W) → N×C×H×1 ─┐                              ┌─ conv_h → gain·gate ─│───┘ a_h
       └─ mean(H) → N×C×W×1 ─┴─ cat → conv1 → BN → act ─ split ─ conv_w → gain·gate ─┘ a_w

The official CoordAtt: conv1 is a 1×1 conv C→h with bias, BatchNorm2d(h), act (h_swish = torch's
hardswish by default), conv_h and conv_w 1×1 convs h→C with bias; y = x · a_w · a_h, in that order.
In train mode the BatchNorm's batch statistics cover both pooled lines (the concatenation), as
in the paper's code.

Identity (init="identity"): conv_h and conv_w start at zero (weights and biases) and both gates
have gain 2, so a_h = a_w = 2·gate(0) = 1 and y equals x bit for bit; conv_h and conv_w still
receive gradient (conv1 and the BatchNorm keep torch's default init, so the act's output is
non-zero). init="random": gain 1, torch's default init: the published block. torch.nan_to_num
after the act keeps a map near the dtype's limit from turning the zero convs' output into
0·inf = NaN. Other spatial ranks raise ConfigError (SPECS["coord"].unsupported).
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from ...rule.config import SEConfig
from ...rule.gates import SPECS
from ..block import _ACTIVATIONS, _GATES
from .base import Gate


class CoordinateAttention(Gate):
    """Coordinate attention over an N×C×H×W tensor: gates per row (a_h) and per column (a_w).

    Example:
        >>> coord = CoordinateAttention(32, SEConfig(block="coord", ratio=4))
        >>> x = torch.randn(2, 32, 5, 7)
        >>> torch.equal(coord(x), x), coord.hidden, coord.is_identity()    # identity at init
        (True, 8, True)
        >>> CoordinateAttention(8, spatial_rank=1)
        Traceback (most recent call last):
        ...
        seinject.errors.ConfigError: coord is defined on 2-D maps (it pools along H and W); this map has 1 spatial dim(s)
    """

    block_type = "coord"

    def __init__(self, channels: int, config: SEConfig | None = None, *, spatial_rank: int | None = None,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        config = config or SEConfig(block=self.block_type)
        why = SPECS[self.block_type].unsupported(spatial_rank)
        if why is not None:
            raise ConfigError(why, key="block")
        factory = {"device": device, "dtype": dtype}
        identity = self._configure(channels, config)
        self.conv1 = nn.Conv2d(channels, self.hidden, 1, **factory)
        self.bn1 = nn.BatchNorm2d(self.hidden, **factory)
        self.act = _ACTIVATIONS[config.act]()
        self.conv_h = nn.Conv2d(self.hidden, channels, 1, **factory)
        self.conv_w = nn.Conv2d(self.hidden, channels, 1, **factory)
        if identity:
            with torch.no_grad():
                for conv in (self.conv_h, self.conv_w):
                    conv.weight.zero_()
                    conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_h = x.mean(3, keepdim=True)                        # N×C×H×1
        x_w = x.mean(2, keepdim=True).permute(0, 1, 3, 2)    # N×C×W×1
        y = torch.cat([x_h, x_w], dim=2)
        y = torch.nan_to_num(self.act(self.bn1(self.conv1(y))))
        rows = x.shape[2]
        y_h = y[:, :, :rows]
        y_w = y[:, :, rows:].permute(0, 1, 3, 2)             # N×h×1×W
        gate = _GATES[self.gate_name]
        a_h = self.gain * gate(self.conv_h(y_h))
        a_w = self.gain * gate(self.conv_w(y_w))
        return x * a_w * a_h

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly (conv_h and conv_w zero, gain 2).

        Example:
            >>> CoordinateAttention(8, SEConfig(block="coord", init="random")).is_identity()
            False
        """
        return self.gain == 2.0 and not any(bool(p.any()) for conv in (self.conv_h, self.conv_w)
                                            for p in (conv.weight, conv.bias))

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, hidden={self.hidden}, act={self.act_name}, gate={self.gate_name}, "
                f"gain={self.gain:g}")
