"""The ECA block (efficient channel attention) as ONNX nodes and initializers.

    x ─┬─────────────────────────────────────────────────────────────────────────── Mul ──▶ y
       └─ GlobalAveragePool → finite → Reshape N×1×C → Conv 1-D (k taps) → Reshape N×C×1… → Sigmoid → ×gain ─┘

The k-tap convolution runs across the channel axis of the pooled vector (k from
seinject.rule.gates.eca_kernel_size, padding (k-1)/2 each side, no bias). With
init="identity" its weight is zero and gain is 2: the gate is 2·sigmoid(0) = 1 and y equals
x bit for bit. With init="random" there is no gain node and the weight gets torch.nn.Conv1d's
default init (uniform in ±1/sqrt(k)) from a seeded generator.

Example:
    >>> from seinject.rule.config import SEConfig
    >>> b = build_eca("eca", "x", 256, 2, SEConfig(block="eca"), opset=17)
    >>> [n.op_type for n in b.nodes], b.params
    (['GlobalAveragePool', 'IsNaN', 'Where', 'Clip', 'Reshape', 'Conv', 'Reshape', 'Sigmoid', 'Mul', 'Mul'], 5)
"""

from __future__ import annotations

import zlib

import numpy as np
from onnx import TensorProto

from ...rule.config import SEConfig
from ...rule.gates import eca_kernel_size
from ..block import DTYPES, Builder, SEBlock, gate, finite
from .ops import int_const


def build_eca(block: str, x: str, channels: int, spatial_rank: int, config: SEConfig, opset: int,
              elem_type: int = TensorProto.FLOAT, seed: int = 0, output: str | None = None) -> SEBlock:
    """The ECA subgraph scaling value `x` (N×channels×spatial…); `output` names its result.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> b = build_eca("e", "x", 64, 1, SEConfig(block="eca", kernel_size=7), opset=11)
        >>> [(t.name, list(t.dims)) for t in b.initializers if t.name.endswith("weight")], b.output
        ([('e/conv.weight', [1, 1, 7])], 'e/scale_out')
    """
    out = Builder(block, DTYPES[elem_type])
    k = eca_kernel_size(channels, config)
    rng = np.random.default_rng([seed, zlib.crc32(block.encode())])
    bound = 1.0 / np.sqrt(k)  # torch's Conv1d default: fan_in = in_channels·k = k
    weight = rng.uniform(-bound, bound, (1, 1, k))
    identity = config.init == "identity"
    if identity:
        weight = np.zeros_like(weight)
    pooled = finite(out, out.node("squeeze", "GlobalAveragePool", [x]))
    row = out.node("to_row", "Reshape", [pooled, int_const(out, "row_shape", [0, 1, -1])])  # N×1×C
    pad = (k - 1) // 2
    s = out.node("conv", "Conv", [row, out.const("conv.weight", weight)], kernel_shape=[k], pads=[pad, pad])
    s = out.node("to_channels", "Reshape", [s, int_const(out, "channel_shape", [0, channels] + [1] * spatial_rank)])
    s = gate(out, "gate", config.gate, s)
    if identity:
        s = out.node("gain", "Mul", [s, out.const("gain", np.array(2.0))])
    out.block.output = out.node("scale", "Mul", [x, s], output=output)
    out.block.params = k
    return out.block
