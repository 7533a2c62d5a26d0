"""How a module is called, for tracing it: which forward parameters stay traced values and which the trace fixes.

Frameworks write forwards that take flags (`embed=False`, `output_hidden_states=None`,
`return_dict=None`), `*args` and `**kwargs`. torch.fx makes every parameter a proxy, so
`if embed:` stops the trace. A Call fixes such parameters to the Python value the call gives
them (or their default, when the call leaves them out): the graph is then the forward for that
value, and its code checks the value with `fixed` (a ModelError when a later call passes
another one, never a silent other computation). Tensors stay proxies; a list or tuple of
tensors becomes a list of proxies read by index.

Example:
    >>> import torch.nn as nn
    >>> class Net(nn.Module):
    ...     def forward(self, x, embed=False, *rest, **options):
    ...         return x
    >>> spec = defaults_call(Net(), passed=1)
    >>> spec.values
    (('embed', False), ('rest', ()), ('options', {}))
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn
from torch.fx._symbolic_trace import PH

from ..errors import ModelError
from ..suggest import short

# values a trace may fix and its code can check: they compare by value and print as Python literals
SIMPLE_TYPES = (type(None), bool, int, float, str)


def simple(value: Any) -> bool:
    """Whether a trace can fix `value` and check it in the generated code.

    Example:
        >>> simple(None), simple((1, "a")), simple(object())
        (True, True, False)
    """
    if isinstance(value, SIMPLE_TYPES):
        return True
    if type(value) in (tuple, list):
        return all(simple(v) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and simple(v) for k, v in value.items())
    return False


@dataclass(frozen=True)
class Call:
    """For each forward parameter the trace treats specially: PH (a traced value), a list or tuple of
    PH (a list of tensors, read by index), or a fixed Python value. Parameters not listed are traced
    values (positional and keyword ones) or empty (`*args`, `**kwargs`: the call passes none).

    Example:
        >>> Call((("flag", True),)).get("flag"), Call(()).get("x") is PH
        (True, True)
    """

    values: tuple[tuple[str, Any], ...]

    def get(self, name: str, default: Any = PH) -> Any:
        """The value for parameter `name` (PH when the call does not list it)."""
        for key, value in self.values:
            if key == name:
                return value
        return default

    def key(self) -> tuple:
        """A hashable form, to share the trace among modules built alike and called alike."""
        return tuple((name, _hashable(value)) for name, value in self.values)

    def __bool__(self) -> bool:
        return bool(self.values)


def key_of(call: Call | None) -> tuple | None:
    """call.key(), None for no call (the plain trace): what tells two traces of one module apart.

    Example:
        >>> key_of(None), key_of(Call((("flag", True),)))
        (None, (('flag', ('bool', True)),))
    """
    return None if call is None else call.key()


def left_out(parameter: inspect.Parameter) -> Any:
    """The value a call that leaves `parameter` out gives it: () for `*args`, {} for `**kwargs`, a default
    of simple type; PH (it stays a traced value) for anything else.

    Example:
        >>> def forward(self, x, flag=False, *rest): ...
        >>> [left_out(p) is PH or left_out(p) for p in list(inspect.signature(forward).parameters.values())[1:]]
        [True, False, ()]
    """
    if parameter.kind is parameter.VAR_POSITIONAL:
        return ()
    if parameter.kind is parameter.VAR_KEYWORD:
        return {}
    if parameter.default is not parameter.empty and simple(parameter.default):
        return parameter.default
    return PH


def _hashable(value: Any) -> Any:
    if value is PH:
        return ("PH",)
    if type(value) in (list, tuple):
        return (type(value).__name__, tuple(_hashable(v) for v in value))
    if type(value) is dict:
        return ("dict", tuple((k, _hashable(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def forward_parameters(module: nn.Module) -> list[inspect.Parameter]:
    """The parameters of the forward a call of `module` runs (after self); [] when unknown.

    Example:
        >>> [p.name for p in forward_parameters(nn.Linear(2, 2))]
        ['input']
    """
    function = forward_function(module)
    try:
        parameters = list(inspect.signature(inspect.unwrap(function)).parameters.values())
    except (TypeError, ValueError):
        return []
    return parameters[1:]


def forward_function(module: nn.Module) -> Callable:
    """The function a call of `module` runs as its forward: an instance-level override that is a
    method of the module itself (ultralytics' `m.forward = m.forward_fuse`), else the class's.

    Example:
        >>> forward_function(nn.ReLU()) is nn.ReLU.forward
        True
    """
    override = module.__dict__.get("forward")
    if override is not None and getattr(override, "__self__", None) is module:
        return override.__func__
    return type(module).forward


def defaults_call(module: nn.Module, passed: int) -> Call:
    """The call that passes `passed` positional traced values and leaves every other parameter at its
    default: defaults of simple type are fixed, `*args` and `**kwargs` are empty.

    Example:
        >>> class Net(nn.Module):
        ...     def forward(self, x, flag=None): return x
        >>> defaults_call(Net(), passed=1).values
        (('flag', None),)
    """
    values = []
    for index, parameter in enumerate(forward_parameters(module)):
        if index < passed and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            continue
        value = left_out(parameter)
        if value is not PH:
            values.append((parameter.name, value))
    return Call(tuple(values))


def fixed(value: Any, expected: Any, name: str) -> None:
    """Check, in a rewritten forward, that a parameter the trace fixed has that value.

    Example:
        >>> fixed(False, False, "embed")
        >>> fixed(True, False, "embed")
        Traceback (most recent call last):
        ...
        seinject.errors.ModelError: this forward was rewritten for embed=False and was called with embed=True ...
    """
    if not _same(value, expected):
        raise ModelError(f"this forward was rewritten for {name}={short(expected)} and was called with "
                         f"{name}={short(value)} (seinject traces a flag at the value the model is called with: "
                         "apply again with example_inputs that pass this value)")


def _same(value: Any, expected: Any) -> bool:
    if type(expected) in (list, tuple):
        return type(value) in (list, tuple) and len(value) == len(expected) and all(
            _same(v, e) for v, e in zip(value, expected))
    if type(expected) is dict:
        return isinstance(value, dict) and value.keys() == expected.keys() and all(
            _same(value[k], expected[k]) for k in expected)
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(expected, float) and expected != expected:  # NaN, a default some forwards use
        return isinstance(value, float) and value != value
    return value is expected if expected is None else (not isinstance(value, bool) and value == expected)


def fixed_length(value: Any, expected: int, name: str) -> None:
    """Check that `*args` (or a list the trace reads by index) has the length the trace saw.

    Example:
        >>> fixed_length((), 0, "*args")
    """
    if len(value) != expected:
        raise ModelError(f"this forward was rewritten for {expected} value(s) in {name} and was called with "
                         f"{len(value)}")


def fixed_keys(value: Any, expected: tuple, name: str) -> None:
    """Check that `**kwargs` holds the keys the trace saw.

    Example:
        >>> fixed_keys({}, (), "**kwargs")
    """
    if tuple(sorted(value)) != expected:
        raise ModelError(f"this forward was rewritten for {name} with keys {list(expected)} and was called with "
                         f"{sorted(value)}")


GUARDS = (fixed, fixed_length, fixed_keys)
