"""Give a module its rewritten forward, and take it back: the class swap behind a splice.

A module that receives SE blocks becomes an instance of a subclass of its own class whose
forward is the edited fx code (isinstance, methods, attributes and children stay). Modules
whose forward compiles to the same code share one subclass. The module remembers its
original class and the names of its SE children, so `restore` can undo everything.
nn.Sequential / nn.ModuleList owners keep their length, iteration and indexing: their SE
children are hidden from them.

Example:
    >>> import torch.nn as nn
    >>> restore(nn.Sequential(nn.ReLU()))
    0
"""

from __future__ import annotations

import inspect
import weakref
from collections import OrderedDict

import torch.fx as fx
from torch import nn

ORIGINAL_CLASS = "_seinject_original_class"
SE_NAMES = "_seinject_se_names"


# Rewritten classes, shared by every instance whose forward compiles to the same code
# (the 16 bottlenecks of a ResNet-50 that get the same edit share one class).
_CLASSES: "weakref.WeakValueDictionary[tuple, type]" = weakref.WeakValueDictionary()


def _compile(code, owner: str):
    namespace = dict(code.globals)
    exec(compile(code.src, f"<seinject forward of {owner}>", "exec"), namespace)
    return namespace["forward"]


def install(module: nn.Module, graphs: list[fx.Graph], names: list[str]) -> None:
    original = module.__dict__.get(ORIGINAL_CLASS, type(module))
    codes = [graph.python_code(root_module="self") for graph in graphs]
    key = (original, tuple(code.src for code in codes), module.training if len(codes) > 1 else None)
    new_class = _CLASSES.get(key)
    if new_class is None:
        forwards = [_compile(code, original.__name__) for code in codes]
        forward = forwards[0] if len(forwards) == 1 else _dispatch(forwards, module.training)
        body = {"forward": forward, "__module__": original.__module__}
        if issubclass(original, (nn.Sequential, nn.ModuleList)):
            body.update(_HIDE_SE)
        new_class = type(original.__name__, (original,), body)
        new_class.__qualname__ = original.__qualname__
        _CLASSES[key] = new_class
    adopt(module, new_class, names)


def adopt(module: nn.Module, new_class: type, names: list[str]) -> None:
    """Give the module its rewritten class, remembering the original and the SE names."""
    original = module.__dict__.get(ORIGINAL_CLASS, type(module))
    module.__class__ = new_class
    module.__dict__[ORIGINAL_CLASS] = original
    module.__dict__[SE_NAMES] = list(module.__dict__.get(SE_NAMES, [])) + names


def _dispatch(forwards: list, traced_training: bool):
    """A forward that runs the graph traced for the current training mode."""
    current, other = forwards
    train, evaluate = (current, other) if traced_training else (other, current)
    signature = inspect.signature(current)
    params = list(signature.parameters)[1:]
    call = ", ".join(params)
    src = (f"def forward(self, {', '.join(str(p) for p in list(signature.parameters.values())[1:])}):\n"
           f"    if self.training:\n        return _train(self, {call})\n"
           f"    return _eval(self, {call})\n")
    namespace = {"_train": train, "_eval": evaluate}
    exec(compile(src, "<seinject mode dispatch>", "exec"), namespace)
    return namespace["forward"]


def _visible(self) -> list:
    hidden = set(self.__dict__.get(SE_NAMES, ()))
    return [(k, m) for k, m in self._modules.items() if k not in hidden]


def _len(self) -> int:
    return len(_visible(self))


def _iter(self):
    return iter(m for _, m in _visible(self))


def _getitem(self, idx):
    items = _visible(self)
    if isinstance(idx, slice):
        original = self.__dict__[ORIGINAL_CLASS]
        if issubclass(original, nn.Sequential):
            return nn.Sequential(OrderedDict(items[idx]))
        return nn.ModuleList([m for _, m in items[idx]])
    return items[idx][1]


# Sequential/ModuleList owners keep their length, iteration and indexing: SE children hide.
_HIDE_SE = {"__len__": _len, "__iter__": _iter, "__getitem__": _getitem}


def restore(model: nn.Module) -> int:
    """Undo every splice in `model` (in place); returns the number of SE blocks removed.

    Example:
        >>> restore(nn.Sequential(nn.ReLU()))
        0
    """
    removed = 0
    for module in list(model.modules()):
        original = module.__dict__.get(ORIGINAL_CLASS)
        if original is None:
            continue
        for name in module.__dict__.pop(SE_NAMES, []):
            if name in module._modules:
                del module._modules[name]
                removed += 1
        del module.__dict__[ORIGINAL_CLASS]
        module.__class__ = original
    return removed
