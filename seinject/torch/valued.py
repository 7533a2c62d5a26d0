"""Trace a forward at the values of example_inputs: for forwards that compute on their input's sizes.

A forward that does `int(x.shape[-2])` (Hugging Face's TF-style padding), checks
`if x.shape[1] != self.num_channels`, or builds anchors when `self.shape != x.shape`
(ultralytics' Detect) cannot be traced with plain proxies. Given the call the shape pass
recorded, this tracer runs every op it records on fake tensors as well (no compute), so
shape reads, `int()`, `bool()`, `len()` and iteration get the example's values and the
trace goes on. The graph then holds for inputs of those sizes only: seinject reads it to
see the module's structure, channel counts and shapes, but never installs it as the
module's forward (blocks in such a module are attached to its children instead). A trace
that read no value is as general as a plain one.

Example:
    >>> import torch, torch.nn as nn
    >>> from seinject.torch.shapes import record_shapes
    >>> class Pad(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = nn.Conv2d(3, 4, 3)
    ...     def forward(self, x):
    ...         extra = int(x.shape[-1]) % 2
    ...         return self.conv(nn.functional.pad(x, (0, extra, 0, extra)))
    >>> net = Pad()
    >>> shapes = record_shapes(net, torch.zeros(1, 3, 7, 7))
    >>> lg = trace_valued(net, "", shapes[""])
    >>> lg.graph is not None, lg.sized is not None
    (True, True)
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .shapes import TensorMeta, bind_recorded, recorded_call
from .trace import LocalGraph, Proxy, _attributes, _forward_override, _get_attr_names, _restore_attributes, _ShallowTracer, failure

SHAPE_KEY = "seinject_shape"  # node.meta key: the shape of the node's value in the traced example
_UNKNOWN = object()
# tensor facts a forward reads without computing: answered from the example, no graph node
_META_ATTRS = frozenset({"shape", "ndim", "dtype", "device", "is_cuda", "layout", "is_floating_point",
                         "requires_grad", "is_complex"})
_META_METHODS = frozenset({"size", "dim", "numel", "ndimension", "nelement", "element_size", "get_device",
                           "is_contiguous", "is_floating_point", "is_complex"})


class _ValuedProxy(Proxy):
    """A proxy that knows its value in the example: Python reads of it get that value."""

    def _value(self) -> Any:
        return self.tracer.values.get(self.node, _UNKNOWN)

    def _concrete(self, read: str) -> Any:
        value = self._value()
        if value is _UNKNOWN:
            raise fx.proxy.TraceError(f"{read} of a value seinject could not compute on example_inputs")
        self.tracer.read.append(read)
        return value

    def __getattr__(self, name: str) -> Any:
        if name in _META_ATTRS:
            value = self.tracer.values.get(self.node, _UNKNOWN)
            if isinstance(value, torch.Tensor):
                self.tracer.read.append(f"x.{name}")
                return getattr(value, name)
        return super().__getattr__(name)

    def __bool__(self) -> bool:
        return bool(self._concrete("bool()"))

    def __int__(self) -> int:
        return int(self._concrete("int()"))

    def __index__(self) -> int:
        return int(self._concrete("an index"))

    def __float__(self) -> float:
        return float(self._concrete("float()"))

    def __len__(self) -> int:
        if self._value() is _UNKNOWN:
            return super().__len__()
        return len(self._concrete("len()"))


class _ValuedTracer(_ShallowTracer):
    def __init__(self, call, example: dict, fake_mode) -> None:
        super().__init__(call)
        self.example = example  # parameter name -> fake value
        self.mode = fake_mode
        self.values: dict[fx.Node, Any] = {}
        self.read: list[str] = []  # the Python reads of example values the trace depends on

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ValuedProxy(node, self)

    def placeholder_value(self, proxy: fx.Proxy, name: str) -> None:
        self.values[proxy.node] = self.example.get(name.lstrip("*"), _UNKNOWN)

    def iter(self, obj: fx.Proxy):
        value = self.values.get(obj.node, _UNKNOWN)
        if isinstance(value, (tuple, list)):
            self.read.append("iteration")
            return iter([obj[i] for i in range(len(value))])
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            self.read.append("iteration over a tensor")
            return iter([obj[i] for i in range(value.shape[0])])
        return super().iter(obj)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        if kind == "call_method" and target in _META_METHODS:
            value = self._run(kind, target, args, kwargs)
            if value is not _UNKNOWN:  # x.size(1), x.dim(): the example's value, no node
                self.read.append(f"x.{target}()")
                return value
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if kind != "placeholder":
            value = self._run(kind, target, args, kwargs)
            self.values[proxy.node] = value
            if isinstance(value, torch.Tensor):
                proxy.node.meta[SHAPE_KEY] = tuple(value.shape)
        return proxy

    def _run(self, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
        """The op's value on the example's fake tensors (_UNKNOWN when an input is unknown or it fails)."""
        try:
            args, kwargs = self._values_of(args), self._values_of(kwargs)
        except LookupError:
            return _UNKNOWN
        with _untraced(), self.mode:
            try:
                if kind == "get_attr":
                    return self._attribute(target)
                if kind == "call_function":
                    return target(*args, **kwargs)
                if kind == "call_method":
                    return getattr(args[0], target)(*args[1:], **kwargs)
                if kind == "call_module":
                    return _run_module(self.root.get_submodule(target), args, kwargs)
            except Exception:  # an op the fake tensors cannot run: its value stays unknown
                return _UNKNOWN
        return _UNKNOWN

    def _values_of(self, arg: Any) -> Any:
        if isinstance(arg, fx.Proxy):
            value = self.values.get(arg.node, _UNKNOWN)
            if value is _UNKNOWN:
                raise LookupError
            return value
        if isinstance(arg, (tuple, list)):
            items = [self._values_of(a) for a in arg]
            return type(arg)(*items) if hasattr(arg, "_fields") else type(arg)(items)
        if isinstance(arg, dict):
            return {k: self._values_of(v) for k, v in arg.items()}
        if isinstance(arg, slice):
            return slice(self._values_of(arg.start), self._values_of(arg.stop), self._values_of(arg.step))
        return arg

    def _attribute(self, target: str) -> Any:
        value: Any = self.root
        for part in target.split("."):
            value = getattr(value, part)
        return self.mode.from_tensor(value) if isinstance(value, torch.Tensor) else value


@contextlib.contextmanager
def _untraced():
    """Run real module calls while fx's tracing patches are on (they would record the calls)."""
    from torch.fx import _symbolic_trace

    revert = getattr(_symbolic_trace, "_maybe_revert_all_patches", None)
    with (revert() if revert is not None else contextlib.nullcontext()):
        yield


def _run_module(module: nn.Module, args: tuple, kwargs: dict) -> Any:
    """Call a child on fake tensors, giving back whatever its forwards cache on self."""
    saved = {m: _attributes(m) for m in module.modules()}
    training = {m: m.training for m in saved}
    try:
        return module(*args, **kwargs)
    finally:
        for m, attributes in saved.items():
            _restore_attributes(m, attributes)
            m.training = training[m]


def trace_valued(module: nn.Module, path: str, recorded: dict | None, why: str = "") -> LocalGraph:
    """Trace `module` at the call the shape pass recorded (seinject.torch.shapes); a LocalGraph with
    `sized` set when the graph depends on the example's sizes, or with the reason it failed.

    Example: see the module docstring.
    """
    call = recorded_call(module, recorded)
    bound = bind_recorded(module, recorded)
    if call is None or bound is None:
        return LocalGraph(path, module, None, why or "not called on example_inputs")
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        example = {name: _fake(value) for name, value in bound.items()}
    tracer = _ValuedTracer(call, example, mode)
    saved = _attributes(module)
    graph = None
    try:
        with _forward_override(module):
            graph = tracer.trace(module)
    except Exception as exc:
        return LocalGraph(path, module, None, f"{why}; at the sizes of example_inputs: {failure(exc)}"[:400], call=call)
    finally:
        _restore_attributes(module, saved, keep=_get_attr_names(graph))
    sized = None
    if tracer.read:
        reads = ", ".join(dict.fromkeys(tracer.read))
        sized = f"its forward reads its input's sizes ({reads}): traced at the sizes of example_inputs"
    return LocalGraph(path, module, graph, call=call, sized=sized)


def _fake(value: Any) -> Any:
    if isinstance(value, TensorMeta):
        return torch.empty(value.shape, dtype=value.dtype, device=value.device)
    if type(value) in (list, tuple):
        return type(value)(_fake(v) for v in value)
    if type(value) is dict:
        return {k: _fake(v) for k, v in value.items()}
    return value
