"""SimAM as ONNX nodes (the torch block: seinject.torch.gates.simam), 1d/2d/3d.

    x ─┬─────────────────────────────────────────────────────────────────────────── Mul ──▶ y
       ├─ ReduceMean(spatial) → Sub → Mul (d = square) ─┐                               │
       │                           ReduceSum(spatial) → Div n → Add λ → Mul 4 → Div → Add 0.5 → finite → Sigmoid
       └─ Shape → Slice(2:) → ReduceProd → Sub 1 → Cast → Max 1 ─▶ n

n = max(positions − 1, 1) comes from the input's shape, so any spatial size works. (The Cast
comes before the Max: Max reads integers only from opset 12.)
init="identity": a scalar initializer `blend` α = 0 and y = x · (1 + α·(sigmoid(E⁻¹) − 1)),
exactly x; init="random": y = x · sigmoid(E⁻¹), no parameter.

Example:
    >>> from seinject.rule.config import SEConfig
    >>> b = build_simam("g", "x", 16, 2, SEConfig(block="simam"), opset=13)
    >>> b.nodes[-1].name, b.params
    ('g/scale', 1)
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ...rule.config import SEConfig
from ..block import DTYPES, Builder, SEBlock, finite
from . import ops

INT64_MAX = np.iinfo(np.int64).max


def build_simam(block: str, x: str, channels: int, spatial_rank: int, config: SEConfig, opset: int,
                elem_type: int = TensorProto.FLOAT, seed: int = 0, output: str | None = None) -> SEBlock:
    """The SimAM subgraph gating value `x` (N×channels×spatial…); `output` names its result.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> b = build_simam("g", "x", 8, 3, SEConfig(block="simam", init="random"), opset=11)
        >>> b.output, b.params, [n.op_type for n in b.nodes][-2:]
        ('g/scale_out', 0, ['Sigmoid', 'Mul'])
    """
    out = Builder(block, DTYPES[elem_type])
    axes = list(range(2, 2 + spatial_rank))
    mean = ops.reduce(out, "mean", "ReduceMean", x, axes, opset)
    centred = out.node("centre", "Sub", [x, mean])
    d = out.node("square", "Mul", [centred, centred])
    total = ops.reduce(out, "sum", "ReduceSum", d, axes, opset)

    shape = out.node("count.shape", "Shape", [x])
    dims = out.node("count.dims", "Slice", [shape, ops.int_const(out, "count.start", [2]),
                                            ops.int_const(out, "count.end", [INT64_MAX]),
                                            ops.int_const(out, "count.axes", [0])])
    positions = ops.reduce(out, "count.prod", "ReduceProd", dims, [0], opset)
    n = out.node("count.minus1", "Sub", [positions, ops.int_const(out, "count.one", [1])])
    n = out.node("count.cast", "Cast", [n], to=elem_type)
    n = out.node("count", "Max", [n, out.const("count.min", np.array(1.0))])

    v = out.node("variance", "Div", [total, n])
    denom = out.node("denom.lambda", "Add", [v, out.const("e_lambda", np.array(config.e_lambda))])
    denom = out.node("denom", "Mul", [denom, out.const("four", np.array(4.0))])
    energy = out.node("energy.div", "Div", [d, denom])
    energy = finite(out, out.node("energy", "Add", [energy, out.const("half", np.array(0.5))]))
    s = out.node("gate", "Sigmoid", [energy])
    if config.init == "identity":
        s = out.node("blend.sub", "Sub", [s, out.const("one", np.array(1.0))])
        s = out.node("blend.mul", "Mul", [s, out.const("blend", np.array(0.0))])
        s = out.node("blend", "Add", [s, out.const("one.add", np.array(1.0))])
    out.block.output = out.node("scale", "Mul", [x, s], output=output)
    out.block.params = 1 if config.init == "identity" else 0
    return out.block
