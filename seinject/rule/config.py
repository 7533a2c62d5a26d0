"""SEConfig: the settings of one inserted block: its type (se, eca, cbam, ...), ratio, rounding, activation, gate, init.

Example:
    >>> from seinject.rule.config import SEConfig
    >>> SEConfig(ratio=16, divisor=8).hidden_channels(256)
    16
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from ..suggest import closest, short
from . import checks
from .gates import BLOCKS, SPECS
from .kinds import canonical_fn
from ..limits import MAX_BLOCK_PARAMS, MAX_HIDDEN, MAX_RATIO, MIN_RATIO

# Names from the act vocabulary of seinject.rule.kinds, so `se: {act: hardswish}` and
# `pattern: [{kind: act, fn: hardswish}]` use one word; its aliases (hard_swish,
# hard_sigmoid, swish) are accepted too and stored as the canonical name.
GATES = ("sigmoid", "hardsigmoid")
ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "hardswish")
INITS = ("identity", "random")
LABEL = "SE setting "
# type-specific settings and their defaults: giving another value to a type that does not read
# it is an error (the shared ratio/divisor/min_hidden/act/gate are rule-wide and simply unused)
SPECIFIC = {"bias": True, "kernel_size": None, "gamma": 2, "beta": 1, "spatial_kernel_size": 7,
            "use_attn": True, "fuse_add": True, "fuse_scale": False, "e_lambda": 1e-4}


@dataclass(frozen=True)
class SEConfig:
    """Settings of an inserted block. `block` picks the type (seinject.rule.gates); the default
    is SE: squeeze → C→hidden→C excitation → gate → channel-wise scale. act and gate left
    unset take the type's default (ese: hard-sigmoid gate; coord: hard-swish).

    Example:
        >>> cfg = SEConfig(ratio=8, gate="hard_sigmoid")   # an alias of hardsigmoid
        >>> cfg.hidden_channels(64), cfg.gate
        (8, 'hardsigmoid')
        >>> SEConfig(block="ese").gate
        'hardsigmoid'
    """

    ratio: float = field(default=16, metadata={"help": "reduction ratio r: hidden = C / r"})
    divisor: int = field(default=1, metadata={"help": "round hidden up to a multiple of this (8 = timm)"})
    min_hidden: int = field(default=1, metadata={"help": "floor on the hidden width"})
    act: str | None = field(default=None, metadata={
        "help": f"excitation activation: {', '.join(ACTIVATIONS)} (unset: the block type's, relu for se)"})
    gate: str | None = field(default=None, metadata={
        "help": f"gate: {', '.join(GATES)} (unset: the block type's, sigmoid for se)"})
    init: str = field(
        default="identity",
        metadata={"help": "identity: block returns its input at init (gate gain 2, zero last layer); "
                  "random: the paper's plain block with standard init"},
    )
    block: str = field(default="se", metadata={"help": f"block type: {', '.join(BLOCKS)}"})
    bias: bool = field(default=True, metadata={"help": "se, ese: FC layers with biases (false: the Keras SE)"})
    kernel_size: int | None = field(default=None, metadata={
        "help": "eca: 1-D kernel across channels (unset: from the paper's formula with gamma, beta)"})
    gamma: float = field(default=2, metadata={"help": "eca: gamma of k = |log2(C) + beta| / gamma"})
    beta: float = field(default=1, metadata={"help": "eca: beta of k = |log2(C) + beta| / gamma"})
    spatial_kernel_size: int = field(default=7, metadata={"help": "cbam: kernel of the spatial gate's conv"})
    use_attn: bool = field(default=True, metadata={"help": "gc: softmax attention pooling (false: mean)"})
    fuse_add: bool = field(default=True, metadata={"help": "gc: add the transformed context (the paper's)"})
    fuse_scale: bool = field(default=False, metadata={"help": "gc: scale by a gated context (timm's default)"})
    e_lambda: float = field(default=1e-4, metadata={"help": "simam: lambda of the energy's denominator"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", checks.number("ratio", self.ratio, MIN_RATIO, MAX_RATIO, label=LABEL))
        for name in ("divisor", "min_hidden"):
            object.__setattr__(self, name, checks.integer(name, getattr(self, name), 1, MAX_HIDDEN, label=LABEL))
        checks.choice("block", self.block, BLOCKS, label=LABEL)
        spec = SPECS[self.block]
        act = spec.act if self.act is None else self.act
        gate = spec.gate if self.gate is None else self.gate
        object.__setattr__(self, "act", None if act is None else _check_choice("act", act, ACTIVATIONS))
        object.__setattr__(self, "gate", None if gate is None else _check_choice("gate", gate, GATES))
        checks.choice("init", self.init, INITS, label=LABEL)
        self._check_specific(spec)

    def _check_specific(self, spec) -> None:
        for name in ("bias", "use_attn", "fuse_add", "fuse_scale"):
            checks.flag(name, getattr(self, name))
        if self.kernel_size is not None:
            object.__setattr__(self, "kernel_size", _odd("kernel_size", self.kernel_size))
        object.__setattr__(self, "spatial_kernel_size", _odd("spatial_kernel_size", self.spatial_kernel_size))
        object.__setattr__(self, "gamma", checks.number("gamma", self.gamma, 1e-3, 1e3, label=LABEL))
        object.__setattr__(self, "beta", checks.number("beta", self.beta, -1e3, 1e3, label=LABEL))
        object.__setattr__(self, "e_lambda", checks.number("e_lambda", self.e_lambda, 1e-12, 1e6, label=LABEL))
        if not (self.fuse_add or self.fuse_scale):
            raise ConfigError(f"{LABEL}'fuse_add' and 'fuse_scale' are both false: gc needs one", key="fuse_add")
        for name, default in SPECIFIC.items():
            if name not in spec.settings and getattr(self, name) != default:
                readers = [b for b, s in SPECS.items() if name in s.settings]
                raise ConfigError(f"{LABEL}{name!r} is a setting of {', '.join(readers)}, not of "
                                  f"block {self.block!r}", key=name)

    def hidden_channels(self, channels: int) -> int:
        """Width of the bottleneck for a site with `channels` channels.

        C / ratio, rounded up to a multiple of `divisor`, at least `min_hidden` (ese: C; eca and
        simam have no bottleneck: 0; gc at least 2, as its LayerNorm over one channel is constant).

        Example:
            >>> SEConfig(ratio=16).hidden_channels(24)
            2
        """
        if self.block == "ese":
            return channels
        if self.block in ("eca", "simam"):
            return 0
        base = channels / self.ratio
        hidden = self.divisor * math.ceil(base / self.divisor - 1e-9)
        # gc normalises its hidden layer: a LayerNorm over one channel outputs its bias alone
        return max(self.min_hidden, hidden, 2 if self.block == "gc" else 1)

    def check_budget(self, channels: int, site: str) -> None:
        """Refuse a block wider than MAX_HIDDEN or with more than MAX_BLOCK_PARAMS parameters
        (1 GiB in fp32) before anything is allocated; the error names the site.

        Example:
            >>> SEConfig(ratio=1 / 16).check_budget(8192, "layer4")
            Traceback (most recent call last):
            ...
            seinject.errors.ConfigError: the SE block at 'layer4' would be 131072 wide ...
        """
        hidden, params = self.hidden_channels(channels), self.added_parameters(channels)
        if hidden > MAX_HIDDEN or params > MAX_BLOCK_PARAMS:
            raise ConfigError(f"the SE block at {short(site)} would be {hidden} wide with {params} parameters "
                              f"({channels} channels, ratio {self.ratio:g}, min_hidden {self.min_hidden}); "
                              f"at most {MAX_HIDDEN} wide and {MAX_BLOCK_PARAMS} parameters (1 GiB in fp32) "
                              "are allowed: raise ratio or lower min_hidden", key="ratio")

    def added_parameters(self, channels: int, spatial_rank: int = 2) -> int:
        """Parameters the block adds at a site (SE: C·h + h + h·C + C).

        Example:
            >>> SEConfig(ratio=16).added_parameters(256), SEConfig(block="eca").added_parameters(256)
            (8464, 5)
        """
        return SPECS[self.block].params(channels, self, spatial_rank)

    def added_macs(self, channels: int, spatial: tuple[int, ...] | None = None) -> int:
        """Multiply-accumulates per sample: the block's layers, plus pools and scales when the
        spatial shape (a tuple of dims) is known.

        Example:
            >>> SEConfig(ratio=16).added_macs(256), SEConfig(ratio=16).added_macs(256, (2, 2))
            (8192, 10240)
        """
        return SPECS[self.block].macs(channels, self, tuple(spatial) if spatial else None)

    def with_overrides(self, **overrides: Any) -> "SEConfig":
        """A copy with some fields changed; unknown names are errors that suggest the closest field.

        Example:
            >>> SEConfig().with_overrides(ratio=4).ratio
            4
        """
        names = [f.name for f in fields(self)]
        for key in overrides:
            if key not in names:
                raise ConfigError(f"unknown SE setting {short(key)}{closest(key, names)}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        block = changes.get("block", self.block)
        if block != self.block and block in SPECS:
            # act and gate at the old type's defaults follow the new type's
            for name in ("act", "gate"):
                if name not in changes and getattr(self, name) == getattr(SPECS[self.block], name):
                    changes[name] = getattr(SPECS[block], name) or getattr(self, name)
        return replace(self, **changes)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """The value's canonical name (see seinject.rule.kinds.FN_ALIASES) when it is one of choices
    (an unknown name is its own canonical name, so the message quotes what was given)."""
    return checks.choice(name, canonical_fn(value) if isinstance(value, str) else value, choices, label=LABEL)


def _odd(name: str, value: Any) -> int:
    value = checks.integer(name, value, 1, 255, label=LABEL)
    if value % 2 == 0:
        raise ConfigError(f"{LABEL}{name!r} must be odd (the output keeps its size), got {value}", key=name)
    return value
