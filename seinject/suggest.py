"""Did-you-mean suggestions for misspelt names in rules, settings and CLI input.

Example:
    >>> closest("ratoi", ["ratio", "gate"])
    " (did you mean 'ratio'?)"
"""

from __future__ import annotations

import difflib
import os
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


def short(value: Any, width: int = SHOWN_CHARS) -> str:
    """repr(value) cut to about `width` characters, keeping its start and end (a long path keeps
    its file name), in bounded time and memory whatever the value holds (a YAML alias bomb, a
    50 MB string): error messages show user values through this. Paths show as strings.

    Example:
        >>> short("x" * 1000)
        "'xxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxx'"
        >>> short([[1, 2, 3, 4, 5]] * 1000)
        '[[1, 2, 3, 4, ...], [1, 2, 3, 4, ...], [1, 2, 3, 4, ...], [1, 2, 3, 4, ...], ...]'
        >>> from pathlib import Path
        >>> short(Path("/a/long/folder/" * 9 + "out.onnx"), 30)
        "'/a/long/fold...lder/out.onnx'"
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if width == SHOWN_CHARS:
        return _REPR.repr(value)
    custom = reprlib.Repr()
    custom.maxstring = custom.maxother = width
    custom.maxlevel, custom.maxlist, custom.maxtuple, custom.maxdict, custom.maxset = 2, 4, 4, 4, 4
    return custom.repr(value)


def clip(text: str, width: int = 4 * SHOWN_CHARS) -> str:
    """`text` cut to `width` characters, with an ellipsis when cut (for messages quoting other messages).

    Example:
        >>> clip("abcdef", 4)
        'abc…'
    """
    return text if len(text) <= width else text[: width - 1] + "…"
