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
from ..suggest import closest

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
            filter_changes[key] = _filter_value(key, value)
        else:
            raise ConfigError(f"unknown option {key!r}{closest(key, SE_FIELDS + FILTER_FIELDS)}; "
                              f"SE settings: {', '.join(SE_FIELDS)}; filters: {', '.join(FILTER_FIELDS)}")
    try:
        filters = replace(loaded.filters, **filter_changes)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    return replace(loaded, se=loaded.se.with_overrides(**se_changes), filters=filters)


def _filter_value(key: str, value: Any) -> Any:
    if key in ("include", "exclude"):
        return (value,) if isinstance(value, str) else tuple(value or ())
    if key == "stages" and value is not None:
        return (value,) if isinstance(value, int) else tuple(value)
    if key == "outside_residual":
        if not isinstance(value, bool):
            raise ConfigError(f"option 'outside_residual' must be True or False, got {value!r}")
        return value
    lowest = 0 if key == "offset" else 1  # as in rule files: last=0 would keep every site
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lowest):
        raise ConfigError(f"option {key!r} must be an integer >= {lowest}, got {value!r}")
    return value

