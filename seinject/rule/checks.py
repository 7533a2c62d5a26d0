"""Value checks shared by every entry point: rule files, Python keywords and command-line options.

SEConfig and Filters call these in their constructors, so a value is checked the same way
whichever way it arrived; each failure is a ConfigError naming the setting (`key`), and
messages show only a short prefix of the value (seinject.suggest.short).

Example:
    >>> integer("every", 3)
    3
    >>> integer("every", 0)
    Traceback (most recent call last):
    ...
    seinject.errors.ConfigError: 'every' must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from ..errors import ConfigError
from ..suggest import clip, closest, short
from ..limits import MAX_COUNT, MAX_LIST_ITEMS, MAX_REGEX_CHARS


def integer(key: str, value: Any, minimum: int = 1, maximum: int = MAX_COUNT, label: str = "") -> int:
    """An int in [minimum, maximum] (bools and floats refused).

    Example:
        >>> integer("offset", 0, minimum=0)
        0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= maximum:
        bound = f">= {minimum}" if maximum == MAX_COUNT else f"in [{minimum}, {maximum}]"
        raise ConfigError(f"{label}{key!r} must be an integer {bound}, got {short(value)}", key=key)
    return int(value)  # a plain int also for numpy integers


def number(key: str, value: Any, low: float, high: float, label: str = "") -> float:
    """A finite int or float in [low, high] (NaN, infinities, bools and strings refused); an
    integral value comes back as an int.

    Example:
        >>> number("ratio", 8.0, 0.0625, 2**20)
        8
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{label}{key!r} must be a number, got {short(value)}", key=key)
    if not math.isfinite(value):
        raise ConfigError(f"{label}{key!r} must be a finite number, got {short(value)}", key=key)
    if value <= 0 < low:
        raise ConfigError(f"{label}{key!r} must be > 0, got {short(value)}", key=key)
    if not low <= value <= high:
        raise ConfigError(f"{label}{key!r} must be in [{low:g}, {high:g}], got {short(value)}", key=key)
    return int(value) if float(value).is_integer() else float(value)


def flag(key: str, value: Any) -> bool:
    """True or False, nothing else.

    Example:
        >>> flag("outside_residual", True)
        True
    """
    if not isinstance(value, bool):
        raise ConfigError(f"{key!r} must be true or false, got {short(value)}", key=key)
    return value


def integers(key: str, value: Any, minimum: int = 1) -> tuple[int, ...]:
    """One int or a list, tuple or range of them; a string is refused (`stages="34"` would
    otherwise match nothing).

    Example:
        >>> integers("stages", [3, 4]), integers("stages", 2), integers("stages", range(1, 3))
        ((3, 4), (2,), (1, 2))
    """
    several = isinstance(value, (list, tuple, range))
    if not several and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ConfigError(f"{key!r} must be an integer or a list of integers, got {short(value)}", key=key)
    items = _items(key, value if several else [value])
    return tuple(integer(key, v, minimum) for v in items)


def strings(key: str, value: Any) -> tuple[str, ...]:
    """One string or a list of strings.

    Example:
        >>> strings("fn", "relu")
        ('relu',)
    """
    items = _items(key, value if isinstance(value, (list, tuple)) else [value])
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{key!r} must be a string or a list of strings, got {short(item)}", key=key)
    return tuple(items)


def regexes(key: str, value: Any) -> tuple[str, ...]:
    """One regex or a list of them, each compiled now (a bare string is one pattern, never split
    into characters); at most MAX_REGEX_CHARS characters each.

    Example:
        >>> regexes("include", "layer[34]")
        ('layer[34]',)
        >>> regexes("include", "layer[")
        Traceback (most recent call last):
        ...
        seinject.errors.ConfigError: include pattern 'layer[' is not a valid regular expression: ...
    """
    items = strings(key, value)
    for item in items:
        if len(item) > MAX_REGEX_CHARS:
            raise ConfigError(f"{key} pattern {short(item)} is {len(item)} characters long; "
                              f"at most {MAX_REGEX_CHARS} are allowed", key=key)
        try:
            re.compile(item)
        except (re.error, RecursionError, OverflowError) as exc:
            raise ConfigError(f"{key} pattern {short(item)} is not a valid regular expression: "
                              f"{clip(str(exc))}", key=key) from None
    return items


def choice(key: str, value: Any, choices: tuple[str, ...], label: str = "") -> str:
    """A string among `choices`, with a did-you-mean for a near miss.

    Example:
        >>> choice("init", "identity", ("identity", "random"))
        'identity'
    """
    if not isinstance(value, str) or value not in choices:
        hint = closest(value, choices) if isinstance(value, str) else ""
        raise ConfigError(f"{label}{key!r} must be one of {', '.join(choices)}; got {short(value)}{hint}", key=key)
    return value


def _items(key: str, items: "list | tuple | range") -> "list | tuple | range":
    if len(items) > MAX_LIST_ITEMS:
        raise ConfigError(f"{key!r} has {len(items)} items; at most {MAX_LIST_ITEMS} are allowed", key=key)
    return items
