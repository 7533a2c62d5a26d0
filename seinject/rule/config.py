"""SEConfig: the settings of one SE block (ratio, rounding, activation, gate, init).

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
from .kinds import canonical_fn
from ..limits import MAX_BLOCK_PARAMS, MAX_HIDDEN, MAX_RATIO, MIN_RATIO

# Names from the act vocabulary of seinject.rule.kinds, so `se: {act: hardswish}` and
# `pattern: [{kind: act, fn: hardswish}]` use one word; its aliases (hard_swish,
# hard_sigmoid, swish) are accepted too and stored as the canonical name.
GATES = ("sigmoid", "hardsigmoid")
ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "hardswish")
INITS = ("identity", "random")
LABEL = "SE setting "


@dataclass(frozen=True)
class SEConfig:
    """Settings of an SE block: squeeze → C→hidden→C excitation → gate → channel-wise scale.

    Example:
        >>> cfg = SEConfig(ratio=8, gate="hard_sigmoid")   # an alias of hardsigmoid
        >>> cfg.hidden_channels(64), cfg.gate
        (8, 'hardsigmoid')
    """

    ratio: float = field(default=16, metadata={"help": "reduction ratio r: hidden = C / r"})
    divisor: int = field(default=1, metadata={"help": "round hidden up to a multiple of this (8 = timm)"})
    min_hidden: int = field(default=1, metadata={"help": "floor on the hidden width"})
    act: str = field(default="relu", metadata={"help": f"excitation activation: {', '.join(ACTIVATIONS)}"})
    gate: str = field(default="sigmoid", metadata={"help": f"gate: {', '.join(GATES)}"})
    init: str = field(
        default="identity",
        metadata={"help": "identity: block returns its input at init (gate gain 2, zero last layer); "
                  "random: the paper's plain block with standard init"},
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", checks.number("ratio", self.ratio, MIN_RATIO, MAX_RATIO, label=LABEL))
        for name in ("divisor", "min_hidden"):
            object.__setattr__(self, name, checks.integer(name, getattr(self, name), 1, MAX_HIDDEN, label=LABEL))
        object.__setattr__(self, "act", _check_choice("act", self.act, ACTIVATIONS))
        object.__setattr__(self, "gate", _check_choice("gate", self.gate, GATES))
        checks.choice("init", self.init, INITS, label=LABEL)

    def hidden_channels(self, channels: int) -> int:
        """Width of the bottleneck for a site with `channels` channels.

        C / ratio, rounded up to a multiple of `divisor`, at least `min_hidden`.

        Example:
            >>> SEConfig(ratio=16).hidden_channels(24)
            2
        """
        base = channels / self.ratio
        hidden = self.divisor * math.ceil(base / self.divisor - 1e-9)
        return max(self.min_hidden, hidden, 1)

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

    def added_parameters(self, channels: int) -> int:
        """Parameters an SE block adds at a site: C·h + h + h·C + C.

        Example:
            >>> SEConfig(ratio=16).added_parameters(256)
            8464
        """
        hidden = self.hidden_channels(channels)
        return 2 * channels * hidden + hidden + channels

    def added_macs(self, channels: int, spatial: int | None = None) -> int:
        """Multiply-accumulates per sample: the two FC layers, plus pool and scale when `spatial` is known.

        Example:
            >>> SEConfig(ratio=16).added_macs(256)
            8192
        """
        macs = 2 * channels * self.hidden_channels(channels)
        if spatial:
            macs += 2 * channels * spatial
        return macs

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
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """The value's canonical name (see seinject.rule.kinds.FN_ALIASES) when it is one of choices
    (an unknown name is its own canonical name, so the message quotes what was given)."""
    return checks.choice(name, canonical_fn(value) if isinstance(value, str) else value, choices, label=LABEL)
