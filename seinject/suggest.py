"""Did-you-mean suggestions for misspelt names in rules, settings and CLI input.

Example:
    >>> closest("ratoi", ["ratio", "gate"])
    " (did you mean 'ratio'?)"
"""

from __future__ import annotations

import difflib
import reprlib
from typing import Any, Iterable

SHOWN_CHARS = 60  # the longest prefix of a user-given value an error message prints

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = SHOWN_CHARS
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 4, 4, 4, 4


def closest(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean ...?)' suffix naming the closest choice, or '' when none is close.

    Example:
        >>> closest("xyz", ["ratio"])
        ''
    """
    if not isinstance(name, str) or len(name) > 4 * SHOWN_CHARS:  # no suggestion for a long value
        return ""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def short(value: Any) -> str:
    """repr(value) cut to a short prefix, in bounded time and memory whatever the value holds
    (a YAML alias bomb, a 50 MB string): error messages show user values through this.

    Example:
        >>> short("x" * 1000)
        "'xxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxx'"
        >>> short([[1, 2, 3, 4, 5]] * 1000)
        '[[1, 2, 3, 4, ...], [1, 2, 3, 4, ...], [1, 2, 3, 4, ...], [1, 2, 3, 4, ...], ...]'
    """
    return _REPR.repr(value)


def clip(text: str, width: int = 4 * SHOWN_CHARS) -> str:
    """`text` cut to `width` characters, with an ellipsis when cut (for messages quoting other messages).

    Example:
        >>> clip("abcdef", 4)
        'abc…'
    """
    return text if len(text) <= width else text[: width - 1] + "…"
