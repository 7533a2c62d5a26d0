"""The global context block (GCNet) as ONNX nodes and initializers.

    x ─┬─ Conv 1×1 (C→1) → Reshape N×1×L → Softmax → Reshape N×L×1 ─┐
       ├─ Reshape N×C×L ───────────────────────────────────────── MatMul → Flatten: context (N×C)
       │     (use_attn false: GlobalAveragePool → Flatten)
       │  mlp: Gemm (C→h) → LayerNorm → act → finite → Gemm (h→C)
       └─ x · gain·Sigmoid(mlp_scale(context)) (fuse_scale), then + mlp_add(context) (fuse_add) ──▶ y

The order of the fusions is timm's GlobalContext: scale, then add; the last node (role
"scale") is the Add when fuse_add is on, else the Mul. Softmax runs on the last axis of an
N×1×L tensor, where its opset-11 form (coerced to 2-D at `axis`) agrees with the later one.
LayerNormalization exists from opset 17; before it the norm is ReduceMean, Sub, Mul, Add,
Sqrt, Div over the hidden axis. With init="identity" each mlp's second Gemm is zero (weight and
bias) and the scale gate has gain 2, so y = x·1 + 0 = x bit for bit; "finite" keeps a zero Gemm
at exactly 0 when the context overflows. With init="random" there is no gain node and every
layer gets torch's default init (nn.Linear: uniform in ±1/sqrt(fan_in); LayerNorm: 1 and 0)
from a seeded generator; initializers are named as seinject.torch.gates.gc.GlobalContext's
state dict ("<block>/mlp_add.fc1.weight", ...).

Example:
    >>> from seinject.rule.config import SEConfig
    >>> b = build_gc("gc", "x", 32, 2, SEConfig(block="gc", ratio=8), opset=17)
    >>> [n.op_type for n in b.nodes]   # doctest: +NORMALIZE_WHITESPACE
    ['Conv', 'Reshape', 'Softmax', 'Reshape', 'Reshape', 'MatMul', 'Flatten', 'Gemm', 'LayerNormalization',
     'Relu', 'IsNaN', 'Where', 'Clip', 'Gemm', 'Reshape', 'Add']
    >>> b.params == (32 + 1) + (32 * 4 + 4 + 2 * 4 + 4 * 32 + 32)   # conv_attn + one mlp
    True
"""

from __future__ import annotations

import zlib

import numpy as np
from onnx import TensorProto

from ...rule.config import SEConfig
from ..block import DTYPES, Builder, SEBlock, gate, activation, finite, linear_init
from .ops import int_const, reduce

EPS = 1e-6  # timm's LayerNorm2d


class _Prefixed:
    """A view of a Builder that prefixes roles and initializer names, so that shared helpers
    (activation, finite) can be emitted once per mlp without clashing names."""

    def __init__(self, out: Builder, prefix: str):
        self.out, self.prefix, self.dtype = out, prefix, out.dtype

    def const(self, name: str, value: np.ndarray) -> str:
        return self.out.const(f"{self.prefix}.{name}", value)

    def node(self, role: str, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        return self.out.node(f"{self.prefix}.{role}", op_type, inputs, output=output, **attrs)


def build_gc(block: str, x: str, channels: int, spatial_rank: int, config: SEConfig, opset: int,
             elem_type: int = TensorProto.FLOAT, seed: int = 0, output: str | None = None) -> SEBlock:
    """The global context subgraph on value `x` (N×channels×spatial…); `output` names its result.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> cfg = SEConfig(block="gc", use_attn=False, fuse_add=False, fuse_scale=True)
        >>> b = build_gc("g", "x", 16, 1, cfg, opset=11)
        >>> [n.op_type for n in b.nodes][-4:], b.output
        (['Sigmoid', 'Mul', 'Reshape', 'Mul'], 'g/scale_out')
    """
    out = Builder(block, DTYPES[elem_type])
    hidden = config.hidden_channels(channels)
    ones = [1] * spatial_rank
    rng = np.random.default_rng([seed, zlib.crc32(block.encode())])
    identity = config.init == "identity"
    map_shape = int_const(out, "map_shape", [0, channels] + ones)  # N×C → N×C×1…
    if config.use_attn:
        weight, bias = linear_init(rng, 1, channels)
        logits = out.node("attn", "Conv", [x, out.const("conv_attn.weight", weight.reshape(1, channels, *ones)),
                                           out.const("conv_attn.bias", bias)])
        logits = out.node("attn.row", "Reshape", [logits, int_const(out, "row_shape", [0, 1, -1])])  # N×1×L
        attn = out.node("attn.softmax", "Softmax", [logits], axis=2)
        attn = out.node("attn.column", "Reshape", [attn, int_const(out, "column_shape", [0, -1, 1])])  # N×L×1
        flat = out.node("flat", "Reshape", [x, int_const(out, "flat_shape", [0, channels, -1])])  # N×C×L
        context = out.node("context.sum", "MatMul", [flat, attn])  # N×C×1
    else:
        context = out.node("context.sum", "GlobalAveragePool", [x])
    context = out.node("context", "Flatten", [context], axis=1)  # N×C

    def mlp(name: str) -> str:
        w1, b1 = linear_init(rng, hidden, channels)
        w2, b2 = linear_init(rng, channels, hidden)
        if identity:
            w2, b2 = np.zeros_like(w2), np.zeros_like(b2)
        h = out.node(f"{name}.fc1", "Gemm", [context, out.const(f"{name}.fc1.weight", w1),
                                             out.const(f"{name}.fc1.bias", b1)], transB=1)
        h = _layer_norm(out, f"{name}.norm", h, hidden, opset)
        part = _Prefixed(out, name)
        h = finite(part, activation(part, config.act, h, opset))
        return out.node(f"{name}.fc2", "Gemm", [h, out.const(f"{name}.fc2.weight", w2),
                                                out.const(f"{name}.fc2.bias", b2)], transB=1)

    y = x
    if config.fuse_scale:
        s = mlp("mlp_scale")
        s = gate(out, "gate", config.gate, s)
        if identity:
            s = out.node("gain", "Mul", [s, out.const("gain", np.array(2.0))])
        s = out.node("gate.map", "Reshape", [s, map_shape])
        last = not config.fuse_add
        y = out.node("scale" if last else "fuse_scale", "Mul", [y, s], output=output if last else None)
    if config.fuse_add:
        a = out.node("mlp_add.map", "Reshape", [mlp("mlp_add"), map_shape])
        y = out.node("scale", "Add", [y, a], output=output)
    out.block.output = y
    mlp_params = channels * hidden + hidden + 2 * hidden + hidden * channels + channels
    out.block.params = (channels + 1 if config.use_attn else 0) + mlp_params * (config.fuse_add + config.fuse_scale)
    return out.block


def _layer_norm(out: Builder, role: str, h: str, hidden: int, opset: int) -> str:
    """torch.nn.LayerNorm(hidden, eps=1e-6) over axis 1 of an N×hidden tensor: LayerNormalization
    from opset 17, the same arithmetic from Reduce/elementwise ops before it."""
    gamma = out.const(f"{role}.weight", np.ones(hidden))
    beta = out.const(f"{role}.bias", np.zeros(hidden))
    if opset >= 17:
        return out.node(role, "LayerNormalization", [h, gamma, beta], axis=-1, epsilon=EPS)
    mean = reduce(out, f"{role}.mean", "ReduceMean", h, axes=[1], opset=opset)
    centred = out.node(f"{role}.sub", "Sub", [h, mean])
    square = out.node(f"{role}.square", "Mul", [centred, centred])
    var = reduce(out, f"{role}.var", "ReduceMean", square, axes=[1], opset=opset)
    var = out.node(f"{role}.add_eps", "Add", [var, out.const(f"{role}.eps", np.array(EPS))])
    std = out.node(f"{role}.std", "Sqrt", [var])
    normed = out.node(f"{role}.div", "Div", [centred, std])
    return out.node(role, "Add", [out.node(f"{role}.mul", "Mul", [normed, gamma]), beta])
