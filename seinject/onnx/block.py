"""The SE block as ONNX nodes and initializers, tagged so that seinject recognises it later.

    x ─┬──────────────────────────────────────────────────────────────────────────── Mul ──▶ y
       └─ GlobalAveragePool → Conv 1×1 (C→h) → act → finite → Conv 1×1 (h→C) → gate → ×gain ─┘

"finite" (IsNaN → Where → Clip) is torch.nan_to_num: a map near the dtype's limit can overflow
the squeeze, and the zero second conv must still give exactly 0, not 0·inf = NaN.
Only ops whose signature is stable from opset 11 on (GlobalAveragePool rather than
ReduceMean, Conv, Relu, IsNaN, Where, Clip with inputs, Sigmoid, HardSigmoid, Mul); the same nodes
serve 1d, 2d and 3d feature maps (the 1×1 kernels get one dim per spatial axis) and
any batch or spatial size. With init="identity" the second conv is zero and gain is 2:
the gate is 2·sigmoid(0) = 1 (or 2·hardsigmoid(0) = 1) and y equals x bit for bit.
With init="random" there is no gain node and both convs get torch.nn.Linear's
default init from a seeded generator.

Every node carries metadata {"seinject.block": <block>, "seinject.role": <role>} and is
named "<block>/<role>"; initializers are named "<block>/fc1.weight" and so on.

Example:
    >>> from seinject.rule.config import SEConfig
    >>> block = build_se("seinject/layer1.0.relu_1", "x", channels=64, spatial_rank=2,
    ...                  config=SEConfig(ratio=16), opset=17)
    >>> [n.op_type for n in block.nodes]
    ['GlobalAveragePool', 'Conv', 'Relu', 'IsNaN', 'Where', 'Clip', 'Conv', 'Sigmoid', 'Mul', 'Mul']
    >>> block.initializers[0].name, list(block.initializers[0].dims)
    ('seinject/layer1.0.relu_1/fc1.weight', [4, 64, 1, 1])
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..rule.config import SEConfig

TAG_BLOCK = "seinject.block"
TAG_ROLE = "seinject.role"
NAME_PREFIX = "seinject/"
DTYPES = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}


@dataclass
class SEBlock:
    """Nodes (in topological order) and initializers of one SE block, and its output name."""

    name: str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    output: str = ""
    params: int = 0


def build_se(block: str, x: str, channels: int, spatial_rank: int, config: SEConfig, opset: int,
             elem_type: int = TensorProto.FLOAT, seed: int = 0, output: str | None = None) -> SEBlock:
    """The SE subgraph scaling value `x` (N×channels×spatial…); `output` names its result.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> b = build_se("se", "x", 8, 1, SEConfig(ratio=4, init="random", act="silu"), opset=11)
        >>> [n.op_type for n in b.nodes], b.output
        (['GlobalAveragePool', 'Conv', 'Sigmoid', 'Mul', 'IsNaN', 'Where', 'Clip', 'Conv', 'Sigmoid', 'Mul'], 'se/scale_out')
    """
    dtype = DTYPES[elem_type]
    hidden = config.hidden_channels(channels)
    out = Builder(block, dtype)
    ones = (1,) * spatial_rank
    rng = np.random.default_rng([seed, zlib.crc32(block.encode())])
    w1, b1 = linear_init(rng, hidden, channels)
    w2, b2 = linear_init(rng, channels, hidden)
    if config.init == "identity":
        w2, b2 = np.zeros_like(w2), np.zeros_like(b2)
    pooled = out.node("squeeze", "GlobalAveragePool", [x])
    bias = (lambda name, value: [out.const(name, value)]) if config.bias else (lambda name, value: [])
    h = out.node("fc1", "Conv", [pooled, out.const("fc1.weight", w1.reshape(hidden, channels, *ones)),
                                 *bias("fc1.bias", b1)])
    h = finite(out, activation(out, config.act, h, opset))
    s = out.node("fc2", "Conv", [h, out.const("fc2.weight", w2.reshape(channels, hidden, *ones)),
                                 *bias("fc2.bias", b2)])
    s = gate(out, "gate", config.gate, s)
    if config.init == "identity":
        s = out.node("gain", "Mul", [s, out.const("gain", np.array(2.0))])
    out.block.output = out.node("scale", "Mul", [x, s], output=output)
    out.block.params = config.added_parameters(channels, spatial_rank)
    return out.block


def finite(out: "Builder", x: str) -> str:
    """NaN → 0 and ±inf → the largest finite values, as torch.nan_to_num in the torch block: a map
    near the dtype's limit can overflow the squeeze or fc1, and the zero fc2 of a block at identity
    must still give exactly 0 (0·inf would be NaN)."""
    big = np.finfo(out.dtype).max
    nan = out.node("finite.isnan", "IsNaN", [x])
    x = out.node("finite.where", "Where", [nan, out.const("finite.zero", np.array(0.0)), x])
    return out.node("finite", "Clip", [x, out.const("finite.min", np.array(-big)), out.const("finite.max", np.array(big))])


def linear_init(rng: np.random.Generator, fan_out: int, fan_in: int) -> tuple[np.ndarray, np.ndarray]:
    """torch.nn.Linear's default: weight and bias uniform in ±1/sqrt(fan_in).

    Example:
        >>> [a.shape for a in linear_init(np.random.default_rng(0), 4, 8)]
        [(4, 8), (4,)]
    """
    bound = 1.0 / np.sqrt(fan_in)
    return (rng.uniform(-bound, bound, (fan_out, fan_in)), rng.uniform(-bound, bound, (fan_out,)))


def activation(out: "Builder", act: str, x: str, opset: int) -> str:
    """x through one of SEConfig's activations, as torch computes it, with ops of this opset.

    Example:
        >>> b = Builder("blk", np.float32)
        >>> activation(b, "relu6", "x", 11), [n.op_type for n in b.block.nodes]
        ('blk/act_out', ['Clip'])
    """
    if act == "relu":
        return out.node("act", "Relu", [x])
    if act == "relu6":
        return out.node("act", "Clip", [x, out.const("act.min", np.array(0.0)),
                                        out.const("act.max", np.array(6.0))])
    if act == "silu":
        return out.node("act", "Mul", [x, out.node("act.sigmoid", "Sigmoid", [x])])
    if act == "hardswish":
        if opset >= 14:
            return out.node("act", "HardSwish", [x])
        gate = out.node("act.hardsigmoid", "HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
        return out.node("act", "Mul", [x, gate])
    # gelu: exact (erf) form, as torch.nn.GELU()
    if opset >= 20:
        return out.node("act", "Gelu", [x])
    scaled = out.node("act.div", "Div", [x, out.const("act.sqrt2", np.array(np.sqrt(2.0)))])
    erf = out.node("act.erf", "Erf", [scaled])
    plus = out.node("act.add", "Add", [erf, out.const("act.one", np.array(1.0))])
    half = out.node("act.half", "Mul", [x, out.const("act.half", np.array(0.5))])
    return out.node("act", "Mul", [half, plus])


def gate(out: Builder, role: str, name: str, x: str) -> str:
    """SEConfig's gate `name` (sigmoid, or torch's hardsigmoid relu6(x + 3) / 6) on x.

    Example:
        >>> b = Builder("g", np.float32)
        >>> gate(b, "gate", "hardsigmoid", "x"), b.block.nodes[0].op_type
        ('g/gate_out', 'HardSigmoid')
    """
    if name == "sigmoid":
        return out.node(role, "Sigmoid", [x])
    return out.node(role, "HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)


class Builder:
    """Collects one block's nodes and initializers, each named and tagged as part of the block.

    Example:
        >>> b = Builder("blk", np.float32)
        >>> b.node("scale", "Mul", ["x", b.const("gain", np.array(2.0))])
        'blk/scale_out'
    """

    def __init__(self, block: str, dtype):
        self.block = SEBlock(block)
        self.dtype = dtype

    def const(self, name: str, value: np.ndarray) -> str:
        full = f"{self.block.name}/{name}"
        self.block.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=self.dtype), full))
        return full

    def node(self, role: str, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        name = f"{self.block.name}/{role}"
        result = output or f"{name}_out"
        node = helper.make_node(op_type, inputs, [result], name=name, **attrs)
        for key, value in ((TAG_BLOCK, self.block.name), (TAG_ROLE, role)):
            entry = node.metadata_props.add()
            entry.key, entry.value = key, value
        self.block.nodes.append(node)
        return result


def se_tag(node: onnx.NodeProto) -> tuple[str, str] | None:
    """(block, role) when the node belongs to an SE block seinject inserted, else None.

    Reads the metadata tag, or failing that (a tool that drops node metadata) the name.

    Example:
        >>> import onnx.helper as h
        >>> se_tag(h.make_node("Mul", ["x", "s"], ["y"], name="seinject/layer1.0.relu_1/scale"))
        ('seinject/layer1.0.relu_1', 'scale')
    """
    if len(node.metadata_props):
        meta = {p.key: p.value for p in node.metadata_props}
        if TAG_BLOCK in meta:
            return meta[TAG_BLOCK], meta.get(TAG_ROLE, "")
    if node.name.startswith(NAME_PREFIX) and "/" in node.name[len(NAME_PREFIX):]:
        block, role = node.name.rsplit("/", 1)
        return block, role
    return None
