"""Did-you-mean suggestions for misspelt names in rules, settings and CLI input.

Example:
    >>> closest("ratoi", ["ratio", "gate"])
    " (did you mean 'ratio'?)"
"""

from __future__ import annotations

import difflib
from typing import Iterable


def closest(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean ...?)' suffix naming the closest choice, or '' when none is close.

    Example:
        >>> closest("xyz", ["ratio"])
        ''
    """
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
