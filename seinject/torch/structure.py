"""Structural keys for nn.Modules: modules built alike trace alike, so one fx trace serves all.

A module's forward traced with its children as leaves depends on its class and on
what the forward can read without a tensor: its own plain attributes, its children's
names, classes and plain attributes (`self.conv.out_channels`, `len(self.blocks)`),
and its parameters and buffers. fx turns parameters into get_attr nodes, so only their
names enter the key. Buffers reach traced code as real tensors: their shapes can be
baked into the graph and Python control flow on them is evaluated, so their names,
shapes and dtypes enter the key, and so do the values of small buffers (flags,
counters: at most 8 elements) of modules whose forward is traced. Two modules with
equal keys therefore trace to the same graph. A module holding a plain (unregistered)
tensor or a submodule outside `_modules` has no key: fx would bake that object into
the graph.

Keys are small ints interned per StructureKeys instance. It holds on to every module and
every object it compared by identity (functions, configs), so an id it has seen is never
reused for another object while it lives; use one instance per pass over a model.

Example:
    >>> import torch.nn as nn
    >>> keys = StructureKeys()
    >>> a, b, c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 8)
    >>> keys.key(a) == keys.key(b), keys.key(a) == keys.key(c)
    (True, False)
"""

from __future__ import annotations

import enum
from typing import Any, Callable

import torch
from torch import nn

# nn.Module bookkeeping that a traced forward does not read as plain values.
_INTERNAL = frozenset({
    "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set",
    "_backward_pre_hooks", "_backward_hooks", "_is_full_backward_hook",
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
})
# types whose values compare by value; _PLAIN matches the exact type (the common case,
# checked first), _SCALARS also subclasses and enums
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device,
                    torch.memory_format, torch.layout})
_SCALARS = (*_PLAIN, enum.Enum)


class _NoKey(Exception):
    """A value that fx could capture by reference (a tensor, a module outside _modules)."""


class StructureKeys:
    """Interns structural keys of modules, memoised by module identity.

    Example: see the module docstring.
    """

    def __init__(self, traced: Callable[[nn.Module], bool] = lambda module: True) -> None:
        self._traced = traced  # whose forward gets traced (their small buffers key by value)
        self._ids: dict[tuple, int] = {}
        self._memo: dict[int, tuple[nn.Module, int | None]] = {}
        self._pinned: list = []  # objects keyed by identity, kept alive so ids stay unique

    def key(self, module: nn.Module) -> int | None:
        """The module's structural key, or None when it cannot safely have one."""
        memo = self._memo.get(id(module))
        if memo is None:
            memo = self._memo[id(module)] = (module, self._compute(module))
        return memo[1]

    def _compute(self, module: nn.Module) -> int | None:
        children = []
        for name, child in module._modules.items():
            child_key = None if child is None else self.key(child)
            if child is not None and child_key is None:
                return None
            children.append((name, child_key))
        try:
            attrs = tuple((name, _freeze(value, self._pinned)) for name, value in module.__dict__.items()
                          if name not in _INTERNAL)
        except _NoKey:
            return None
        buffers = module._buffers
        if buffers:
            values = self._traced(module)
            buffers = tuple((k, _buffer_key(v, values)) for k, v in buffers.items())
        full = (type(module), attrs, tuple(children),
                tuple((k, v is None) for k, v in module._parameters.items()), buffers or ())
        return self._ids.setdefault(full, len(self._ids))


_SMALL_BUFFER = 8


def _buffer_key(buffer: torch.Tensor | None, with_values: bool) -> Any:
    if buffer is None:
        return None
    if with_values and buffer.numel() <= _SMALL_BUFFER and not buffer.is_meta:
        return (tuple(buffer.shape), buffer.dtype, tuple(buffer.flatten().tolist()))
    return (tuple(buffer.shape), buffer.dtype)


def _freeze(value: Any, pinned: list) -> Any:
    """A hashable stand-in for a plain attribute value (identity for other objects).

    Scalars pair with their type, so 1, 1.0 and True stay apart; a tuple or list of
    plain scalars (kernel sizes, strides) takes a shortcut with the same guarantee.
    """
    kind = type(value)
    if kind in _PLAIN:
        return (kind, value)
    if kind is tuple or kind is list or kind is torch.Size:
        kinds = tuple(map(type, value))
        if _PLAIN.issuperset(kinds):
            return (kind, kinds, tuple(value))
        return (kind, tuple(_freeze(v, pinned) for v in value))
    if isinstance(value, _SCALARS):
        return (kind, value)
    if isinstance(value, (torch.Tensor, nn.Module)):
        raise _NoKey
    if isinstance(value, (tuple, list)):
        return (kind, tuple(_freeze(v, pinned) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((_freeze(k, pinned), _freeze(v, pinned)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        raise _NoKey  # iteration order is not part of equality
    pinned.append(value)
    return ("id", id(value))
