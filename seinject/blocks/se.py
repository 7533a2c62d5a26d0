"""SqueezeExcite: the SE block as a torch module, for 1d, 2d and 3d feature maps.

    x ─┬──────────────────────────────────────────────── × ──▶ y
       └─ mean(spatial) → fc1 (C→h) → act → fc2 (h→C) → gain·gate ─┘

With init="identity" fc2 starts at zero and gain is 2, so the gate is 2·sigmoid(0) = 1
(likewise 2·hard_sigmoid(0) = 1): the block returns its input exactly and fc2 still
receives gradient. fc1 starts with non-negative weights (|default init|) and bias 1, so
its ReLUs are active for the usual squeezed inputs (means of post-ReLU maps are >= 0,
of post-norm maps near 0): a unit dead at init would never receive gradient.
With init="random" gain is 1 and both layers keep torch's default init: the block of
the SENet paper (timm's SEModule with rd_divisor=8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SEConfig

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hard_swish": nn.Hardswish,
}
_GATES = {"sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid}


class SqueezeExcite(nn.Module):
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

    def __init__(self, channels: int, config: SEConfig | None = None, *,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        config = config or SEConfig()
        self.channels = channels
        self.hidden = config.hidden_channels(channels)
        self.gate_name = config.gate
        self.init_mode = config.init
        self.gain = 2.0 if config.init == "identity" else 1.0
        self.fc1 = nn.Linear(channels, self.hidden, device=device, dtype=dtype)
        self.act = _ACTIVATIONS[config.act]()
        self.fc2 = nn.Linear(self.hidden, channels, device=device, dtype=dtype)
        if config.init == "identity":
            with torch.no_grad():
                self.fc1.weight.abs_()
            nn.init.ones_(self.fc1.bias)
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, x.dim()))
        squeezed = x.mean(spatial) if spatial else x
        scale = self.gain * _GATES[self.gate_name](self.fc2(self.act(self.fc1(squeezed))))
        return x * scale.reshape(scale.shape + (1,) * len(spatial))

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly (fc2 all zero, gain·gate(0) = 1).

        Example:
            >>> SqueezeExcite(8).is_identity()
            True
        """
        return (
            self.gain == 2.0
            and not bool(self.fc2.weight.any())
            and not bool(self.fc2.bias.any())
        )

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, hidden={self.hidden}, gate={self.gate_name}, "
                f"gain={self.gain:g}")
