"""Ops whose signature changed between opsets, emitted in the form the model's opset reads.

Example:
    >>> import numpy as np
    >>> from seinject.onnx.block import Builder
    >>> b = Builder("g", np.float32)
    >>> _ = reduce(b, "pool", "ReduceMean", "x", axes=[2, 3], opset=18)
    >>> [n.op_type for n in b.block.nodes], list(b.block.nodes[0].input)
    (['ReduceMean'], ['x', 'g/pool.axes'])
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ..block import Builder

# opset from which each reduce op reads its axes as an input instead of an attribute
AXES_AS_INPUT = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18,
                 "ReduceL2": 18, "ReduceSumSquare": 18}


def int_const(out: Builder, name: str, values) -> str:
    """An int64 initializer of the block (axes, shapes, split sizes).

    Example:
        >>> b = Builder("g", np.float32)
        >>> int_const(b, "shape", [0, 1, -1])
        'g/shape'
    """
    full = f"{out.block.name}/{name}"
    out.block.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), full))
    return full


def reduce(out: Builder, role: str, op_type: str, x: str, axes: list[int], opset: int, keepdims: int = 1) -> str:
    """A Reduce* node over `axes`, with axes as an attribute or an input as the opset wants.

    Example:
        >>> b = Builder("g", np.float32)
        >>> _ = reduce(b, "m", "ReduceMax", "x", axes=[1], opset=11)
        >>> from onnx.helper import get_attribute_value
        >>> [(a.name, get_attribute_value(a)) for a in b.block.nodes[0].attribute]
        [('axes', [1]), ('keepdims', 1)]
    """
    if opset >= AXES_AS_INPUT[op_type]:
        return out.node(role, op_type, [x, int_const(out, f"{role}.axes", axes)], keepdims=keepdims)
    return out.node(role, op_type, [x], axes=list(axes), keepdims=keepdims)
