"""CBAM as ONNX nodes (the torch block: seinject.torch.gates.cbam), 1d/2d/3d.

    x ─┬──────────────────────────────────────────────────────────────────── Mul ──▶ x1
       ├─ GlobalAveragePool → Conv fc1 → act → finite → Conv fc2 ─┐               │
       └─ GlobalMaxPool     → Conv fc1 → act → finite → Conv fc2 ─┴─ Add → gate → ×gain
    x1 ─┬───────────────────────────────────────────────────────────────────────────── Mul ──▶ y
        └─ [ReduceMean(1), ReduceMax(1)] → Concat → Conv k → BatchNormalization → finite → gate → ×gain ─┘

fc1 and fc2 are 1×1 convs without bias, shared by the two paths (the same initializers); the
BatchNormalization is in inference form (running mean 0 and variance 1 at build time).
init="identity": fc2 zero, BatchNormalization scale and bias zero and gain 2, so both gates are
2·gate(0) = 1 and y equals x exactly; fc1 is |torch's default|. init="random": torch's default
init from the seeded generator, no gain nodes.

Example:
    >>> from seinject.rule.config import SEConfig
    >>> b = build_cbam("g", "x", 16, 2, SEConfig(block="cbam"), opset=13)
    >>> b.nodes[-1].name, b.params == SEConfig(block="cbam").added_parameters(16, 2)
    ('g/scale', True)
"""

from __future__ import annotations

import zlib

import numpy as np
from onnx import TensorProto

from ...rule.config import SEConfig
from ..block import DTYPES, Builder, SEBlock, gate, activation, finite
from . import ops

BN_EPS = 1e-5  # torch.nn.BatchNorm's default


class Branch:
    """A view of a Builder whose roles and constants get a suffix, so that a helper that names its
    nodes itself (seinject.onnx.block.activation, finite) can run once per branch of a block.

    Example:
        >>> b = Builder("g", np.float32)
        >>> activation(Branch(b, "avg"), "relu6", "x", 11), b.block.nodes[0].name
        ('g/act.avg_out', 'g/act.avg')
    """

    def __init__(self, out: Builder, suffix: str):
        self.out, self.suffix = out, suffix
        self.block, self.dtype = out.block, out.dtype

    def const(self, name: str, value: np.ndarray) -> str:
        return self.out.const(f"{name}.{self.suffix}", value)

    def node(self, role: str, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        return self.out.node(f"{role}.{self.suffix}", op_type, inputs, output=output, **attrs)


def conv_init(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """torch's default conv/linear weight init (kaiming uniform, a=√5): U(±1/√fan_in), fan_in = shape[1:].

    Example:
        >>> conv_init(np.random.default_rng(0), (1, 2, 7, 7)).shape
        (1, 2, 7, 7)
    """
    bound = 1.0 / np.sqrt(int(np.prod(shape[1:])))
    return rng.uniform(-bound, bound, shape)


def build_cbam(block: str, x: str, channels: int, spatial_rank: int, config: SEConfig, opset: int,
               elem_type: int = TensorProto.FLOAT, seed: int = 0, output: str | None = None) -> SEBlock:
    """The CBAM subgraph gating value `x` (N×channels×spatial…); `output` names its result.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> b = build_cbam("g", "x", 8, 1, SEConfig(block="cbam", init="random"), opset=18)
        >>> [n.op_type for n in b.nodes][-10:]
        ['ReduceMean', 'ReduceMax', 'Concat', 'Conv', 'BatchNormalization', 'IsNaN', 'Where', 'Clip', 'Sigmoid', 'Mul']
    """
    out = Builder(block, DTYPES[elem_type])
    hidden = config.hidden_channels(channels)
    k = config.spatial_kernel_size
    ones = (1,) * spatial_rank
    identity = config.init == "identity"
    rng = np.random.default_rng([seed, zlib.crc32(block.encode())])
    w1 = conv_init(rng, (hidden, channels))
    w2 = conv_init(rng, (channels, hidden))
    wc = conv_init(rng, (1, 2) + (k,) * spatial_rank)
    scale = np.ones(1)
    if identity:
        w1, w2, scale = np.abs(w1), np.zeros_like(w2), np.zeros(1)
    fc1 = out.const("fc1.weight", w1.reshape(hidden, channels, *ones))
    fc2 = out.const("fc2.weight", w2.reshape(channels, hidden, *ones))

    def mlp(pooled: str, path: str) -> str:
        h = out.node(f"fc1.{path}", "Conv", [pooled, fc1])
        h = finite(Branch(out, path), activation(Branch(out, path), config.act, h, opset))
        return out.node(f"fc2.{path}", "Conv", [h, fc2])

    a = out.node("channel.add", "Add", [mlp(out.node("squeeze.avg", "GlobalAveragePool", [x]), "avg"),
                                        mlp(out.node("squeeze.max", "GlobalMaxPool", [x]), "max")])
    s = gate(out, "channel.gate", config.gate, a)
    if identity:
        s = out.node("channel.gain", "Mul", [s, out.const("channel.gain", np.array(2.0))])
    x1 = out.node("channel.scale", "Mul", [x, s])

    pooled = out.node("spatial.pool", "Concat", [ops.reduce(out, "spatial.mean", "ReduceMean", x1, [1], opset),
                                                 ops.reduce(out, "spatial.max", "ReduceMax", x1, [1], opset)],
                      axis=1)
    m = out.node("spatial.conv", "Conv", [pooled, out.const("conv.weight", wc)],
                 kernel_shape=[k] * spatial_rank, pads=[k // 2] * (2 * spatial_rank))
    m = out.node("spatial.bn", "BatchNormalization",
                 [m, out.const("bn.weight", scale), out.const("bn.bias", np.zeros(1)),
                  out.const("bn.running_mean", np.zeros(1)), out.const("bn.running_var", np.ones(1))],
                 epsilon=BN_EPS)
    s = gate(out, "spatial.gate", config.gate, finite(Branch(out, "spatial"), m))
    if identity:
        s = out.node("spatial.gain", "Mul", [s, out.const("spatial.gain", np.array(2.0))])
    out.block.output = out.node("scale", "Mul", [x1, s], output=output)
    out.block.params = 2 * channels * hidden + 2 * k ** spatial_rank + 2
    return out.block
