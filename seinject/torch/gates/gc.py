"""GlobalContext: the global context block (GCNet) as a torch module, for 1d, 2d and 3d maps.

    x ─┬──────────────────────────────────────── × ──── + ──▶ y
       └─ context ─┬─ mlp_scale → gain·sigmoid ───┘      │     (fuse_scale)
                   └─ mlp_add ───────────────────────────┘     (fuse_add)
    context: Σ_pos x·softmax(conv_attn(x)) (use_attn), else the mean over positions
    mlp: fc1 (C→h) → LayerNorm(h) → act → fc2 (h→C)

GCNet (Cao et al., ICCV Workshops 2019) pools a global context vector with a softmax
attention over all positions and adds its transform to every position (fuse_add, the
paper's); fuse_scale gates the channels by a second transform instead or as well (timm's
default), scale first, then add, as timm's GlobalContext. With init="identity" the fc2 of
each transform starts at zero (weight and bias) and the scale gate has gain 2: the add is
x + 0 and the scale 2·sigmoid(0) = 1, so the block returns its input exactly; fc2 still
receives gradient, as fc1 keeps torch's default init and the LayerNorm after it centres
its output, so about half the ReLUs are alive (for hidden >= 2: a LayerNorm over one channel
outputs its bias whatever the input, so with hidden = 1 the transform is a constant and only
fc2's bias ever learns, in timm's block too). With init="random" gain is 1 and every layer
keeps torch's default init: timm's GlobalContext(C, use_attn, fuse_add, fuse_scale,
rd_ratio=1/ratio) with its ConvMlp(norm_layer=LayerNorm2d) up to init (timm re-initialises
conv_attn kaiming-normal and zeroes mlp_add.fc2.weight); its 1×1 convs are these
nn.Linear layers, weights reshaped, and the state-dict names are timm's. (timm rounds
C/ratio to the nearest multiple of rd_divisor, SEConfig rounds up: they agree when C/ratio is one.)
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from ...rule.config import SEConfig
from ..block import _ACTIVATIONS, _GATES, _unfilled_linear, scale_channels, squeeze_spatial
from .base import Gate

# leaf calls under torch.fx here too: torch.fx.wrap patches the globals of the module that calls it
torch.fx.wrap("squeeze_spatial")
torch.fx.wrap("scale_channels")


def shift_channels(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x (N×C×…) plus shift (N×C), broadcast over the spatial dims; a leaf call under torch.fx.

    Example:
        >>> shift_channels(torch.ones(1, 2, 3), torch.tensor([[2.0, 3.0]]))[0, :, 0]
        tensor([3., 4.])
    """
    return x + shift.reshape(shift.shape + (1,) * (x.dim() - 2))


torch.fx.wrap("shift_channels")


class ContextMlp(nn.Module):
    """One transform of the context vector: fc1 (C→h) → LayerNorm(h, eps 1e-6) → act → fc2 (h→C).

    timm's ConvMlp(C, h, norm_layer=LayerNorm2d) on an N×C vector instead of an N×C×1×1 map.
    `zero_last` starts fc2 at zero (weight and bias): the transform then gives exactly 0.

    Example:
        >>> mlp = ContextMlp(16, 4, "relu", zero_last=True)
        >>> mlp(torch.randn(2, 16)).abs().max().item()
        0.0
    """

    def __init__(self, channels: int, hidden: int, act: str, *, zero_last: bool,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden, device=device, dtype=dtype)
        self.norm = nn.LayerNorm(hidden, eps=1e-6, device=device, dtype=dtype)
        self.act = _ACTIVATIONS[act]()
        self.fc2 = (_unfilled_linear if zero_last else nn.Linear)(hidden, channels, device=device, dtype=dtype)
        if zero_last:
            with torch.no_grad():
                self.fc2.weight.zero_()
                self.fc2.bias.zero_()

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        # nan_to_num: a context near the dtype's largest value can overflow fc1 (and LayerNorm
        # then gives nan); the zero fc2 of a block at identity must still give exactly 0
        return self.fc2(torch.nan_to_num(self.act(self.norm(self.fc1(context)))))

    def is_zero(self) -> bool:
        """True while fc2 is all zero, so the transform gives exactly 0 for any input.

        Example:
            >>> ContextMlp(8, 2, "relu", zero_last=False).is_zero()
            False
        """
        return not bool(self.fc2.weight.any()) and not bool(self.fc2.bias.any())


class GlobalContext(Gate):
    """The global context block over dim 1 of an N×C×… tensor.

    Example:
        >>> import torch
        >>> gc = GlobalContext(32, SEConfig(block="gc", ratio=8))
        >>> x = torch.randn(2, 32, 5, 5)
        >>> torch.equal(gc(x), x), gc.hidden      # identity at init
        (True, 4)
        >>> gc.gate_values(x) is None             # add fusion only: no channel gate
        True
        >>> both = GlobalContext(32, SEConfig(block="gc", ratio=8, fuse_scale=True))
        >>> both.gate_values(x).unique().tolist(), torch.equal(both(x), x)
        ([0.5], True)
    """

    block_type = "gc"

    def __init__(self, channels: int, config: SEConfig | None = None, *, spatial_rank: int | None = None,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        config = config or SEConfig(block="gc")
        identity = self._configure(channels, config)
        self.use_attn = config.use_attn
        factory = {"device": device, "dtype": dtype}
        self.conv_attn = nn.Linear(channels, 1, **factory) if config.use_attn else None
        mlp = dict(zero_last=identity, **factory)
        self.mlp_add = ContextMlp(channels, self.hidden, config.act, **mlp) if config.fuse_add else None
        self.mlp_scale = ContextMlp(channels, self.hidden, config.act, **mlp) if config.fuse_scale else None

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled context (N×C): attention-weighted sum over all positions, or their mean.

        Example:
            >>> gc = GlobalContext(4, SEConfig(block="gc", use_attn=False))
            >>> gc.context(torch.ones(2, 4, 3, 3)).tolist()[0]
            [1.0, 1.0, 1.0, 1.0]
        """
        if self.conv_attn is None:
            return squeeze_spatial(x)
        flat = x.flatten(2)                                                # N×C×L
        attn = torch.softmax(self.conv_attn(flat.transpose(1, 2)), dim=1)  # N×L×1, sums to 1 over L
        return (flat @ attn).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.context(x)
        y = x
        if self.mlp_scale is not None:  # timm's order: scale, then add
            y = scale_channels(y, self.gain * _GATES[self.gate_name](self.mlp_scale(context)))
        if self.mlp_add is not None:
            y = shift_channels(y, self.mlp_add(context))
        return y

    def gate_values(self, x: torch.Tensor) -> torch.Tensor | None:
        """The scale gate of each sample and channel (N×C, in [0, 1]) with fuse_scale, else None.

        Example:
            >>> cfg = SEConfig(block="gc", fuse_add=False, fuse_scale=True)
            >>> GlobalContext(8, cfg).gate_values(torch.randn(2, 8, 3)).shape
            torch.Size([2, 8])
        """
        if self.mlp_scale is None:
            return None
        return _GATES[self.gate_name](self.mlp_scale(self.context(x)))

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly (each fc2 zero; gain 2 on the scale gate).

        Example:
            >>> GlobalContext(8).is_identity(), GlobalContext(8, SEConfig(block="gc", init="random")).is_identity()
            (True, False)
        """
        if self.mlp_add is not None and not self.mlp_add.is_zero():
            return False
        return self.mlp_scale is None or (self.gain == 2.0 and self.mlp_scale.is_zero())

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, hidden={self.hidden}, act={self.act_name}, gate={self.gate_name}, "
                f"use_attn={self.use_attn}, fuse_add={self.mlp_add is not None}, "
                f"fuse_scale={self.mlp_scale is not None}, gain={self.gain:g}")
