"""Label ONNX op types with the backend-neutral kinds of seinject.rule.kinds, and read their attrs.

The table below is the whole mapping; `classify` adds the facts rules test
(channels, groups, kernel, stride, the act/norm/pool fn of seinject.rule.kinds.FN_NAMES,
channel concat) from the node's attributes and the dims of its constant inputs.

Example:
    >>> import onnx.helper as h
    >>> classify(h.make_node("Relu", ["x"], ["y"]), {}, {})
    ('act', {'op_type': 'Relu', 'fn': 'relu'})
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
from onnx import numpy_helper

_TABLE = {
    "conv": ("Conv", "ConvTranspose"),
    "norm": ("BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
             "LpNormalization", "LRN", "MeanVarianceNormalization", "RMSNormalization"),
    "act": ("Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish",
            "Tanh", "Softplus", "Softsign", "Mish", "Gelu", "Clip", "ThresholdedRelu", "Swish"),
    "add": ("Add", "Sum"),
    "mul": ("Mul",),
    "concat": ("Concat",),
    "pool": ("MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"),
    "linear": ("Gemm", "MatMul"),
    "dropout": ("Dropout",),
    "identity": ("Identity",),
    "reshape": ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"),
    "shape": ("Shape", "Size"),
    "split": ("Split",),
}
KIND_OF = {op: kind for kind, ops in _TABLE.items() for op in ops}
ACT_FN = {"Relu": "relu", "LeakyRelu": "leaky_relu", "PRelu": "prelu", "Elu": "elu", "Selu": "selu",
          "Celu": "celu", "Sigmoid": "sigmoid", "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish",
          "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign", "Mish": "mish", "Gelu": "gelu",
          "ThresholdedRelu": "thresholded_relu", "Swish": "silu"}
NORM_FN = {"BatchNormalization": "batch_norm", "InstanceNormalization": "instance_norm",
           "LayerNormalization": "layer_norm", "GroupNormalization": "group_norm", "LpNormalization": "lp_norm",
           "LRN": "local_response_norm", "MeanVarianceNormalization": "mean_variance_norm",
           "RMSNormalization": "rms_norm"}
# GlobalLpPool is an LpPool whose kernel is the whole map: torch has no adaptive form of it.
POOL_FN = {"MaxPool": "max_pool", "AveragePool": "avg_pool", "LpPool": "lp_pool",
           "GlobalAveragePool": "adaptive_avg_pool", "GlobalMaxPool": "adaptive_max_pool",
           "GlobalLpPool": "lp_pool"}

# name -> TensorProto of a constant input; name -> (dims, elem_type) of any value
Constants = dict
Shapes = dict


def attrs_of(node: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes as Python values (graphs left out).

    Example:
        >>> import onnx.helper as h
        >>> attrs_of(h.make_node("Conv", ["x", "w"], ["y"], group=2, strides=[2, 2]))
        {'group': 2, 'strides': [2, 2]}
    """
    out = {}
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            continue
        out[attr.name] = onnx.helper.get_attribute_value(attr)
    return out


def classify(node: onnx.NodeProto, constants: Constants, shapes: Shapes) -> tuple[str, dict[str, Any]]:
    """(kind, attrs) of one node; constants maps input names to TensorProtos, shapes to (dims, type).

    Example:
        >>> import onnx.helper as h
        >>> from onnx import TensorProto
        >>> w = h.make_tensor("w", TensorProto.FLOAT, [16, 1, 3, 3], [0.0] * 144)
        >>> classify(h.make_node("Conv", ["x", "w"], ["y"], group=16), {"w": w}, {})[1]["in_channels"]
        16
    """
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    kind = KIND_OF.get(op, "other")
    attrs = attrs_of(node)
    handler = _HANDLERS.get(op)
    facts: dict[str, Any] = {"op_type": op}
    if handler is not None:
        kind, extra = handler(node, attrs, constants, shapes, kind)
        facts.update(extra)
    elif op in ACT_FN:
        facts["fn"] = ACT_FN[op]
    elif op in NORM_FN:
        facts["fn"] = NORM_FN[op]
    return kind, {k: v for k, v in facts.items() if v is not None}


def _dims(name: str, constants: Constants, shapes: Shapes) -> tuple | None:
    if name in constants:
        return tuple(constants[name].dims)
    entry = shapes.get(name)
    return entry[0] if entry else None


def _rank(name: str, shapes: Shapes) -> int | None:
    entry = shapes.get(name)
    return len(entry[0]) if entry and entry[0] is not None else None


def _value(name: str, constants: Constants) -> np.ndarray | None:
    tensor = constants.get(name)
    if tensor is None or tensor.data_location == onnx.TensorProto.EXTERNAL:
        return None
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # an odd tensor type: the fact is simply unknown
        return None


def _conv(node, attrs, constants, shapes, kind):
    weight = _dims(node.input[1], constants, shapes) if len(node.input) > 1 else None
    groups = int(attrs.get("group", 1))
    known = weight is not None and all(isinstance(d, int) for d in weight)
    transposed = node.op_type == "ConvTranspose"
    if known and transposed:
        out_ch, in_ch = weight[1] * groups, weight[0]
    elif known:
        out_ch, in_ch = weight[0], weight[1] * groups
    else:
        out_ch = in_ch = None
    kernel = attrs.get("kernel_shape") or (list(weight[2:]) if known else None)
    rank = len(kernel) if kernel else None
    stride = attrs.get("strides") or ([1] * rank if rank else None)
    return kind, {"out_channels": out_ch, "in_channels": in_ch, "groups": groups,
                  "kernel_size": tuple(kernel) if kernel else None,
                  "stride": tuple(stride) if stride else None, "transposed": transposed}


def _clip(node, attrs, constants, shapes, kind):
    if "min" in attrs or "max" in attrs:  # opset < 11
        low, high = attrs.get("min"), attrs.get("max")
    else:
        low = _scalar(node.input[1], constants) if len(node.input) > 1 and node.input[1] else None
        high = _scalar(node.input[2], constants) if len(node.input) > 2 and node.input[2] else None
    if low == 0 and high == 6:
        fn = "relu6"
    elif low == 0 and high is None:
        fn = "relu"
    else:
        fn = "hardtanh"
    return "act", {"fn": fn}


def _scalar(name: str, constants: Constants) -> float | None:
    value = _value(name, constants)
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def _pool(node, attrs, constants, shapes, kind):
    """A pool; MaxPool/AveragePool over the whole map is adaptive, as torch exports AdaptiveMaxPool2d(1)."""
    kernel = attrs.get("kernel_shape")
    stride = attrs.get("strides") or ([1] * len(kernel) if kernel else None)
    fn = POOL_FN[node.op_type]
    if fn in ("max_pool", "avg_pool") and _covers_map(node, attrs, kernel, shapes):
        fn = "adaptive_" + fn
    attrs = {"fn": fn, "kernel_size": tuple(kernel) if kernel else None, "stride": tuple(stride) if stride else None}
    if node.op_type.startswith("Global") or fn.startswith("adaptive_"):
        attrs["global_pool"] = True
    return kind, attrs


def _covers_map(node, attrs, kernel, shapes) -> bool:
    """True when the unpadded, undilated kernel spans the input's whole (known) spatial map."""
    dims = _dims(node.input[0], {}, shapes)
    if not kernel or not dims or len(dims) != len(kernel) + 2:
        return False
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    if any(attrs.get("pads", ())) or any(d != 1 for d in attrs.get("dilations", ())) or \
            (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) not in ("NOTSET", "VALID"):
        return False
    return list(dims[2:]) == list(kernel)


def _reduce(node, attrs, constants, shapes, kind):
    """ReduceMean/ReduceMax over every spatial axis with keepdims: a global pool."""
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = _value(node.input[1], constants)
        axes = None if value is None else [int(a) for a in value.reshape(-1)]
    rank = _rank(node.input[0], shapes)
    if axes is None or rank is None or rank < 3 or not attrs.get("keepdims", 1):
        return "other", {}
    if sorted(a % rank for a in axes) != list(range(2, rank)):
        return "other", {}
    fn = "adaptive_avg_pool" if node.op_type == "ReduceMean" else "adaptive_max_pool"
    return "pool", {"fn": fn, "global_pool": True}


def _concat(node, attrs, constants, shapes, kind):
    axis = int(attrs.get("axis", 0))
    if axis < 0:
        rank = _rank(node.output[0], shapes)
        axis = axis + rank if rank is not None else axis
    return kind, {"dim": axis, "channel_concat": axis == 1}


def _linear(node, attrs, constants, shapes, kind):
    weights = [i for i in node.input[1:2] if i in constants]
    if node.op_type == "MatMul" and not weights:
        return "other", {}
    dims = _dims(node.input[1], constants, shapes) if len(node.input) > 1 else None
    out = None
    if dims and len(dims) == 2:
        out = dims[0] if node.op_type == "Gemm" and attrs.get("transB", 0) else dims[-1]
    return kind, {"out_features": out}


def _transpose(node, attrs, constants, shapes, kind):
    """Transpose with its permutation (ONNX's default reverses the dims), so a permute to and from
    channels-last keeps the channel count as torch's x.permute does."""
    perm = attrs.get("perm")
    if perm is None:
        rank = _rank(node.input[0], shapes) if node.input else None
        perm = list(range(rank))[::-1] if rank is not None else None
    elif not isinstance(perm, (list, tuple)) or not all(isinstance(p, int) for p in perm):
        perm = None  # a malformed attribute: the layout is simply unknown
    return kind, {"perm": tuple(perm) if perm is not None else None}


def _sum(node, attrs, constants, shapes, kind):
    return ("add" if len(node.input) == 2 else "other"), {}


def _split(node, attrs, constants, shapes, kind):
    """Split along `axis`: the part sizes when the 'split' attribute or input gives them."""
    axis = int(attrs.get("axis", 0))
    if axis < 0:
        rank = _rank(node.input[0], shapes)
        axis = axis + rank if rank is not None else axis
    sizes = attrs.get("split")
    if sizes is None and len(node.input) > 1 and node.input[1]:
        value = _value(node.input[1], constants)
        sizes = None if value is None else [int(s) for s in value.reshape(-1)]
    return kind, {"dim": axis, "sizes": tuple(sizes) if sizes else None, "parts": len(node.output)}


_HANDLERS: dict[str, Callable] = {
    "Conv": _conv, "ConvTranspose": _conv, "Clip": _clip,
    "MaxPool": _pool, "AveragePool": _pool, "LpPool": _pool, "GlobalAveragePool": _pool,
    "GlobalMaxPool": _pool, "GlobalLpPool": _pool,
    "ReduceMean": _reduce, "ReduceMax": _reduce, "Concat": _concat, "Gemm": _linear, "MatMul": _linear,
    "Sum": _sum, "Split": _split, "Transpose": _transpose,
}
