"""The backend-neutral op vocabulary that rules are written in.

Both backends label every op with one of these kinds, so a YAML rule means the
same on a torch.fx graph and on an ONNX graph (nn.Conv2d, F.conv2d and ONNX Conv
are all "conv"; `+`, `+=`, torch.add, Tensor.add_ and ONNX Add are all "add").
Ops of kind act, norm and pool also carry an `fn` from FN_NAMES, again one word
for every form of the op (nn.MaxPool2d, F.max_pool2d and ONNX MaxPool are all
"max_pool"); FN_ALIASES lists other spellings rules may use.

Example:
    >>> "conv" in KINDS
    True
"""

from __future__ import annotations

KINDS = (
    "conv",      # convolution, any dimensionality, grouped/depthwise/transposed
    "norm",      # batch/group/layer/instance/... norm (attr fn: batch_norm, layer_norm, ...)
    "act",       # element-wise activation (attr fn: relu, silu, ...)
    "add",       # element-wise addition (attr residual when it joins a branch and a shortcut)
    "mul",       # element-wise multiplication
    "concat",    # concatenation (attr channel_concat when along the channel dim)
    "split",     # one part of a split (torch chunk/split, ONNX Split): attrs dim, index
    "pool",      # max/avg/lp pooling, adaptive or not (attr fn: max_pool, adaptive_avg_pool, ...)
    "linear",    # fully connected / Gemm / MatMul with weights
    "dropout",   # dropout, drop-path: identity at inference
    "identity",  # nn.Identity and friends
    "reshape",   # view/reshape/flatten/permute/transpose: changes layout
    "shape",     # reads a shape (x.size(), x.shape); not a feature map
    "se",        # an SE block already in the model
    "input",     # a graph input
    "other",     # anything else
)

# Kinds whose output has the layout and channel count of their first input.
PASS_THROUGH = frozenset({"norm", "act", "dropout", "identity", "pool", "se"})
# Kinds whose output is never a feature map that SE could scale.
NOT_DATA = frozenset({"shape"})

# The `fn` vocabulary: the op a kind's element computes, the same word on every backend.
# Each name lists its torch module, torch functional and ONNX forms.
FN_NAMES: dict[str, tuple[str, ...]] = {
    "act": (
        "relu",              # nn.ReLU, F.relu, Tensor.relu; ONNX Relu, Clip(min=0)
        "relu6",             # nn.ReLU6, F.relu6; ONNX Clip(0, 6)
        "leaky_relu",        # nn.LeakyReLU, F.leaky_relu; ONNX LeakyRelu
        "prelu",             # nn.PReLU, F.prelu; ONNX PRelu
        "elu",               # nn.ELU, F.elu; ONNX Elu
        "selu",              # nn.SELU, F.selu; ONNX Selu
        "celu",              # nn.CELU, F.celu; ONNX Celu
        "gelu",              # nn.GELU, F.gelu; ONNX Gelu (opset 20)
        "silu",              # nn.SiLU, F.silu; ONNX Swish (opset 24), x·Sigmoid(x)
        "mish",              # nn.Mish, F.mish; ONNX Mish (opset 18)
        "hardswish",         # nn.Hardswish, F.hardswish; ONNX HardSwish (opset 14), x·HardSigmoid(x)
        "sigmoid",           # nn.Sigmoid, torch.sigmoid, Tensor.sigmoid; ONNX Sigmoid
        "hardsigmoid",       # nn.Hardsigmoid, F.hardsigmoid; ONNX HardSigmoid
        "tanh",              # nn.Tanh, torch.tanh, Tensor.tanh; ONNX Tanh
        "softplus",          # nn.Softplus, F.softplus; ONNX Softplus
        "softsign",          # nn.Softsign, F.softsign; ONNX Softsign
        "hardtanh",          # nn.Hardtanh, F.hardtanh; ONNX Clip with other bounds
        "thresholded_relu",  # ONNX ThresholdedRelu only: torch has no such op
    ),
    "norm": (
        "batch_norm",           # nn.BatchNorm1d/2d/3d, nn.SyncBatchNorm, F.batch_norm; ONNX BatchNormalization
        "group_norm",           # nn.GroupNorm, F.group_norm; ONNX GroupNormalization (opset 18)
        "layer_norm",           # nn.LayerNorm, F.layer_norm; ONNX LayerNormalization (opset 17)
        "instance_norm",        # nn.InstanceNorm1d/2d/3d, F.instance_norm; ONNX InstanceNormalization
        "local_response_norm",  # nn.LocalResponseNorm, F.local_response_norm; ONNX LRN
        "rms_norm",             # nn.RMSNorm, F.rms_norm; ONNX RMSNormalization (opset 23)
        "lp_norm",              # ONNX LpNormalization only (F.normalize is not exported as one op)
        "mean_variance_norm",   # ONNX MeanVarianceNormalization only
    ),
    "pool": (
        "max_pool",           # nn.MaxPool1d/2d/3d, F.max_pool1d/2d/3d; ONNX MaxPool
        "avg_pool",           # nn.AvgPool1d/2d/3d, F.avg_pool1d/2d/3d; ONNX AveragePool
        "lp_pool",            # nn.LPPool1d/2d/3d, F.lp_pool1d/2d/3d; ONNX LpPool, GlobalLpPool
        # adaptive: nn.Adaptive{Avg,Max}Pool1d/2d/3d, F.adaptive_{avg,max}_pool*d; in ONNX a
        # GlobalAveragePool/GlobalMaxPool, ReduceMean/ReduceMax over all spatial axes, or an
        # AveragePool/MaxPool whose kernel spans the whole known map (torch's export of size 1)
        "adaptive_avg_pool",
        "adaptive_max_pool",
    ),
}

# Other spellings a rule may use; the loader stores the canonical name they stand for.
FN_ALIASES: dict[str, str] = {
    "hard_swish": "hardswish", "hard_sigmoid": "hardsigmoid", "hard_tanh": "hardtanh",
    "swish": "silu", "leakyrelu": "leaky_relu", "soft_plus": "softplus", "soft_sign": "softsign",
    "batch_norm1d": "batch_norm", "batch_norm2d": "batch_norm", "batch_norm3d": "batch_norm",
    "sync_batch_norm": "batch_norm", "instance_norm1d": "instance_norm",
    "instance_norm2d": "instance_norm", "instance_norm3d": "instance_norm",
    "lrn": "local_response_norm", "rmsnorm": "rms_norm",
    "max_pool1d": "max_pool", "max_pool2d": "max_pool", "max_pool3d": "max_pool",
    "avg_pool1d": "avg_pool", "avg_pool2d": "avg_pool", "avg_pool3d": "avg_pool",
    "lp_pool1d": "lp_pool", "lp_pool2d": "lp_pool", "lp_pool3d": "lp_pool", "adaptive_lp_pool": "lp_pool",
    "adaptive_avg_pool1d": "adaptive_avg_pool", "adaptive_avg_pool2d": "adaptive_avg_pool",
    "adaptive_avg_pool3d": "adaptive_avg_pool", "global_avg_pool": "adaptive_avg_pool",
    "adaptive_max_pool1d": "adaptive_max_pool", "adaptive_max_pool2d": "adaptive_max_pool",
    "adaptive_max_pool3d": "adaptive_max_pool", "global_max_pool": "adaptive_max_pool",
}


def canonical_fn(name: str) -> str:
    """The vocabulary's name for `name`: an alias becomes its canonical name, anything else is unchanged.

    Example:
        >>> canonical_fn("hard_swish"), canonical_fn("max_pool2d"), canonical_fn("relu")
        ('hardswish', 'max_pool', 'relu')
    """
    return FN_ALIASES.get(name, name)


def fn_names(kinds: "tuple[str, ...] | list[str]") -> tuple[str, ...]:
    """The `fn` names valid for an element of these kinds; () when none of them has an fn.

    Example:
        >>> fn_names(("pool",))
        ('max_pool', 'avg_pool', 'lp_pool', 'adaptive_avg_pool', 'adaptive_max_pool')
        >>> fn_names(("conv", "add"))
        ()
    """
    return tuple(name for kind in kinds for name in FN_NAMES.get(kind, ()))
