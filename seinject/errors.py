"""The package's exception and warning types: one hierarchy under SEInjectError.

Example:
    >>> from seinject.errors import SEInjectError, RuleError
    >>> issubclass(RuleError, SEInjectError)
    True
"""

from __future__ import annotations


class SEInjectError(Exception):
    """Base class of every error seinject raises on purpose."""


class ConfigError(SEInjectError, ValueError):
    """A setting or option (ratio, include, first, input shape, ...) has a bad value; the message
    names it and `key` holds its name when there is one (the YAML loader uses it for the line).

    Example:
        >>> err = ConfigError("'every' must be an integer >= 1, got 0", key="every")
        >>> err.key, str(err)
        ('every', "'every' must be an integer >= 1, got 0")
    """

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        self.reason = message
        super().__init__(message)


class RuleError(SEInjectError, ValueError):
    """A YAML rule is malformed. Carries the file and line at fault when known.

    Example:
        >>> str(RuleError("unknown key 'ratoi'", path="r.yaml", line=3))
        "r.yaml:3: unknown key 'ratoi'"
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class RuleNotFoundError(RuleError):
    """A rule name is neither a built-in rule nor a readable YAML file."""


class ModelError(SEInjectError):
    """The model cannot be processed (nothing traceable, wrong type, ...)."""


class NoSitesError(SEInjectError):
    """A rule matched nothing and the caller asked for that to be an error (strict mode)."""


class CheckpointError(SEInjectError, ValueError):
    """An SE checkpoint cannot be written or does not fit the model; the message names the file and
    the first site, block or tensor at fault. `mismatches` lists every mismatch found (one line each).

    Example:
        >>> err = CheckpointError("no SE block 'layer1.0.se' in the model", path="se.safetensors")
        >>> str(err), err.mismatches
        ("se.safetensors: no SE block 'layer1.0.se' in the model", [])
    """

    def __init__(self, message: str, path: str | None = None, mismatches: "list[str] | None" = None):
        self.path = path
        self.reason = message
        self.mismatches = list(mismatches or [])
        super().__init__(f"{path}: {message}" if path is not None else message)


class SEInjectWarning(UserWarning):
    """Warnings about parts of a model that were left out or look unusual."""


class UsageError(SEInjectError, ValueError):
    """A call or command line asks for something that cannot be done as given (e.g. OUT equal to IN)."""


class UnsafeModelError(ModelError):
    """A model file is refused before any runtime sees it (e.g. external data outside its folder)."""


class VerificationError(SEInjectError):
    """The rewritten model failed a check (onnx.checker, or its outputs differ from the original's)."""
