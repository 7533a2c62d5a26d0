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

from .block import SqueezeExcite

_ACT_MODULES = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.SELU,
                nn.CELU, nn.PReLU, nn.Mish, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh, nn.Softplus,
                nn.Hardtanh)
_NORM_MODULES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
                 nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)
_POOL_MODULES = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                 nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@functools.lru_cache(maxsize=None)
def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return {"re_l_u": "relu", "re_l_u6": "relu6", "si_l_u": "silu", "g_e_l_u": "gelu",
            "p_re_l_u": "prelu", "leaky_re_l_u": "leaky_relu", "e_l_u": "elu", "s_e_l_u": "selu",
            "c_e_l_u": "celu"}.get(out, out)


# SE/channel-attention modules of other libraries (torchvision, timm, common repos):
# seen as one op of kind "se", so rules count the blocks that already have one.
FOREIGN_SE_CLASSES = frozenset({"SqueezeExcitation", "SqueezeExcite", "SEModule", "SELayer",
                                "SEBlock", "EffectiveSEModule"})


def is_se_module(module: nn.Module) -> bool:
    """True for seinject's SqueezeExcite and the SE modules of torchvision and timm.

    Example:
        >>> is_se_module(SqueezeExcite(8)), is_se_module(nn.ReLU())
        (True, False)
    """
    return isinstance(module, SqueezeExcite) or type(module).__name__ in FOREIGN_SE_CLASSES


def is_structural_leaf(module: nn.Module) -> bool:
    """Modules seen as single ops: torch.nn built-ins (not containers) and SE blocks.

    Example:
        >>> is_structural_leaf(nn.ReLU()), is_structural_leaf(nn.Sequential())
        (True, False)
    """
    if is_se_module(module):
        return True
    if isinstance(module, _CONTAINERS):
        return False
    return type(module).__module__.startswith("torch.nn")


def classify_module(module: nn.Module) -> tuple[str, dict[str, Any]]:
    """(kind, attrs) of a leaf module call.

    Example:
        >>> classify_module(nn.ReLU6())
        ('act', {'fn': 'relu6'})
    """
    if isinstance(module, SqueezeExcite):
        return "se", {"channels": module.channels}
    if is_se_module(module):
        return "se", {"foreign": type(module).__name__}
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv", {"in_channels": module.in_channels, "out_channels": module.out_channels,
                        "groups": module.groups, "kernel_size": tuple(module.kernel_size),
                        "stride": tuple(module.stride), "transposed": module.transposed}
    if isinstance(module, _NORM_MODULES):
        return "norm", {"fn": _snake(type(module).__name__)}
    if isinstance(module, _ACT_MODULES):
        return "act", {"fn": _snake(type(module).__name__)}
    if isinstance(module, _POOL_MODULES):
        stride = getattr(module, "stride", None)
        return "pool", {"stride": _tuple(stride) if stride is not None else None,
                        "fn": _snake(type(module).__name__)}
    if isinstance(module, nn.Linear):
        return "linear", {"out_features": module.out_features}
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return "dropout", {}
    if isinstance(module, nn.Identity):
        return "identity", {}
    if isinstance(module, (nn.Flatten, nn.Unflatten)):
        return "reshape", {}
    return "other", {"type": type(module).__name__}


def _tuple(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),)


_FUNCTIONS: dict[Any, tuple[str, str | None]] = {
    F.conv1d: ("conv", None), F.conv2d: ("conv", None), F.conv3d: ("conv", None),
    torch.conv1d: ("conv", None), torch.conv2d: ("conv", None), torch.conv3d: ("conv", None),
    F.batch_norm: ("norm", "batch_norm"), F.layer_norm: ("norm", "layer_norm"),
    F.group_norm: ("norm", "group_norm"), F.instance_norm: ("norm", "instance_norm"),
    torch.batch_norm: ("norm", "batch_norm"),
    F.relu: ("act", "relu"), torch.relu: ("act", "relu"), F.relu_: ("act", "relu"),
    torch.relu_: ("act", "relu"), F.relu6: ("act", "relu6"), F.silu: ("act", "silu"),
    F.gelu: ("act", "gelu"), F.hardswish: ("act", "hardswish"), F.leaky_relu: ("act", "leaky_relu"),
    F.elu: ("act", "elu"), F.mish: ("act", "mish"), torch.sigmoid: ("act", "sigmoid"),
    F.sigmoid: ("act", "sigmoid"), F.hardsigmoid: ("act", "hardsigmoid"), torch.tanh: ("act", "tanh"),
    F.hardtanh: ("act", "hardtanh"), F.gelu: ("act", "gelu"),
    operator.add: ("add", None), operator.iadd: ("add", None), torch.add: ("add", None),
    operator.mul: ("mul", None), operator.imul: ("mul", None), torch.mul: ("mul", None),
    torch.cat: ("concat", None), torch.concat: ("concat", None),
    F.max_pool1d: ("pool", "max_pool"), F.max_pool2d: ("pool", "max_pool"),
    F.max_pool3d: ("pool", "max_pool"), F.avg_pool1d: ("pool", "avg_pool"),
    F.avg_pool2d: ("pool", "avg_pool"), F.avg_pool3d: ("pool", "avg_pool"),
    F.adaptive_avg_pool1d: ("pool", "adaptive_avg_pool"), F.adaptive_avg_pool2d: ("pool", "adaptive_avg_pool"),
    F.adaptive_avg_pool3d: ("pool", "adaptive_avg_pool"),
    F.dropout: ("dropout", None), F.dropout1d: ("dropout", None), F.dropout2d: ("dropout", None),
    F.dropout3d: ("dropout", None),
    torch.flatten: ("reshape", None), torch.reshape: ("reshape", None), torch.permute: ("reshape", None),
    torch.transpose: ("reshape", None), F.linear: ("linear", None), getattr: ("shape", None),
    torch.chunk: ("other", "chunk"), operator.getitem: ("other", "getitem"),
}
if hasattr(torch, "concatenate"):
    _FUNCTIONS[torch.concatenate] = ("concat", None)

_METHODS: dict[str, tuple[str, str | None]] = {
    "relu": ("act", "relu"), "relu_": ("act", "relu"), "sigmoid": ("act", "sigmoid"),
    "sigmoid_": ("act", "sigmoid"), "tanh": ("act", "tanh"),
    "add": ("add", None), "add_": ("add", None), "__add__": ("add", None), "__iadd__": ("add", None),
    "mul": ("mul", None), "mul_": ("mul", None),
    "view": ("reshape", None), "reshape": ("reshape", None), "flatten": ("reshape", None),
    "permute": ("reshape", None), "transpose": ("reshape", None), "squeeze": ("reshape", None),
    "unsqueeze": ("reshape", None), "mean": ("other", None),
    "contiguous": ("identity", None), "clone": ("identity", None),
    "size": ("shape", None), "dim": ("shape", None), "chunk": ("other", "chunk"),
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
    elif kind == "pool" and fn in ("max_pool", "avg_pool"):
        kernel = kwargs.get("kernel_size", args[1] if len(args) > 1 else None)
        stride = kwargs.get("stride", args[2] if len(args) > 2 else None) or kernel
        if isinstance(stride, (int, tuple, list)):
            attrs["stride"] = _tuple(stride)
    elif fn == "chunk":
        chunks = kwargs.get("chunks", args[1] if len(args) > 1 else None)
        dim = kwargs.get("dim", args[2] if len(args) > 2 else 0)
        attrs.update(chunks=chunks if isinstance(chunks, int) else None, dim=dim)
    elif fn == "getitem" and len(args) > 1 and isinstance(args[1], int):
        attrs["index"] = args[1]
    elif kind == "reshape" and (target in ("permute",) or target is torch.permute):
        dims = args[1:] if len(args) > 1 and not isinstance(args[1], (tuple, list)) else (
            args[1] if len(args) > 1 else kwargs.get("dims"))
        if isinstance(dims, (tuple, list)) and all(isinstance(d, int) for d in dims):
            attrs["perm"] = tuple(dims)
    elif kind == "conv":
        stride = kwargs.get("stride", args[3] if len(args) > 3 else 1)
        groups = kwargs.get("groups", args[6] if len(args) > 6 else 1)
        attrs.update(stride=_tuple(stride) if isinstance(stride, (int, tuple, list)) else None,
                     groups=groups if isinstance(groups, int) else 1)
    return kind, attrs


def conv_weight_attrs(weight: torch.Tensor, groups: int) -> dict[str, Any]:
    """Channel facts of a functional conv from its weight tensor (out, in/groups, *kernel).

    Example:
        >>> conv_weight_attrs(torch.zeros(16, 1, 3, 3), 16)["in_channels"]
        16
    """
    return {"out_channels": int(weight.shape[0]), "in_channels": int(weight.shape[1]) * groups,
            "kernel_size": tuple(int(k) for k in weight.shape[2:])}
