"""The shape pass: one forward on example_inputs that records how every module is called and what it returns.

For each module's first call it records the input and output shapes, which inputs are lists
of tensors, and the call itself (its arguments with tensors replaced by TensorMeta: shape,
dtype, device), so a module whose forward cannot be traced with proxies can be traced again
at those values (seinject.torch.valued), and a module called from a forward seinject cannot
trace is traced for the call it really gets (its flags, its lists).

Example:
    >>> import torch, torch.nn as nn
    >>> shapes = record_shapes(nn.Sequential(nn.Conv2d(3, 8, 3)), torch.zeros(1, 3, 8, 8))
    >>> shapes["0"]["in"], shapes["0"]["out"]
    ([(1, 3, 8, 8)], (1, 8, 6, 6))
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn
from torch.fx._symbolic_trace import PH

from .calls import Call, forward_function, forward_parameters, left_out, simple
from .trace import _attributes, _restore_attributes
from .wrappers import compiled_inner


@dataclass(frozen=True)
class TensorMeta:
    """A tensor as the shape pass saw it: enough to make a fake one like it.

    Example:
        >>> TensorMeta((1, 3), torch.float32, torch.device("cpu")).shape
        (1, 3)
    """

    shape: tuple
    dtype: torch.dtype
    device: torch.device


def _meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return TensorMeta(tuple(value.shape), value.dtype, value.device)
    return value


def record_shapes(model: nn.Module, example_inputs: Any, calls: dict[int, int] | None = None) -> dict[str, dict]:
    """Input and output shapes of every module's first call (and, under "lists", (is a list, length)
    for each input that is a list or tuple of tensors; under "call", its (args, kwargs) with tensors
    as TensorMeta), from one forward pass; `calls`, when given, receives how often each module ran
    in that pass (by id: an untraceable forward can call a submodule, or a submodule's child, more
    often than the trace shows).

    The pass runs in eval mode on fake tensors (no compute, no buffer updates), falling
    back to real tensors (copies: in-place ops must not change the caller's) under no_grad;
    training flags are restored afterwards.

    Example: see the module docstring.
    """
    if example_inputs is None:
        return {}
    args = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    shapes: dict[str, dict] = {}
    counts: dict[int, int] = {}

    def shape_of(value: Any):
        return tuple(value.shape) if isinstance(value, torch.Tensor) else None

    def list_layout(value: Any):  # a list/tuple of tensors: its type and length, for tracing that call
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
            return (type(value) is list, len(value))
        return None

    handles = []
    for path, module in model.named_modules():
        def pre(mod, inputs, kwargs, path=path):
            counts[id(mod)] = counts.get(id(mod), 0) + 1
            if path not in shapes:
                shapes[path] = {"in": [shape_of(t) for t in inputs], "out": None,
                                "lists": [list_layout(t) for t in inputs],
                                "call": pytree.tree_map(_meta, (tuple(inputs), dict(kwargs)))}

        def post(mod, inputs, output, path=path):
            if shapes[path]["out"] is None:
                shapes[path]["out"] = shape_of(output)
                shapes[path]["returned"] = pytree.tree_map(_meta, output)

        handles += [module.register_forward_pre_hook(pre, with_kwargs=True), module.register_forward_hook(post)]
    modes = {m: m.training for m in model.modules()}
    saved = {m: _attributes(m) for m in modes}  # forwards that cache on self get their state back
    model.eval()
    _eager_compiled(model)  # undone with the attributes below
    try:
        _run_fake(model, args)
    except Exception:  # some ops have no fake kernel: fall back to a real pass
        shapes.clear()
        counts.clear()
        with torch.no_grad():
            model(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])
    finally:
        for handle in handles:
            handle.remove()
        for module, attributes in saved.items():
            _restore_attributes(module, attributes)
        for module, training in modes.items():
            module.training = training
    if calls is not None:
        calls.update(counts)
    return shapes


def recorded_call(module: nn.Module, recorded: dict | None, numbers: bool = False) -> Call | None:
    """The Call a module got in the shape pass: tensors traced, lists of tensors read by index, and
    values of simple type (flags) fixed; None when the pass did not run it or its arguments do not
    bind to its forward. Numbers (a timestep, a scale) stay traced values unless `numbers`: fixed,
    each value would need a forward of its own.

    Example:
        >>> class Net(nn.Module):
        ...     def forward(self, x, embed=False): return x
        >>> recorded_call(Net(), {"call": ((TensorMeta((1,), torch.float32, torch.device("cpu")),), {})}).values
        (('embed', False),)
    """
    bound = bind_recorded(module, recorded)
    if bound is None:
        return None
    values = []
    for parameter in forward_parameters(module):
        name = parameter.name
        value = bound.get(name, _LEFT_OUT)
        if value is _LEFT_OUT:
            value = left_out(parameter)
            if value is not PH:
                values.append((name, value))
        elif parameter.kind is parameter.VAR_POSITIONAL:
            values.append((name, tuple(_traced_or_fixed(v, numbers) for v in value)))
        elif parameter.kind is parameter.VAR_KEYWORD:
            values.append((name, {k: _traced_or_fixed(v, numbers) for k, v in value.items()}))
        else:
            chosen = _traced_or_fixed(value, numbers)
            if chosen is not PH:
                values.append((name, chosen))
    return Call(tuple(values))


_LEFT_OUT = object()


def bind_recorded(module: nn.Module, recorded: dict | None) -> dict | None:
    """{parameter: recorded value} for the module's recorded first call (tensors as TensorMeta)."""
    if not recorded or "call" not in recorded:
        return None
    args, kwargs = recorded["call"]
    try:
        signature = inspect.signature(inspect.unwrap(forward_function(module)))
        return dict(signature.bind(None, *args, **kwargs).arguments)
    except (TypeError, ValueError):
        return None


def _traced_or_fixed(value: Any, numbers: bool) -> Any:
    """PH for a tensor, a list/tuple of PH for a list/tuple of tensors, the value for a simple one (a
    number only when `numbers`), PH (traced, unknown) for anything else."""
    if isinstance(value, TensorMeta) or not numbers and type(value) in (int, float):
        return PH
    if type(value) in (list, tuple) and value and all(isinstance(v, TensorMeta) for v in value):
        return type(value)(PH for _ in value)
    return value if simple(value) else PH


def _eager_compiled(model: nn.Module) -> None:
    """Make torch.compile's wrappers inside the model call the module they wrap, eagerly (an
    instance attribute `forward`): compiled code must not see the shape pass's fake tensors (inductor
    kernels crash on them), and the wrapped module's own hooks still run."""
    for module in model.modules():
        inner = compiled_inner(module)
        if inner is not None:
            module.forward = inner.__call__


def _run_fake(model: nn.Module, args: tuple) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        model(*fake)
