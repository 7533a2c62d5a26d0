"""The effective SE block (eSE) as ONNX nodes and initializers.

    x ─┬────────────────────────────────────────────────────────────── Mul ──▶ y
       └─ GlobalAveragePool → finite → Conv 1×1 (C→C) → HardSigmoid → ×gain ─┘

With init="identity" the conv (weight and bias) is zero and gain is 2: the gate is
2·hardsigmoid(0) = 1 (2·sigmoid(0) = 1 with gate="sigmoid") and y equals x bit for bit.
With init="random" there is no gain node and the conv gets torch.nn.Linear's default init
from a seeded generator (seinject.torch.gates.ese.EffectiveSE with the same weights).

Example:
    >>> from seinject.rule.config import SEConfig
    >>> b = build_ese("ese", "x", 16, 2, SEConfig(block="ese"), opset=13)
    >>> [n.op_type for n in b.nodes], b.params
    (['GlobalAveragePool', 'IsNaN', 'Where', 'Clip', 'Conv', 'HardSigmoid', 'Mul', 'Mul'], 272)
"""

from __future__ import annotations

import zlib

import numpy as np
from onnx import TensorProto

from ...rule.config import SEConfig
from ..block import DTYPES, Builder, SEBlock, gate, finite, linear_init


def build_ese(block: str, x: str, channels: int, spatial_rank: int, config: SEConfig, opset: int,
              elem_type: int = TensorProto.FLOAT, seed: int = 0, output: str | None = None) -> SEBlock:
    """The eSE subgraph scaling value `x` (N×channels×spatial…); `output` names its result.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> b = build_ese("e", "x", 8, 1, SEConfig(block="ese", init="random", bias=False), opset=11)
        >>> [(t.name, list(t.dims)) for t in b.initializers if "fc" in t.name], b.output
        ([('e/fc.weight', [8, 8, 1])], 'e/scale_out')
    """
    out = Builder(block, DTYPES[elem_type])
    ones = (1,) * spatial_rank
    rng = np.random.default_rng([seed, zlib.crc32(block.encode())])
    weight, bias = linear_init(rng, channels, channels)
    identity = config.init == "identity"
    if identity:
        weight, bias = np.zeros_like(weight), np.zeros_like(bias)
    pooled = finite(out, out.node("squeeze", "GlobalAveragePool", [x]))
    inputs = [pooled, out.const("fc.weight", weight.reshape(channels, channels, *ones))]
    if config.bias:
        inputs.append(out.const("fc.bias", bias))
    s = out.node("fc", "Conv", inputs)
    s = gate(out, "gate", config.gate, s)
    if identity:
        s = out.node("gain", "Mul", [s, out.const("gain", np.array(2.0))])
    out.block.output = out.node("scale", "Mul", [x, s], output=output)
    out.block.params = channels * channels + (channels if config.bias else 0)
    return out.block
