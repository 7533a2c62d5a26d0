"""The ONNX subgraph builder of every gate type, by name (seinject.rule.gates lists the types).

Every builder has build_se's signature and contract (seinject.onnx.block): nodes tagged with
the block name, in topological order; the block reads `x` and only `x` from the model; its
last node has role "scale" and writes the block's output (named `output` when given).

Example:
    >>> from seinject.rule.config import SEConfig
    >>> b = build_gate("g", "x", 16, 2, SEConfig(block="se"), opset=17)
    >>> b.nodes[-1].name
    'g/scale'
"""

from __future__ import annotations

import importlib

from onnx import TensorProto

from ...rule.config import SEConfig
from ..block import SEBlock

BUILDERS = {
    "se": "seinject.onnx.block:build_se",
    "ese": "seinject.onnx.gates.ese:build_ese",
    "eca": "seinject.onnx.gates.eca:build_eca",
    "cbam": "seinject.onnx.gates.cbam:build_cbam",
    "gc": "seinject.onnx.gates.gc:build_gc",
    "coord": "seinject.onnx.gates.coord:build_coord",
    "simam": "seinject.onnx.gates.simam:build_simam",
}


def build_gate(block: str, x: str, channels: int, spatial_rank: int, config: SEConfig, opset: int,
               elem_type: int = TensorProto.FLOAT, seed: int = 0, output: str | None = None) -> SEBlock:
    """The subgraph of config.block scaling value `x` (N×channels×spatial…).

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> build_gate("g", "x", 8, 1, SEConfig(), opset=11).output
        'g/scale_out'
    """
    module, name = BUILDERS[config.block].split(":")
    builder = getattr(importlib.import_module(module), name)
    return builder(block, x, channels, spatial_rank, config, opset, elem_type, seed, output)
