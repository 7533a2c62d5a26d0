"""Coordinate attention as ONNX nodes (the torch block: seinject.torch.gates.coord), 2-D maps only.

    x ─┬────────────────────────────────────────────────────────────────────────────── Mul ─ Mul ──▶ y
       ├─ ReduceMean(3) ───────────────── conv1 → BN → act → finite → conv_h → gate → ×gain ──│────┘ a_h
       └─ ReduceMean(2) → Transpose ───── conv1 → BN → act → finite → Transpose → conv_w → gate → ×gain ─┘ a_w

In inference the 1×1 conv1 and the BatchNormalization act on each position alone, so the two
pooled lines go through them separately (the same initializers) instead of the torch block's
concatenate-and-split: no Concat or Split (whose signature changes at opset 13).
init="identity": conv_h and conv_w zero (weights and biases) and gain 2: y equals x exactly.
init="random": torch's default init from the seeded generator, BatchNorm at 1/0/0/1, no gains.

Example:
    >>> from seinject.rule.config import SEConfig
    >>> b = build_coord("g", "x", 16, 2, SEConfig(block="coord"), opset=13)
    >>> b.nodes[-1].name, b.params == SEConfig(block="coord").added_parameters(16, 2)
    ('g/scale', True)
"""

from __future__ import annotations

import zlib

import numpy as np
from onnx import TensorProto

from ...errors import ConfigError
from ...rule.config import SEConfig
from ...rule.gates import SPECS
from ..block import DTYPES, Builder, SEBlock, gate, activation, finite
from . import ops
from .cbam import BN_EPS, Branch, conv_init


def build_coord(block: str, x: str, channels: int, spatial_rank: int, config: SEConfig, opset: int,
                elem_type: int = TensorProto.FLOAT, seed: int = 0, output: str | None = None) -> SEBlock:
    """The coordinate-attention subgraph gating value `x` (N×channels×H×W); `output` names its result.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> build_coord("g", "x", 8, 2, SEConfig(block="coord", init="random"), opset=11).output
        'g/scale_out'
        >>> build_coord("g", "x", 8, 3, SEConfig(block="coord"), opset=11)
        Traceback (most recent call last):
        ...
        seinject.errors.ConfigError: coord is defined on 2-D maps (it pools along H and W); this map has 3 spatial dim(s)
    """
    why = SPECS["coord"].unsupported(spatial_rank)
    if why is not None:
        raise ConfigError(why, key="block")
    out = Builder(block, DTYPES[elem_type])
    hidden = config.hidden_channels(channels)
    rng = np.random.default_rng([seed, zlib.crc32(block.encode())])

    def conv(fan_out: int, fan_in: int) -> tuple[np.ndarray, np.ndarray]:
        weight = conv_init(rng, (fan_out, fan_in, 1, 1))
        return weight, rng.uniform(-1.0, 1.0, fan_out) / np.sqrt(fan_in)

    w1, b1 = conv(hidden, channels)
    wh, bh = conv(channels, hidden)
    ww, bw = conv(channels, hidden)
    identity = config.init == "identity"
    if identity:
        wh, bh, ww, bw = (np.zeros_like(a) for a in (wh, bh, ww, bw))
    conv1 = [out.const("conv1.weight", w1), out.const("conv1.bias", b1)]
    bn1 = [out.const(f"bn1.{name}", value) for name, value in
           (("weight", np.ones(hidden)), ("bias", np.zeros(hidden)),
            ("running_mean", np.zeros(hidden)), ("running_var", np.ones(hidden)))]
    perm = [0, 1, 3, 2]

    def line(pooled: str, axis: str, weight: np.ndarray, bias: np.ndarray) -> str:
        branch = Branch(out, axis)
        y = out.node(f"conv1.{axis}", "Conv", [pooled] + conv1)
        y = out.node(f"bn1.{axis}", "BatchNormalization", [y] + bn1, epsilon=BN_EPS)
        y = finite(branch, activation(branch, config.act, y, opset))
        if axis == "w":  # N×h×W×1 back to N×h×1×W
            y = out.node("transpose.w_back", "Transpose", [y], perm=perm)
        a = out.node(f"conv_{axis}", "Conv", [y, out.const(f"conv_{axis}.weight", weight),
                                              out.const(f"conv_{axis}.bias", bias)])
        a = gate(out, f"gate.{axis}", config.gate, a)
        if identity:
            a = out.node(f"gain.{axis}", "Mul", [a, out.const(f"gain.{axis}", np.array(2.0))])
        return a

    x_h = ops.reduce(out, "pool.h", "ReduceMean", x, [3], opset)                   # N×C×H×1
    x_w = out.node("transpose.w", "Transpose", [ops.reduce(out, "pool.w", "ReduceMean", x, [2], opset)],
                   perm=perm)                                                      # N×C×W×1
    a_h = line(x_h, "h", wh.reshape(channels, hidden, 1, 1), bh)
    a_w = line(x_w, "w", ww.reshape(channels, hidden, 1, 1), bw)
    y = out.node("scale.w", "Mul", [x, a_w])
    out.block.output = out.node("scale", "Mul", [y, a_h], output=output)
    out.block.params = channels * hidden + hidden + 2 * hidden + 2 * (hidden * channels + channels)
    return out.block
