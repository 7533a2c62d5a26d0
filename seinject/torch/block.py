"""SqueezeExcite: the SE block as a torch module, for 1d, 2d and 3d feature maps.

    x ─┬──────────────────────────────────────────────── × ──▶ y
       └─ mean(spatial) → fc1 (C→h) → act → fc2 (h→C) → gain·gate ─┘

With init="identity" fc2 starts at zero and gain is 2, so the gate is 2·sigmoid(0) = 1
(likewise 2·hardsigmoid(0) = 1): the block returns its input exactly and fc2 still
receives gradient. fc1 starts with non-negative weights (|default init|) and bias 1, so
its ReLUs are active for the usual squeezed inputs (means of post-ReLU maps are >= 0,
of post-norm maps near 0): a unit dead at init would never receive gradient.
With init="random" gain is 1 and both layers keep torch's default init: the block of
the SENet paper (timm's SEModule with rd_divisor=8). bias=False drops both layers' biases
(the original Keras SE); fc1 then relies on its non-negative weights alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..rule.config import SEConfig
from .gates.base import Gate

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
}
_GATES = {"sigmoid": torch.sigmoid, "hardsigmoid": F.hardsigmoid}


class _Unfilled(nn.Linear):
    def reset_parameters(self) -> None:
        """Left to the caller, which fills every parameter itself."""


def _unfilled_linear(in_features: int, out_features: int, **factory: Any) -> nn.Linear:
    """A plain nn.Linear whose weight and bias are left uninitialised (torch.empty).

    Skips torch's default init, which the identity init would overwrite anyway. The
    layer is built as a subclass and then becomes an exact nn.Linear, so type checks
    (quantisation mappings, PEFT target modules) see the usual class.
    """
    layer = _Unfilled(in_features, out_features, **factory)
    layer.__class__ = nn.Linear
    return layer


def squeeze_spatial(x: torch.Tensor) -> torch.Tensor:
    """The mean over every spatial dim of an N×C×… tensor: N×C.

    A leaf call under torch.fx tracing (torch.fx.wrap): it reads x.dim(), which a traced
    tensor does not have, so models holding SE blocks stay traceable.

    Example:
        >>> squeeze_spatial(torch.ones(2, 3, 4, 5)).shape
        torch.Size([2, 3])
    """
    spatial = tuple(range(2, x.dim()))
    return x.mean(spatial) if spatial else x


def scale_channels(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (N×C×…) times scale (N×C), broadcast over the spatial dims; a leaf call under torch.fx.

    Example:
        >>> scale_channels(torch.ones(1, 2, 3), torch.tensor([[2.0, 3.0]]))[0, :, 0]
        tensor([2., 3.])
    """
    return x * scale.reshape(scale.shape + (1,) * (x.dim() - 2))


torch.fx.wrap("squeeze_spatial")
torch.fx.wrap("scale_channels")


class SqueezeExcite(Gate):
    """Squeeze-and-Excitation over dim 1 of an N×C×… tensor.

    Example:
        >>> import torch
        >>> se = SqueezeExcite(32, SEConfig(ratio=16))
        >>> x = torch.randn(2, 32, 5, 5)
        >>> torch.equal(se(x), x)     # identity at init
        True
        >>> se.hidden
        2
    """

    block_type = "se"

    def __init__(self, channels: int, config: SEConfig | None = None, *, spatial_rank: int | None = None,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        config = config or SEConfig()
        bias = config.bias
        identity = self._configure(channels, config)
        linear = _unfilled_linear if identity else nn.Linear
        self.fc1 = linear(channels, self.hidden, bias=bias, device=device, dtype=dtype)
        self.act = _ACTIVATIONS[config.act]()
        self.fc2 = linear(self.hidden, channels, bias=bias, device=device, dtype=dtype)
        if identity:
            with torch.no_grad():
                # |U(-b, b)| with torch's default Linear bound b = 1/sqrt(fan_in)
                self.fc1.weight.uniform_(0.0, 1.0 / math.sqrt(channels))
                self.fc2.weight.zero_()
                if bias:
                    self.fc1.bias.fill_(1.0)
                    self.fc2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scale_channels(x, self.gain * self.gate_values(x))

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        """The gate of each sample and channel (N×C, in [0, 1]); the block scales by gain·gate.

        Example:
            >>> SqueezeExcite(8).gate_values(torch.randn(2, 8, 3)).unique().tolist()   # at identity
            [0.5]
        """
        # nan_to_num: an activation near the dtype's largest value can overflow fc1 to inf;
        # the zero fc2 of a block at identity must still give exactly 0, not 0·inf = nan
        hidden = torch.nan_to_num(self.act(self.fc1(squeeze_spatial(x))))
        return _GATES[self.gate_name](self.fc2(hidden))

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly (fc2 all zero, gain·gate(0) = 1).

        Example:
            >>> SqueezeExcite(8).is_identity()
            True
        """
        return (
            self.gain == 2.0
            and not bool(self.fc2.weight.any())
            and (self.fc2.bias is None or not bool(self.fc2.bias.any()))
        )

    def extra_repr(self) -> str:
        bias = "" if self.fc1.bias is not None else ", bias=False"
        return (f"channels={self.channels}, hidden={self.hidden}, gate={self.gate_name}, "
                f"gain={self.gain:g}{bias}")
