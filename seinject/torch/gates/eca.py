"""EfficientChannelAttention: the ECA block as a torch module, for 1d, 2d and 3d maps.

    x ─┬──────────────────────────────────────────────────────────── × ──▶ y
       └─ mean(spatial) → 1-D conv of size k across channels → gain·sigmoid ─┘

ECA (Wang et al., ECA-Net, CVPR 2020) replaces SE's MLP by one k-tap convolution over the
channel axis of the squeezed vector, k = |log2(C) + β| / γ made odd, at least 3 (or
`kernel_size`; seinject.rule.gates.eca_kernel_size): k parameters in all. With init="identity"
the conv starts at zero and gain is 2, so the gate is 2·sigmoid(0) = 1 (2·hardsigmoid(0) = 1
with gate="hardsigmoid"): the block returns its input exactly and the conv still receives
gradient. With init="random" gain is 1 and the conv keeps torch's default init: timm's
EcaModule(channels=C, gamma=γ, beta=β).
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from ...rule.config import SEConfig
from ...rule.gates import eca_kernel_size
from ..block import _GATES, scale_channels, squeeze_spatial
from .base import Gate

# leaf calls under torch.fx here too: torch.fx.wrap patches the globals of the module that calls it
torch.fx.wrap("squeeze_spatial")
torch.fx.wrap("scale_channels")


class EfficientChannelAttention(Gate):
    """ECA over dim 1 of an N×C×… tensor: x · gain·gate(conv1d(mean(x))).

    Example:
        >>> import torch
        >>> eca = EfficientChannelAttention(64, SEConfig(block="eca"))
        >>> x = torch.randn(2, 64, 5, 5)
        >>> torch.equal(eca(x), x), eca.kernel_size   # identity at init; k from C = 64
        (True, 3)
        >>> EfficientChannelAttention(256, SEConfig(block="eca")).conv.weight.shape
        torch.Size([1, 1, 5])
    """

    block_type = "eca"

    def __init__(self, channels: int, config: SEConfig | None = None, *, spatial_rank: int | None = None,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        config = config or SEConfig(block="eca")
        identity = self._configure(channels, config, hidden=0)
        self.kernel_size = eca_kernel_size(channels, config)
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=(self.kernel_size - 1) // 2, bias=False,
                              device=device, dtype=dtype)
        if identity:
            with torch.no_grad():
                self.conv.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scale_channels(x, self.gain * self.gate_values(x))

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        """The gate of each sample and channel (N×C, in [0, 1]); the block scales by gain·gate.

        Example:
            >>> EfficientChannelAttention(8).gate_values(torch.randn(2, 8, 3)).unique().tolist()   # at identity
            [0.5]
        """
        # nan_to_num: the mean of a map near the dtype's largest value can overflow to inf, and
        # the zero conv of a block at identity must still give exactly 0, not 0·inf = nan
        pooled = torch.nan_to_num(squeeze_spatial(x))
        return _GATES[self.gate_name](self.conv(pooled.unsqueeze(1)).squeeze(1))

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly (conv all zero, gain·gate(0) = 1).

        Example:
            >>> EfficientChannelAttention(8).is_identity()
            True
        """
        return self.gain == 2.0 and not bool(self.conv.weight.any())

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, gate={self.gate_name}, "
                f"gain={self.gain:g}")
