"""Keyword overrides → Rule: route SE settings to `se` and the rest to `filters` (shared by both backends, torch-free).

Example:
    >>> r = resolve_rule("after_residual", {"ratio": 8, "include": "layer3", "min_channels": 64})
    >>> r.se.ratio, r.filters.include, r.filters.min_channels
    (8, ('layer3',), 64)
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from .config import SEConfig
from ..errors import ConfigError
from .loader import load_rule
from .schema import Filters, Rule
from ..suggest import closest, short

SE_FIELDS = tuple(f.name for f in fields(SEConfig))
FILTER_FIELDS = tuple(f.name for f in fields(Filters))


def resolve_rule(rule: "str | Rule", overrides: dict[str, Any]) -> Rule:
    """The rule with keyword overrides applied: SE settings to `se`, the rest to `filters`.

    Example:
        >>> r = resolve_rule("after_residual", {"ratio": 8, "include": "layer3"})
        >>> r.se.ratio, r.filters.include
        (8, ('layer3',))
    """
    loaded = load_rule(rule)
    se_changes, filter_changes = {}, {}
    for key, value in overrides.items():
        if key in SE_FIELDS:
            se_changes[key] = value
        elif key in FILTER_FIELDS:
            filter_changes[key] = value  # checked by Filters itself, as rule files are
        else:
            raise ConfigError(f"unknown option {short(key)}{closest(key, SE_FIELDS + FILTER_FIELDS)}; "
                              f"SE settings: {', '.join(SE_FIELDS)}; filters: {', '.join(FILTER_FIELDS)}")
    filters = replace(loaded.filters, **filter_changes)
    return replace(loaded, se=loaded.se.with_overrides(**se_changes), filters=filters)


def checked_overrides(resolved: Rule, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides as the rule holds them once checked: plain ints and floats, tuples for lists
    (what a checkpoint stores; `stages=range(3, 5)` becomes (3, 4)).

    Example:
        >>> checked_overrides(resolve_rule("after_residual", {"stages": range(3, 5)}), {"stages": range(3, 5)})
        {'stages': (3, 4)}
    """
    return {key: getattr(resolved.se if key in SE_FIELDS else resolved.filters, key) for key in overrides}
