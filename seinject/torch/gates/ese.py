"""EffectiveSE: the effective Squeeze-and-Excitation block (eSE) as a torch module, for 1d, 2d and 3d maps.

    x ─┬──────────────────────────────────────────── × ──▶ y
       └─ mean(spatial) → fc (C→C) → gain·hardsigmoid ─┘

eSE (Lee & Park, CenterMask / VoVNetV2, CVPR 2020) is SE with one full-width FC and no
bottleneck. With init="identity" fc (weight and bias) starts at zero and gain is 2, so the
gate is 2·hardsigmoid(0) = 1 (2·sigmoid(0) = 1 with gate="sigmoid"): the block returns its
input exactly and fc still receives gradient. With init="random" gain is 1 and fc keeps
torch's default init: timm's EffectiveSEModule(C) (its 1×1 Conv2d is this nn.Linear, the
weight reshaped C×C×1×1). bias=False drops fc's bias.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from ...rule.config import SEConfig
from ..block import _GATES, _unfilled_linear, scale_channels, squeeze_spatial
from .base import Gate

# leaf calls under torch.fx here too: torch.fx.wrap patches the globals of the module that calls it
torch.fx.wrap("squeeze_spatial")
torch.fx.wrap("scale_channels")


class EffectiveSE(Gate):
    """Effective SE over dim 1 of an N×C×… tensor: x · gain·gate(fc(mean(x))).

    Example:
        >>> import torch
        >>> ese = EffectiveSE(16, SEConfig(block="ese"))
        >>> x = torch.randn(2, 16, 5, 5)
        >>> torch.equal(ese(x), x), ese.hidden      # identity at init; hidden = C
        (True, 16)
        >>> sum(p.numel() for p in ese.parameters())
        272
    """

    block_type = "ese"

    def __init__(self, channels: int, config: SEConfig | None = None, *, spatial_rank: int | None = None,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        config = config or SEConfig(block="ese")
        identity = self._configure(channels, config, hidden=channels)
        linear = _unfilled_linear if identity else nn.Linear
        self.fc = linear(channels, channels, bias=config.bias, device=device, dtype=dtype)
        if identity:
            with torch.no_grad():
                self.fc.weight.zero_()
                if self.fc.bias is not None:
                    self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scale_channels(x, self.gain * self.gate_values(x))

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        """The gate of each sample and channel (N×C, in [0, 1]); the block scales by gain·gate.

        Example:
            >>> EffectiveSE(8).gate_values(torch.randn(2, 8, 3)).unique().tolist()   # at identity
            [0.5]
        """
        # nan_to_num: the mean of a map near the dtype's largest value can overflow to inf, and
        # the zero fc of a block at identity must still give exactly 0, not 0·inf = nan
        return _GATES[self.gate_name](self.fc(torch.nan_to_num(squeeze_spatial(x))))

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly (fc all zero, gain·gate(0) = 1).

        Example:
            >>> EffectiveSE(8).is_identity(), EffectiveSE(8, SEConfig(block="ese", init="random")).is_identity()
            (True, False)
        """
        return (
            self.gain == 2.0
            and not bool(self.fc.weight.any())
            and (self.fc.bias is None or not bool(self.fc.bias.any()))
        )

    def extra_repr(self) -> str:
        bias = "" if self.fc.bias is not None else ", bias=False"
        return f"channels={self.channels}, gate={self.gate_name}, gain={self.gain:g}{bias}"
