"""Models seinject cannot rewrite or restore as given: TorchScript, torch.compile wrappers, quantized blocks.

- A TorchScript module (torch.jit.script / torch.jit.trace) has no Python forward to
  rewrite: apply, plan and remove refuse it with a ModelError. Apply before scripting.
- torch.compile's wrapper (OptimizedModule) holds the Python model in `_orig_mod`:
  apply and plan work on that model; remove refuses the wrapper, whose compiled code
  holds the rewritten forward (call it on `wrapper._orig_mod`, then compile again).
- An SE block whose linear layers were converted (quantization replaces nn.Linear) can
  no longer be checked or taken out exactly: remove refuses it, naming the block.

Example:
    >>> import torch.nn as nn
    >>> compiled_inner(nn.ReLU()) is None
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from .gates.base import Gate


def compiled_inner(model: Any) -> nn.Module | None:
    """The module torch.compile wrapped, when `model` is torch.compile's wrapper; else None.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.ReLU()
        >>> compiled_inner(torch.compile(net)) is net
        True
    """
    inner = getattr(model, "_orig_mod", None) if isinstance(model, nn.Module) else None
    if isinstance(inner, nn.Module) and type(model).__name__ == "OptimizedModule":
        return inner
    return None


def check_rewritable(model: Any) -> None:
    """ModelError unless `model` is a Python nn.Module seinject can trace.

    Example:
        >>> check_rewritable("resnet50.onnx")
        Traceback (most recent call last):
        ...
        seinject.errors.ModelError: expected a torch.nn.Module, got str (for ONNX models use seinject.onnx.apply)
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}"
                         " (for ONNX models use seinject.onnx.apply)")
    if isinstance(model, torch.jit.ScriptModule):
        raise ModelError(f"{type(model).__name__} is a TorchScript module (torch.jit.script or trace): it has "
                         "no Python forward to rewrite; apply seinject to the Python model, then script it")


def check_restorable(model: Any) -> None:
    """ModelError when remove() cannot give back the original model exactly, naming the module at fault.

    Example:
        >>> import torch, torch.nn as nn
        >>> check_restorable(torch.compile(nn.ReLU()))
        Traceback (most recent call last):
        ...
        seinject.errors.ModelError: remove() got torch.compile's wrapper (OptimizedModule): its compiled code holds the rewritten forward; call seinject.remove(model._orig_mod) and compile the result again
    """
    check_rewritable(model)
    if compiled_inner(model) is not None:
        raise ModelError("remove() got torch.compile's wrapper (OptimizedModule): its compiled code holds the "
                         "rewritten forward; call seinject.remove(model._orig_mod) and compile the result again")
    for name, module in model.named_modules():
        if isinstance(module, torch.jit.ScriptModule):
            raise ModelError(f"cannot remove SE blocks from {name!r}: it is a TorchScript module")
        if isinstance(module, Gate):
            for layer in ("fc1", "fc2"):
                kind = type(getattr(module, layer, None))
                if kind is not nn.Linear and kind is not type(None):
                    raise ModelError(f"cannot remove SE block {name!r}: its {layer} is a {kind.__name__}, not "
                                     "nn.Linear (the model was quantized or converted after apply); remove "
                                     "SE blocks before converting the model")
