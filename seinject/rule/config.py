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
from ..suggest import closest
from .kinds import canonical_fn

# Names from the act vocabulary of seinject.rule.kinds, so `se: {act: hardswish}` and
# `pattern: [{kind: act, fn: hardswish}]` use one word; its aliases (hard_swish,
# hard_sigmoid, swish) are accepted too and stored as the canonical name.
GATES = ("sigmoid", "hardsigmoid")
ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "hardswish")
INITS = ("identity", "random")


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
        _check_number(self, "ratio", self.ratio, positive=True)
        for name in ("divisor", "min_hidden"):
            _check_int(self, name, getattr(self, name))
        object.__setattr__(self, "act", _check_choice("act", self.act, ACTIVATIONS))
        object.__setattr__(self, "gate", _check_choice("gate", self.gate, GATES))
        _check_choice("init", self.init, INITS)

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
                raise ConfigError(f"unknown SE setting {key!r}{closest(key, names)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _check_number(cfg: SEConfig, name: str, value: Any, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"SE setting {name!r} must be a number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"SE setting {name!r} must be > 0, got {value!r}")


def _check_int(cfg: SEConfig, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"SE setting {name!r} must be an integer >= 1, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """The value's canonical name (see seinject.rule.kinds.FN_ALIASES) when it is one of choices."""
    canonical = canonical_fn(value) if isinstance(value, str) else value
    if canonical not in choices:
        raise ConfigError(
            f"SE setting {name!r} must be one of {', '.join(choices)}; got {value!r}"
            f"{closest(str(value), choices)}"
        )
    return canonical
