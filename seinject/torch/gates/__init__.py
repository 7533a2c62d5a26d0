"""The torch module of every gate type, by name (seinject.rule.gates lists the types).

Example:
    >>> from seinject.rule.config import SEConfig
    >>> type(build_gate(32, 2, SEConfig(block="se"))).__name__
    'SqueezeExcite'
"""

from __future__ import annotations

import importlib

import torch

from ...rule.config import SEConfig
from .base import Gate

# type name -> "module:Class", imported on first use
MODULES = {
    "se": "seinject.torch.block:SqueezeExcite",
    "ese": "seinject.torch.gates.ese:EffectiveSE",
    "eca": "seinject.torch.gates.eca:EfficientChannelAttention",
    "cbam": "seinject.torch.gates.cbam:CBAM",
    "gc": "seinject.torch.gates.gc:GlobalContext",
    "coord": "seinject.torch.gates.coord:CoordinateAttention",
    "simam": "seinject.torch.gates.simam:SimAM",
}


def gate_class(block: str) -> type[Gate]:
    """The Gate subclass of a type name.

    Example:
        >>> gate_class("se").__name__
        'SqueezeExcite'
    """
    module, name = MODULES[block].split(":")
    return getattr(importlib.import_module(module), name)


def build_gate(channels: int, spatial_rank: int, config: SEConfig, *, device: torch.device | None = None,
               dtype: torch.dtype | None = None) -> Gate:
    """The block of config.block for a map with `channels` channels and `spatial_rank` spatial dims.

    Example:
        >>> build_gate(8, 1, SEConfig()).channels
        8
    """
    return gate_class(config.block)(channels, config, spatial_rank=spatial_rank, device=device, dtype=dtype)


__all__ = ["Gate", "MODULES", "build_gate", "gate_class"]
