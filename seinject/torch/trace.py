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

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.utils._pytree as pytree
from torch import nn

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
    concrete_args: dict | None = None  # what trace_module was given: a trace of the other mode needs it too



class _ShallowTracer(fx.Tracer):
    """Traces one module's own forward: every submodule call becomes a leaf call."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def trace_module(module: nn.Module, path: str = "", concrete_args: dict | None = None) -> LocalGraph:
    """The local graph of one module, or a LocalGraph with the reason tracing failed.
    concrete_args: parameters traced with these values (defaults a call does not pass), or lists
    and tuples of fx's PH (a call passes a list of tensors): the graph then reads that parameter's
    items by index.

    Example:
        >>> trace_module(nn.Sequential(nn.ReLU())).graph is not None
        True
    """
    if isinstance(module, fx.GraphModule):  # its forward is its graph: read (and edit) that one
        return LocalGraph(path, module, module.graph)
    saved = _attributes(module)
    graph = None
    try:
        graph = _ShallowTracer().trace(module, concrete_args=dict(concrete_args) if concrete_args else None)
        _fold_structured_placeholders(graph, concrete_args or {})
    except Exception as exc:  # any failure of user code under tracing leaves the module out
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return LocalGraph(path, module, None, f"{type(exc).__name__}: {message}"[:300],
                          concrete_args=concrete_args)
    finally:  # a forward that caches on self (`self.scales = ...`) must not keep the tracer's proxies
        _restore_attributes(module, saved, keep=_get_attr_names(graph))
    return LocalGraph(path, module, graph, concrete_args=concrete_args)


def _fold_structured_placeholders(graph: fx.Graph, concrete_args: dict) -> None:
    """fx gives each item of a list/tuple concrete argument its own placeholder (`x_1`, `x_2`) and
    flattens the call's arguments with a pytree spec; make that one placeholder `x` read by index,
    so the graph's code is a plain `forward(self, x)` again."""
    structured = {name: len(value) for name, value in concrete_args.items() if isinstance(value, (list, tuple))}
    if not structured:
        return
    placeholders = {node.target: node for node in graph.nodes if node.op == "placeholder"}
    anchor = [node for node in graph.nodes if node.op == "placeholder"][-1]
    for name, count in structured.items():
        items = [placeholders[f"{name}_{index}"] for index in range(1, count + 1)]
        with graph.inserting_before(items[0]):
            whole = graph.placeholder(name)
        for index, item in enumerate(items):
            with graph.inserting_after(anchor):
                anchor = graph.call_function(operator.getitem, (whole, index))
            item.replace_all_uses_with(anchor)
        for item in items:
            graph.erase_node(item)
    out_spec = getattr(getattr(graph._codegen, "pytree_info", None), "out_spec", None)
    if out_spec is not None:  # the output node holds the flat leaves: give it the structure back
        output = next(node for node in reversed(graph.nodes) if node.op == "output")
        output.args = (pytree.tree_unflatten(list(pytree.tree_leaves(output.args[0])), out_spec),)
    graph._codegen = fx.graph.CodeGen()


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


def record_shapes(model: nn.Module, example_inputs: Any, calls: dict[int, int] | None = None) -> dict[str, dict]:
    """Input and output shapes of every module's first call (and, under "lists", (is a list, length)
    for each input that is a list or tuple of tensors), from one forward pass; `calls`, when
    given, receives how often each module ran in that pass (by id: an untraceable forward can call a
    submodule, or a submodule's child, more often than the trace shows).

    The pass runs in eval mode on fake tensors (no compute, no buffer updates), falling
    back to real tensors (copies: in-place ops must not change the caller's) under no_grad;
    training flags are restored afterwards.
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
        def pre(mod, inputs, path=path):
            counts[id(mod)] = counts.get(id(mod), 0) + 1
            shapes.setdefault(path, {"in": [shape_of(t) for t in inputs], "out": None,
                                     "lists": [list_layout(t) for t in inputs]})

        def post(mod, inputs, output, path=path):
            if shapes[path]["out"] is None:
                shapes[path]["out"] = shape_of(output)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
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
