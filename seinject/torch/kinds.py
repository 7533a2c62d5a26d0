"""Label torch modules, functions and methods with the op kinds of seinject.rule.kinds.

Example:
    >>> import torch.nn as nn
    >>> classify_module(nn.Conv2d(8, 8, 3, groups=8))[0]
    'conv'
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..suggest import short
from .block import SqueezeExcite
from .calls import GUARDS
from .gates.base import Gate

# Module class -> (kind, fn), fn from seinject.rule.kinds.FN_NAMES. Looked up along the
# class's MRO, so ReLU6 (a Hardtanh subclass) is relu6 and SyncBatchNorm is batch_norm.
_ACT_MODULES = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky_relu", nn.PReLU: "prelu", nn.ELU: "elu",
    nn.SELU: "selu", nn.CELU: "celu", nn.GELU: "gelu", nn.SiLU: "silu", nn.Mish: "mish",
    nn.Hardswish: "hardswish", nn.Sigmoid: "sigmoid", nn.Hardsigmoid: "hardsigmoid", nn.Tanh: "tanh",
    nn.Softplus: "softplus", nn.Softsign: "softsign", nn.Hardtanh: "hardtanh",
}
_NORM_MODULES = {
    nn.modules.batchnorm._BatchNorm: "batch_norm", nn.GroupNorm: "group_norm", nn.LayerNorm: "layer_norm",
    nn.modules.instancenorm._InstanceNorm: "instance_norm", nn.LocalResponseNorm: "local_response_norm",
}
if hasattr(nn, "RMSNorm"):  # torch >= 2.4
    _NORM_MODULES[nn.RMSNorm] = "rms_norm"
_POOL_MODULES = {
    nn.modules.pooling._MaxPoolNd: "max_pool", nn.modules.pooling._AvgPoolNd: "avg_pool",
    nn.modules.pooling._LPPoolNd: "lp_pool", nn.modules.pooling._AdaptiveAvgPoolNd: "adaptive_avg_pool",
    nn.modules.pooling._AdaptiveMaxPoolNd: "adaptive_max_pool",
}
MODULE_FN: dict[type, tuple[str, str]] = {
    **{cls: ("act", fn) for cls, fn in _ACT_MODULES.items()},
    **{cls: ("norm", fn) for cls, fn in _NORM_MODULES.items()},
    **{cls: ("pool", fn) for cls, fn in _POOL_MODULES.items()},
}
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_KNOWN_OPS = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.dropout._DropoutNd, nn.Identity, nn.Flatten,
              nn.Unflatten)


# Op classes of other libraries that do not subclass torch.nn's, by class name: torchvision's,
# detectron2's and timm's FrozenBatchNorm2d (a BatchNorm with fixed statistics, used in the
# backbones of pretrained detectors)
NAMED_MODULE_FN = {"FrozenBatchNorm2d": ("norm", "batch_norm")}
# timm's EvoNorm2dB0/B1/B2/S0/S0a/S1/S1a/S2/S2a (by class name prefix): a norm and its activation
# in one module, seen as a norm op then an act op whatever its forward (and its act child) does
FUSED_NORM_ACT_PREFIX = "EvoNorm"


@functools.lru_cache(maxsize=None)
def _module_fn(cls: type) -> tuple[str, str] | None:
    found = next((MODULE_FN[base] for base in cls.__mro__ if base in MODULE_FN), None)
    if found is None and cls.__name__.startswith(FUSED_NORM_ACT_PREFIX):
        return "norm", ""  # no `fn` word: no torch.nn, functional or ONNX op computes it
    return found or NAMED_MODULE_FN.get(cls.__name__)


def _fused_norm_act(module: nn.Module) -> bool:
    return type(module).__name__.startswith(FUSED_NORM_ACT_PREFIX) and _module_fn(type(module)) == ("norm", "")


# SE/channel-attention modules of other libraries (torchvision, timm, common repos):
# seen as one op of kind "se", so rules count the blocks that already have one.
FOREIGN_SE_CLASSES = frozenset({"SqueezeExcitation", "SqueezeExcite", "SEModule", "SELayer",
                                "SEBlock", "EffectiveSEModule", "EcaModule", "CecaModule", "CbamModule",
                                "LightCbamModule", "GatherExcite", "CoordAttn"})


# classes users registered as channel attention (seinject.register_se_class): names and classes
_REGISTERED: set = set()


def register_se_class(*classes: "type | str") -> None:
    """Count modules of these classes (or class names) as SE the model already has: rules skip sites
    they already scale and never put blocks inside them. Modules that compute x · gate(f(pool(x)))
    are recognised by their structure without this; it is for attention modules of other forms.

    Example:
        >>> class MyAttention(nn.Module):
        ...     def forward(self, x): return x
        >>> register_se_class(MyAttention); is_se_module(MyAttention())
        True
    """
    for item in classes:
        if not (isinstance(item, str) or isinstance(item, type) and issubclass(item, nn.Module)):
            raise ConfigError(f"register_se_class takes nn.Module classes or class names, got {short(item)}")
        _REGISTERED.add(item)


def is_se_module(module: nn.Module) -> bool:
    """True for seinject's SqueezeExcite, the SE modules of torchvision and timm, and registered classes.

    Example:
        >>> is_se_module(SqueezeExcite(8)), is_se_module(nn.ReLU())
        (True, False)
    """
    cls = type(module)
    return isinstance(module, Gate) or cls.__name__ in FOREIGN_SE_CLASSES or bool(_REGISTERED) and (
        cls.__name__ in _REGISTERED or any(isinstance(k, type) and isinstance(module, k) for k in _REGISTERED))


def is_structural_leaf(module: nn.Module) -> bool:
    """Modules seen as single ops: torch.nn built-ins (not containers), SE blocks, and instances of a
    known op class (conv, linear, norm, activation, pool, ...) from any library that have no children
    of their own: timm's weight-standardised StdConv2d is a conv whatever its forward does, while a
    norm-act module (a BatchNorm2d subclass holding an activation child) is traced.

    Example:
        >>> class StdConv(nn.Conv2d):
        ...     def forward(self, x):  # weight standardisation: not traceable as written in timm
        ...         return super().forward(x)
        >>> is_structural_leaf(nn.ReLU()), is_structural_leaf(nn.Sequential()), is_structural_leaf(StdConv(3, 8, 3))
        (True, False, True)
    """
    if is_se_module(module):
        return True
    if isinstance(module, _CONTAINERS):
        return False
    if type(module).__module__.startswith("torch.nn"):
        return True
    return is_known_op(module) and (not module._modules or _fused_norm_act(module))


def is_known_op(module: nn.Module) -> bool:
    """Whether the module is an instance of an op class seinject classifies by its attributes.

    Example:
        >>> is_known_op(nn.Conv1d(2, 2, 1)), is_known_op(nn.Sequential())
        (True, False)
    """
    return isinstance(module, _KNOWN_OPS) or _module_fn(type(module)) is not None


def classify_module(module: nn.Module) -> tuple[str, dict[str, Any]]:
    """(kind, attrs) of a leaf module call.

    Example:
        >>> classify_module(nn.ReLU6())
        ('act', {'fn': 'relu6'})
    """
    if isinstance(module, Gate):
        return "se", {"channels": module.channels, "block": module.block_type}
    if is_se_module(module):
        return "se", {"foreign": type(module).__name__}
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv", {"in_channels": module.in_channels, "out_channels": module.out_channels,
                        "groups": module.groups, "kernel_size": tuple(module.kernel_size),
                        "stride": tuple(module.stride), "transposed": module.transposed}
    found = _module_fn(type(module))
    if found is not None and found[0] == "pool":
        stride = getattr(module, "stride", None)
        attrs = {"stride": _tuple(stride) if stride is not None else None, "fn": found[1]}
        if found[1].startswith("adaptive_") and _all_ones(getattr(module, "output_size", None)):
            attrs["global_pool"] = True
        return "pool", attrs
    if found is not None and _fused_norm_act(module):
        # the view emits the act op after the norm op (apply_act=False: the norm alone)
        return "norm", {"type": type(module).__name__, "fused_act": getattr(module, "apply_act", True) is not False}
    if found is not None:
        return found[0], {"fn": found[1]}
    if isinstance(module, nn.Linear):
        return "linear", {"out_features": module.out_features}
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return "dropout", {}
    if isinstance(module, nn.Identity):
        return "identity", {}
    if isinstance(module, (nn.Flatten, nn.Unflatten)):
        return "reshape", {}
    if isinstance(module, nn.Upsample):  # UpsamplingNearest2d and UpsamplingBilinear2d too
        return "other", {"type": type(module).__name__, "resample": _upsample(module.scale_factor, module.size)}
    return "other", {"type": type(module).__name__}


def _all_ones(size: Any) -> bool:
    """An adaptive pool's output_size of 1 in every dim (None keeps that dim: not global)."""
    sizes = _tuple(size) if isinstance(size, (int, tuple, list)) else None
    return bool(sizes) and all(s == 1 for s in sizes)


def _upsample(scale: Any, size: Any) -> Any:
    """An upsample's factor per dim ((2,) for a scalar 2), or "size" when it resizes to a fixed size."""
    if size is not None:
        return "size"
    if isinstance(scale, (int, float)):
        return (float(scale),)
    if isinstance(scale, (tuple, list)) and all(isinstance(s, (int, float)) for s in scale):
        return tuple(float(s) for s in scale)
    return "size"


def _tuple(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),)


_FUNCTIONS: dict[Any, tuple[str, str | None]] = {
    F.conv1d: ("conv", None), F.conv2d: ("conv", None), F.conv3d: ("conv", None),
    torch.conv1d: ("conv", None), torch.conv2d: ("conv", None), torch.conv3d: ("conv", None),
    F.batch_norm: ("norm", "batch_norm"), torch.batch_norm: ("norm", "batch_norm"),
    F.layer_norm: ("norm", "layer_norm"), torch.layer_norm: ("norm", "layer_norm"),
    F.group_norm: ("norm", "group_norm"), torch.group_norm: ("norm", "group_norm"),
    F.instance_norm: ("norm", "instance_norm"), torch.instance_norm: ("norm", "instance_norm"),
    F.local_response_norm: ("norm", "local_response_norm"),
    F.relu: ("act", "relu"), torch.relu: ("act", "relu"), F.relu_: ("act", "relu"),
    torch.relu_: ("act", "relu"), F.relu6: ("act", "relu6"),
    F.leaky_relu: ("act", "leaky_relu"), F.leaky_relu_: ("act", "leaky_relu"),
    F.prelu: ("act", "prelu"), torch.prelu: ("act", "prelu"),
    F.elu: ("act", "elu"), F.elu_: ("act", "elu"),
    F.selu: ("act", "selu"), torch.selu: ("act", "selu"), torch.selu_: ("act", "selu"),
    F.celu: ("act", "celu"), torch.celu: ("act", "celu"), torch.celu_: ("act", "celu"),
    F.gelu: ("act", "gelu"), F.silu: ("act", "silu"), F.mish: ("act", "mish"),
    F.hardswish: ("act", "hardswish"),
    F.sigmoid: ("act", "sigmoid"), torch.sigmoid: ("act", "sigmoid"), torch.sigmoid_: ("act", "sigmoid"),
    F.hardsigmoid: ("act", "hardsigmoid"),
    F.tanh: ("act", "tanh"), torch.tanh: ("act", "tanh"), torch.tanh_: ("act", "tanh"),
    F.softplus: ("act", "softplus"), F.softsign: ("act", "softsign"),
    F.hardtanh: ("act", "hardtanh"), F.hardtanh_: ("act", "hardtanh"),
    operator.add: ("add", None), operator.iadd: ("add", None), torch.add: ("add", None),
    operator.mul: ("mul", None), operator.imul: ("mul", None), torch.mul: ("mul", None),
    torch.cat: ("concat", None), torch.concat: ("concat", None),
    F.max_pool1d: ("pool", "max_pool"), F.max_pool2d: ("pool", "max_pool"),
    F.max_pool3d: ("pool", "max_pool"), F.avg_pool1d: ("pool", "avg_pool"),
    F.avg_pool2d: ("pool", "avg_pool"), F.avg_pool3d: ("pool", "avg_pool"),
    F.adaptive_avg_pool1d: ("pool", "adaptive_avg_pool"), F.adaptive_avg_pool2d: ("pool", "adaptive_avg_pool"),
    F.adaptive_avg_pool3d: ("pool", "adaptive_avg_pool"), torch.adaptive_avg_pool1d: ("pool", "adaptive_avg_pool"),
    F.adaptive_max_pool1d: ("pool", "adaptive_max_pool"), F.adaptive_max_pool2d: ("pool", "adaptive_max_pool"),
    F.adaptive_max_pool3d: ("pool", "adaptive_max_pool"), torch.adaptive_max_pool1d: ("pool", "adaptive_max_pool"),
    F.lp_pool1d: ("pool", "lp_pool"), F.lp_pool2d: ("pool", "lp_pool"),
    torch.max_pool1d: ("pool", "max_pool"), torch.max_pool2d: ("pool", "max_pool"),
    torch.max_pool3d: ("pool", "max_pool"), torch.avg_pool1d: ("pool", "avg_pool"),
    F.dropout: ("dropout", None), F.dropout1d: ("dropout", None), F.dropout2d: ("dropout", None),
    F.dropout3d: ("dropout", None),
    torch.flatten: ("reshape", None), torch.reshape: ("reshape", None), torch.permute: ("reshape", None),
    torch.transpose: ("reshape", None), F.linear: ("linear", None), getattr: ("shape", None),
    torch.chunk: ("split", None), torch.split: ("split", None),
    F.pad: ("identity", None),  # a pad of zeros everywhere (Hugging Face's TF padding of a 1×1 conv); else other
    # the checks a rewritten forward makes on the values its trace fixed: they read no tensor data
    **{guard: ("shape", None) for guard in GUARDS},
}
if hasattr(torch, "concatenate"):
    _FUNCTIONS[torch.concatenate] = ("concat", None)
if hasattr(F, "lp_pool3d"):  # torch >= 2.2
    _FUNCTIONS[F.lp_pool3d] = ("pool", "lp_pool")
if hasattr(F, "rms_norm"):  # torch >= 2.4
    _FUNCTIONS.update({F.rms_norm: ("norm", "rms_norm"), torch.rms_norm: ("norm", "rms_norm")})

_METHODS: dict[str, tuple[str, str | None]] = {
    "relu": ("act", "relu"), "relu_": ("act", "relu"), "sigmoid": ("act", "sigmoid"),
    "sigmoid_": ("act", "sigmoid"), "tanh": ("act", "tanh"), "tanh_": ("act", "tanh"),
    "prelu": ("act", "prelu"),
    "add": ("add", None), "add_": ("add", None), "__add__": ("add", None), "__iadd__": ("add", None),
    "mul": ("mul", None), "mul_": ("mul", None),
    "view": ("reshape", None), "reshape": ("reshape", None), "flatten": ("reshape", None),
    "permute": ("reshape", None), "transpose": ("reshape", None), "squeeze": ("reshape", None),
    "unsqueeze": ("reshape", None), "mean": ("other", None),
    "contiguous": ("identity", None), "clone": ("identity", None),
    "size": ("shape", None), "dim": ("shape", None), "chunk": ("split", None), "split": ("split", None),
}


def classify_call(op: str, target: Any, args: tuple, kwargs: dict) -> tuple[str, dict[str, Any]]:
    """(kind, attrs) of a call_function / call_method node, from its target and arguments.

    Example:
        >>> import torch
        >>> classify_call("call_function", torch.cat, ([None, None], 1), {})
        ('concat', {'dim': 1, 'channel_concat': True})
    """
    if op == "call_method":
        kind, fn = _METHODS.get(target, ("other", None))
    else:
        kind, fn = _FUNCTIONS.get(target, ("other", None))
    attrs: dict[str, Any] = {"fn": fn} if fn else {}
    if kind == "concat":
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        attrs.update(dim=dim, channel_concat=dim == 1)
    elif kind == "pool" and fn in ("max_pool", "avg_pool", "lp_pool"):
        first = 2 if fn == "lp_pool" else 1  # lp_pool(input, norm_type, kernel_size, stride)
        kernel = kwargs.get("kernel_size", args[first] if len(args) > first else None)
        stride = kwargs.get("stride", args[first + 1] if len(args) > first + 1 else None) or kernel
        if isinstance(stride, (int, tuple, list)):
            attrs["stride"] = _tuple(stride)
    elif kind == "split":
        attrs.update(_split_attrs(target, args, kwargs))
    elif kind == "reshape" and (target in ("permute",) or target is torch.permute):
        dims = args[1:] if len(args) > 1 and not isinstance(args[1], (tuple, list)) else (
            args[1] if len(args) > 1 else kwargs.get("dims"))
        if isinstance(dims, (tuple, list)) and all(isinstance(d, int) for d in dims):
            attrs["perm"] = tuple(dims)
    elif kind == "pool" and fn in ("adaptive_avg_pool", "adaptive_max_pool"):
        if _all_ones(kwargs.get("output_size", args[1] if len(args) > 1 else None)):
            attrs["global_pool"] = True
    elif kind == "other" and target in ("mean", "amax", torch.mean, torch.amax):
        attrs.update(_reduction(args, kwargs))
    elif kind == "other" and (target is operator.getitem and _strided_index(args[1] if len(args) > 1 else None)
                              or target in (F.pixel_shuffle, F.pixel_unshuffle, torch.pixel_shuffle,
                                            torch.pixel_unshuffle, "pixel_shuffle", "pixel_unshuffle")):
        attrs["resample"] = "size"  # `x[..., ::2, ::2]` (YOLOv5's Focus), pixel (un)shuffle: a new resolution
        attrs["resample_key"] = _resample_key(target, args)  # alike resamples of one map share their origin
    elif kind == "other" and target in (F.interpolate, F.upsample):
        attrs["resample"] = _upsample(kwargs.get("scale_factor", args[2] if len(args) > 2 else None),
                                      kwargs.get("size", args[1] if len(args) > 1 else None))
    elif kind == "identity" and target is F.pad:
        pads = kwargs.get("pad", args[1] if len(args) > 1 else None)
        if not (isinstance(pads, (tuple, list)) and all(p == 0 for p in pads)):
            kind, attrs = "other", {}
    elif kind == "conv":
        stride = kwargs.get("stride", args[3] if len(args) > 3 else 1)
        groups = kwargs.get("groups", args[6] if len(args) > 6 else 1)
        attrs.update(stride=_tuple(stride) if isinstance(stride, (int, tuple, list)) else None,
                     groups=groups if isinstance(groups, int) else 1)
    return kind, attrs


def _resample_key(target: Any, args: tuple) -> str:
    """What makes two resamples of one map land at the same resolution: the steps of a slice, the factor
    of a pixel shuffle (not the slice's start: YOLOv5's Focus takes four slices of one map)."""
    if target is operator.getitem:
        items = args[1] if isinstance(args[1], tuple) else (args[1],)
        return "steps" + repr(tuple(i.step if isinstance(i, slice) else None for i in items))
    return f"{getattr(target, '__name__', target)}{args[1:2]!r}"


def _strided_index(index: Any) -> bool:
    """Whether an index takes every k-th element (k > 1) of some dim: `x[:, :, ::2]`."""
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, slice) and isinstance(i.step, int) and i.step > 1 for i in items)


def _reduction(args: tuple, kwargs: dict) -> dict[str, Any]:
    """`x.mean((2, 3), keepdim=True)`: a global pool when it reduces every spatial dim of a 4-D map
    (dims 2.. or -1, -2 ...; a reduction over the channel dim is not one)."""
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    keep = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
    dims = (dims,) if isinstance(dims, int) else dims
    if keep is not True or not isinstance(dims, (tuple, list)) or not dims:
        return {}
    if all(isinstance(d, int) and d >= 2 for d in dims) or all(isinstance(d, int) and d < 0 for d in dims):
        return {"global_pool": True, "reduce_dims": tuple(dims)}
    return {}


def _split_attrs(target: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """dim, and parts (chunk: n parts) or sizes (split: a list of sizes) or step (split: size s)."""
    dim = kwargs.get("dim", args[2] if len(args) > 2 else 0)
    if target in ("chunk", torch.chunk):
        parts = kwargs.get("chunks", args[1] if len(args) > 1 else None)
        return {"dim": dim, "parts": parts if isinstance(parts, int) else None}
    size = kwargs.get("split_size_or_sections", kwargs.get("split_size", args[1] if len(args) > 1 else None))
    if isinstance(size, int):
        return {"dim": dim, "step": size}
    if isinstance(size, (tuple, list)) and all(isinstance(s, int) for s in size):
        return {"dim": dim, "sizes": tuple(size)}
    return {"dim": dim}


def conv_weight_attrs(weight: torch.Tensor, groups: int) -> dict[str, Any]:
    """Channel facts of a functional conv from its weight tensor (out, in/groups, *kernel).

    Example:
        >>> conv_weight_attrs(torch.zeros(16, 1, 3, 3), 16)["in_channels"]
        16
    """
    return {"out_channels": int(weight.shape[0]), "in_channels": int(weight.shape[1]) * groups,
            "kernel_size": tuple(int(k) for k in weight.shape[2:])}
