"""Trace one module's own forward with torch.fx (children as leaves), and the facts tracing needs.

Each module that is not a torch.nn built-in is traced on its own, so its graph is small
and stays tied to that module: a rewrite changes only the forward of the modules that
receive an SE block. seinject.torch.view inlines these per-module graphs into one view.
A module whose forward cannot be traced gets a LocalGraph with the reason instead.

Example:
    >>> import torch.nn as nn
    >>> [n.op for n in trace_module(nn.Sequential(nn.ReLU())).graph.nodes]
    ['placeholder', 'call_module', 'output']
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import inspect
import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx._symbolic_trace import PH

from .calls import Call, fixed, fixed_keys, fixed_length, forward_function
from .wrappers import compiled_inner

@dataclass
class LocalGraph:
    """The fx graph of one module's forward (children as leaves), or why there is none."""

    path: str
    module: nn.Module
    graph: fx.Graph | None
    error: str | None = None
    calls: int = 0
    shared: bool = False  # the graph came from (or went into) the trace cache: copy before editing
    call: Call | None = None  # what trace_module was given: a trace of the other mode needs it too
    # why the graph holds only for the sizes of example_inputs (None: it holds for any input):
    # such a module's forward is never replaced, its blocks are attached to its children
    sized: str | None = None


class _ShallowTracer(fx.Tracer):
    """Traces one module's own forward: every submodule call becomes a leaf call.

    With a Call, the forward's parameters are made here instead of by fx: one placeholder per
    parameter (the generated forward keeps the signature), each passed to the forward as a traced
    value, a list of traced values read by index, or the fixed value the Call gives it, checked
    by a `fixed` guard in the graph. A list or tuple of tensors that the forward iterates comes
    out of `chunk`/`split` with a known number of parts: iterating it reads each part by index.
    """

    def __init__(self, call: Call | None = None) -> None:
        super().__init__()
        self.call = call

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True

    def create_args_for_root(self, root_fn, is_module, concrete_args=None):
        if self.call is None:
            return super().create_args_for_root(root_fn, is_module, concrete_args)
        function = inspect.unwrap(root_fn)
        parameters = list(inspect.signature(function).parameters.values())[1:]
        placeholders, args, kwargs = [], [], {}
        for parameter in parameters:
            star = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(parameter.kind, "")
            default = () if parameter.default is parameter.empty or star else (parameter.default,)
            proxy = self.create_proxy("placeholder", star + parameter.name, default, {})
            placeholders.append(proxy)
            self.placeholder_value(proxy, parameter.name)
            value = self._argument(proxy, star + parameter.name, star, self.call.get(parameter.name))
            if parameter.kind is parameter.VAR_POSITIONAL:
                args.extend(value)
            elif parameter.kind is parameter.VAR_KEYWORD:
                kwargs.update(value)
            elif parameter.kind is parameter.KEYWORD_ONLY:
                kwargs[parameter.name] = value
            else:
                args.append(value)

        def forward(self_, *_placeholders):
            return root_fn(self_, *args, **kwargs)

        return forward, [self.root, *placeholders]

    def placeholder_value(self, proxy: fx.Proxy, name: str) -> None:
        """A hook for tracers that follow example values (seinject.torch.valued)."""

    def _argument(self, proxy: fx.Proxy, name: str, star: str, value: Any) -> Any:
        """What the forward receives for one parameter (guards for fixed values go into the graph)."""
        if star == "*":
            value = tuple(value) if value is not PH else ()
            self.create_proxy("call_function", fixed_length, (proxy, len(value), name), {})
            return tuple(proxy[i] if v is PH else self._fixed(proxy[i], v, f"{name}[{i}]")
                         for i, v in enumerate(value))
        if star == "**":
            value = dict(value) if value is not PH else {}
            self.create_proxy("call_function", fixed_keys, (proxy, tuple(sorted(value)), name), {})
            return {k: proxy[k] if v is PH else self._fixed(proxy[k], v, f"{name}[{k!r}]") for k, v in value.items()}
        if value is PH:
            return proxy
        if type(value) in (list, tuple) and value and all(v is PH for v in value):
            self.create_proxy("call_function", fixed_length, (proxy, len(value), name), {})
            return type(value)(proxy[i] for i in range(len(value)))
        return self._fixed(proxy, value, name)

    def _fixed(self, proxy: fx.Proxy, value: Any, name: str) -> Any:
        self.create_proxy("call_function", fixed, (proxy, value, name), {})
        return value

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return Proxy(node, self)

    def create_arg(self, a: Any) -> Any:
        """A returned dataclass dict (Hugging Face's ModelOutput) or OrderedDict is rebuilt by a call of its
        class in the graph: fx would make it a plain dict, and a rewritten forward would return that
        (a caller reading `outputs[0]` or `outputs.logits` would fail)."""
        if isinstance(a, dict) and type(a) is not dict and not isinstance(a, fx.Proxy) and \
                (dataclasses.is_dataclass(a) or type(a) is collections.OrderedDict):
            return self.create_node("call_function", type(a), (), {k: self.create_arg(v) for k, v in a.items()})
        return super().create_arg(a)

    def iter(self, obj: fx.Proxy):
        """`list(x.chunk(2, 1))`, `for part in x.split((8, 8), 1)`: one proxy per part, when the
        call fixes how many parts there are (a chunk into more parts than the dim holds fails
        loudly at run time: reading a missing part raises)."""
        parts = _part_count(obj.node)
        if parts is None:
            return super().iter(obj)
        return iter([obj[i] for i in range(parts)])


class Proxy(fx.Proxy):
    """A proxy whose len() is known when it is the result of a chunk/split into a fixed number of parts
    (`list(x.chunk(2, 1))` asks for the length first)."""

    def __len__(self) -> int:
        parts = _part_count(self.node)
        if parts is None:
            return super().__len__()
        return parts


def _part_count(node: fx.Node) -> int | None:
    """How many parts a chunk/split call makes, when its arguments say (chunks=n, a list of sizes)."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", None)
    if node.op not in ("call_method", "call_function") or name not in ("chunk", "split", "tensor_split"):
        return None
    args = node.args[1:] if node.op == "call_method" or len(node.args) > 1 else ()
    count = args[0] if args else node.kwargs.get("chunks", node.kwargs.get("split_size_or_sections",
                                                                           node.kwargs.get("sections")))
    if name == "chunk" and isinstance(count, int) and count > 0:
        return count
    if name in ("split", "tensor_split") and isinstance(count, (list, tuple)) and all(isinstance(c, int) for c in count):
        return len(count) + (name == "tensor_split")
    return None


def trace_module(module: nn.Module, path: str = "", call: Call | None = None, function=None) -> LocalGraph:
    """The local graph of one module, or a LocalGraph with the reason tracing failed.
    call: how the module is called (seinject.torch.calls): parameters the trace fixes to a value
    (flags, defaults the call leaves out), lists of tensors read by index, and `*args`/`**kwargs`.
    function: the forward function to trace (default: what a call of the module runs).

    Example:
        >>> trace_module(nn.Sequential(nn.ReLU())).graph is not None
        True
    """
    if isinstance(module, fx.GraphModule):  # its forward is its graph: read (and edit) that one
        return LocalGraph(path, module, module.graph)
    held, runs = module.__dict__.get("forward"), function or forward_function(module)
    if function is None and held is not None and runs is type(module).forward \
            and compiled_inner(module) is None:  # a call runs something seinject cannot trace as the module
        return LocalGraph(path, module, None, f"its forward is replaced on the instance ({type(held).__name__} "
                          f"{getattr(held, '__qualname__', '')}): seinject traces the class's forward or one of "
                          "the module's own methods", call=call)
    unwritable = _unwritable_signature(runs)
    if unwritable:
        return LocalGraph(path, module, None, unwritable, call=call)
    saved = _attributes(module)
    graph = None
    try:
        with _forward_override(module, runs):
            graph = _ShallowTracer(call).trace(module)
    except Exception as exc:  # any failure of user code under tracing leaves the module out
        return LocalGraph(path, module, None, failure(exc), call=call)
    finally:  # a forward that caches on self (`self.scales = ...`) must not keep the tracer's proxies
        _restore_attributes(module, saved, keep=_get_attr_names(graph))
    return LocalGraph(path, module, graph, call=call)


def _unwritable_signature(function) -> str | None:
    """Why fx cannot write a forward with this signature back as Python, or None: it lists parameters in
    order without a bare `*`, so a keyword-only one without a default after one with a default
    (`forward(self, x, y=None, *, z)`) would be a syntax error.

    Example:
        >>> def forward(self, x, y=None, *, z): ...
        >>> _unwritable_signature(forward)
        "its signature has the keyword-only parameter 'z' without a default after one with a default: fx cannot write it back"
    """
    try:
        parameters = list(inspect.signature(inspect.unwrap(function)).parameters.values())
    except (TypeError, ValueError):
        return None
    defaulted = starred = False
    for parameter in parameters:
        starred = starred or parameter.kind is parameter.VAR_POSITIONAL
        if parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty and defaulted \
                and not starred:
            return (f"its signature has the keyword-only parameter {parameter.name!r} without a default after one "
                    "with a default: fx cannot write it back")
        defaulted = defaulted or parameter.default is not parameter.empty
    return None


def failure(exc: BaseException) -> str:
    """One line naming an exception: its type and the first line of its message."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}"[:300]


@contextlib.contextmanager
def _forward_override(module: nn.Module, function=None):
    """Trace what a call of the module runs (or `function`): an instance-level forward that is one of its
    own methods (ultralytics' fuse sets `m.forward = m.forward_fuse`) is traced in place of the
    class's, under a throwaway subclass."""
    function = function or forward_function(module)
    original = type(module)
    if function is original.forward:
        yield
        return
    module.__class__ = type(original.__name__, (original,), {"forward": function})
    try:
        yield
    finally:
        module.__class__ = original


def _attributes(module: nn.Module) -> tuple[dict, dict, dict]:
    """A shallow snapshot of what a forward can assign on self: plain attributes, buffers, parameters."""
    return dict(module.__dict__), dict(module._buffers), dict(module._parameters)


def _restore_attributes(module: nn.Module, saved: tuple[dict, dict, dict], keep: frozenset = frozenset()) -> None:
    """Undo assignments a traced or shape-pass forward made on the module (attributes added, replaced
    or deleted), except the names in `keep`: constants fx attached for the graph's get_attr nodes.

    Example:
        >>> m = nn.ReLU(); saved = _attributes(m); m.cache = 1; _restore_attributes(m, saved); hasattr(m, "cache")
        False
    """
    for current, before in zip((module.__dict__, module._buffers, module._parameters), saved):
        for name in [name for name in current if name not in before and name not in keep]:
            del current[name]
        for name, value in before.items():
            if current.get(name, _MISSING) is not value:
                current[name] = value


def _get_attr_names(graph: fx.Graph | None) -> frozenset:
    """Top-level attribute names the graph's get_attr nodes read."""
    if graph is None:
        return frozenset()
    return frozenset(str(node.target).split(".")[0] for node in graph.nodes if node.op == "get_attr")


_MISSING = object()


def is_inplace(node: fx.Node, owner: nn.Module) -> bool:
    """True when a node mutates its first argument (add_, relu_(...), inplace=True, ...).

    Example:
        >>> g = fx.symbolic_trace(nn.ReLU(inplace=True)).graph
        >>> [is_inplace(n, nn.Module()) for n in g.nodes]
        [False, True, False]
    """
    if node.op == "call_method":
        name = str(node.target)
        return name.endswith("_") and not name.endswith("__")
    if node.op == "call_function":
        return node.kwargs.get("inplace") is True or node.target in _INPLACE_FUNCTIONS
    if node.op == "call_module":
        return module_inplace(submodule(owner, node.target))
    return False


def module_inplace(module: nn.Module) -> bool:
    # torch's modules keep `inplace` in the instance dict; reading it there avoids the
    # AttributeError that Module.__getattr__ raises for every module without one
    if "inplace" in module.__dict__:
        return module.__dict__["inplace"] is True
    return hasattr(type(module), "inplace") and getattr(module, "inplace", False) is True


def submodule(module: nn.Module, target: str) -> nn.Module:
    """module.get_submodule(target), with a shortcut for a direct child."""
    child = module._modules.get(target)
    return child if child is not None else module.get_submodule(target)


_INPLACE_FUNCTIONS = {operator.iadd, operator.imul, torch.relu_, torch.nn.functional.relu_}


def walk_modules(root: nn.Module) -> tuple[set[int], int]:
    """One walk over the modules: ids of those at more than one path below root, and the
    number of parameter elements (as sum(p.numel() for p in root.parameters()) counts them)."""
    seen, shared, stack = {id(root)}, set(), [root]
    params: dict[int, int] = {}
    while stack:
        module = stack.pop()
        for param in module._parameters.values():
            if param is not None:
                params[id(param)] = param.numel()
        for child in module._modules.values():
            if child is None:
                continue
            if id(child) in seen:
                shared.add(id(child))
            else:
                seen.add(id(child))
                stack.append(child)
    return shared, sum(params.values())


def reusable(lg: LocalGraph) -> bool:
    """Whether a trace fits every module with the same structure: its get_attr nodes
    name registered parameters and buffers, not constants fx attached to this module."""
    if lg.graph is None:
        return True
    for node in lg.graph.nodes:
        if node.op == "get_attr":
            prefix, _, leaf = str(node.target).rpartition(".")
            try:
                owner = lg.module.get_submodule(prefix)
            except AttributeError:
                return False
            if leaf not in owner._parameters and leaf not in owner._buffers:
                return False
    return True
