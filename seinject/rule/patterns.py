"""Match user regexes (include, exclude, `also`) against a model's names within a time bound.

Python's regex engine backtracks, so a pattern such as `(a+)+$` can take forever on a
long name; no static check or name-length cap rules that out (`(a|a)*b` is exponential
too). So all matching of one call runs under a deadline of REGEX_SECONDS:
- on the main thread of a POSIX process (the command line, scripts, notebooks) an
  interval timer interrupts the engine, which checks for signals as it runs;
- elsewhere (other threads, Windows, or a timer already in use) the matching runs in a
  child Python process that is killed at the deadline.
Either way a ConfigError names the pattern and the name it was matching.

Example:
    >>> matching_names(["layer[34]"], ["layer1.relu", "layer3.relu"], "include")
    [False, True]
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
from typing import Iterator, Sequence

from ..errors import ConfigError
from ..suggest import short
from ..limits import REGEX_SECONDS

_CHILD = ("import json, re, sys\n"
          "job = json.load(sys.stdin)\n"
          "found = [re.compile(p) for p in job['patterns']]\n"
          "json.dump([any(p.search(n) for p in found) for n in job['names']], sys.stdout)\n")


class _Expired(BaseException):
    """Raised by the timer's signal handler inside the regex engine (never escapes this module)."""


def matching_names(patterns: Sequence[str], names: Sequence[str], key: str,
                   seconds: float | None = None) -> list[bool]:
    """For each name, whether any pattern is found in it (re.search), all within `seconds`
    (default REGEX_SECONDS).

    Example:
        >>> matching_names([r"^fc\\b", "head"], ["fc.weight", "body.conv", "head.bias"], "also")
        [True, False, True]
    """
    seconds = REGEX_SECONDS if seconds is None else seconds
    compiled = [re.compile(p) for p in patterns]  # checked already: seinject.rule.checks.regexes
    clock = _Clock()
    with clock.armed(seconds) as timed:
        if timed:
            return [_search(compiled, name, clock, key, seconds) for name in names]
    return _in_child(patterns, names, key, seconds)


class _Clock:
    """An interval timer whose signal interrupts the regex engine only while a search runs
    (the engine checks for signals as it backtracks); outside a search it only sets a flag."""

    def __init__(self) -> None:
        self.searching = False
        self.expired = False

    @contextlib.contextmanager
    def armed(self, seconds: float) -> Iterator[bool]:
        """Yield True with the timer armed, or False when no timer can be used here (not the main
        thread, no SIGALRM, or the caller's own interval timer is running)."""
        usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
                  and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
        if not usable:
            yield False
            return
        previous = signal.signal(signal.SIGALRM, self._ring)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def _ring(self, signum, frame) -> None:  # noqa: ANN001 - a signal handler's signature
        self.expired = True
        if self.searching:
            raise _Expired()


def _search(compiled: list[re.Pattern], name: str, clock: _Clock, key: str, seconds: float) -> bool:
    for pattern in compiled:
        try:
            if clock.expired:
                raise _Expired()
            clock.searching = True
            hit = pattern.search(name) is not None
        except _Expired:
            raise _too_slow(key, short(pattern.pattern), f"the name {short(name)}", seconds) from None
        finally:
            clock.searching = False
        if hit:
            return True
    return False


def _in_child(patterns: Sequence[str], names: Sequence[str], key: str, seconds: float) -> list[bool]:
    job = json.dumps({"patterns": list(patterns), "names": list(names)})
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD], input=job, capture_output=True,
                              text=True, timeout=seconds + 1.0, check=True)  # + the child's start-up
        return [bool(x) for x in json.loads(done.stdout)]
    except subprocess.TimeoutExpired:
        shown = " or ".join(short(p) for p in patterns[:3])
        raise _too_slow(key, shown, f"one of {len(names)} names", seconds) from None
    except (OSError, subprocess.CalledProcessError, ValueError):  # no usable interpreter: unbounded
        compiled = [re.compile(p) for p in patterns]
        return [any(p.search(n) for p in compiled) for n in names]


def _too_slow(key: str, pattern: str, where: str, seconds: float) -> ConfigError:
    return ConfigError(f"{key} pattern {pattern} took more than {seconds:g} s against {where}; it "
                       "backtracks without end: write it without nested repetition (e.g. (a+)+) or "
                       "overlapping alternatives under a repetition (e.g. (a|a)*)", key=key)
