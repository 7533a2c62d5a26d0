"""SimAM: the parameter-free attention of Yang et al. (ICML 2021) as a torch gate, 1d/2d/3d.

    x ─┬───────────────────────────────────────────────────────────────── × ──▶ y
       └─ d = (x − mean)², v = Σd / n, E⁻¹ = d / (4(v + λ)) + 0.5 → sigmoid ─┘

per channel, over the spatial positions, n = positions − 1 (the official code). Here n is at
least 1, so a map with a single position gives E⁻¹ = 0.5 instead of the official 0/0 = NaN.

Identity (init="identity"): one parameter, a scalar `blend` α starting at 0, and
y = x · (1 + α·(sigmoid(E⁻¹) − 1)): exactly x at α = 0, while α receives gradient
Σ x·(sigmoid(E⁻¹) − 1)·∂L/∂y. init="random": no parameter, y = x · sigmoid(E⁻¹), the published
block. torch.nan_to_num on E⁻¹ (a map near the dtype's limit can give inf/inf = NaN) keeps the
blend's 0·(…) at exactly 0.
"""

from __future__ import annotations

import math

import torch
import torch.fx
from torch import nn

from ...rule.config import SEConfig
from .base import Gate


def simam_energy(x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    """SimAM's inverse energy E⁻¹ = d / (4(Σd/n + λ)) + 0.5 per position, d = (x − spatial mean)²,
    n = max(positions − 1, 1); NaN → 0 and ±inf → the dtype's extremes. A leaf call under torch.fx.

    Example:
        >>> simam_energy(torch.tensor([[[1.0, 3.0]]]), 1e-4)      # d = 1, v = 2: 1/8.0004 + 0.5
        tensor([[[0.6250, 0.6250]]])
    """
    spatial = tuple(range(2, x.dim()))
    n = max(math.prod(x.shape[2:]) - 1, 1)
    d = (x - x.mean(dim=spatial, keepdim=True)).pow(2)
    return torch.nan_to_num(d / (4 * (d.sum(dim=spatial, keepdim=True) / n + e_lambda)) + 0.5)


torch.fx.wrap("simam_energy")


class SimAM(Gate):
    """SimAM over an N×C×spatial… tensor: a per-position gate from each channel's spatial statistics.

    Example:
        >>> simam = SimAM(16, SEConfig(block="simam"))
        >>> x = torch.randn(2, 16, 4, 4)
        >>> torch.equal(simam(x), x), simam.is_identity(), simam.blend.item()    # identity at init
        (True, True, 0.0)
        >>> sum(p.numel() for p in SimAM(16, SEConfig(block="simam", init="random")).parameters())
        0
    """

    block_type = "simam"

    def __init__(self, channels: int, config: SEConfig | None = None, *, spatial_rank: int | None = None,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        config = config or SEConfig(block=self.block_type)
        self.channels = channels
        self.hidden = config.hidden_channels(channels)
        self.e_lambda = float(config.e_lambda)
        self.init_mode = config.init
        if config.init == "identity":
            self.blend = nn.Parameter(torch.zeros((), device=device, dtype=dtype))
        else:
            self.register_parameter("blend", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = torch.sigmoid(simam_energy(x, self.e_lambda))
        if self.blend is None:
            return x * attn
        return x * (1 + self.blend * (attn - 1))

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly (blend present and 0).

        Example:
            >>> SimAM(8, SEConfig(block="simam", init="random")).is_identity()
            False
        """
        return self.blend is not None and not bool(self.blend.any())

    def extra_repr(self) -> str:
        return f"channels={self.channels}, e_lambda={self.e_lambda:g}, init={self.init_mode}"
