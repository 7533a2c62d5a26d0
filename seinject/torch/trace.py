"""Trace a model module by module with torch.fx and inline the graphs into one GraphView.

Each module that is not a torch.nn built-in is traced on its own, with its children
as leaves, so its graph is small and stays tied to that module: a rewrite changes
only the forward of the modules that receive an SE block. The per-module graphs are
inlined (a child's placeholders bound to the parent's arguments, its output to the
parent's call) into one view, so a residual join written as `x + self.block(x)` in a
parent is seen whole. A module whose forward cannot be traced is kept as an opaque op,
its own children are traced as separate islands, and the reason is reported.

Modules built alike (same structural key, see fx_structure) share one trace, and a plain
nn.Sequential gets the graph of its forward without tracing: on a network of repeated
blocks each kind of block is traced once.

Example:
    >>> import torch.nn as nn
    >>> traced = trace_model(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    >>> [traced.view.node(n)["name"] for n in traced.view.nodes()]
    ['input_1', '0', '1']
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..graph.site import Skip
from ..graph.view import GraphView, RawOp
from .kinds import classify_call, classify_module, conv_weight_attrs, is_structural_leaf
from .structure import StructureKeys


@dataclass
class LocalGraph:
    """The fx graph of one module's forward (children as leaves), or why there is none."""

    path: str
    module: nn.Module
    graph: fx.Graph | None
    error: str | None = None
    calls: int = 0
    shared: bool = False  # the graph came from (or went into) the trace cache: copy before editing


@dataclass
class OpRef:
    """Where a view op lives: the module graph holding it, its node, and the local
    nodes that carry each of its inputs (parallel to RawOp.inputs; None where an input
    is not a plain local value)."""

    owner: str
    node: fx.Node
    input_locals: list


@dataclass
class TracedModel:
    """A model's GraphView with the per-module graphs behind it and the parts left out."""

    root: nn.Module
    view: GraphView
    graphs: dict[str, LocalGraph]
    left_out: list[Skip] = field(default_factory=list)
    param_count: int = 0  # elements in the model's parameters (each shared tensor once)


class _ShallowTracer(fx.Tracer):
    """Traces one module's own forward: every submodule call becomes a leaf call."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def trace_module(module: nn.Module, path: str = "") -> LocalGraph:
    """The local graph of one module, or a LocalGraph with the reason tracing failed.

    Example:
        >>> trace_module(nn.Sequential(nn.ReLU())).graph is not None
        True
    """
    try:
        graph = _ShallowTracer().trace(module)
    except Exception as exc:  # any failure of user code under tracing leaves the module out
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return LocalGraph(path, module, None, f"{type(exc).__name__}: {message}"[:300])
    return LocalGraph(path, module, graph)


class _Struct(tuple):
    """A tuple/list of values returned by an inlined module."""


class _Const:
    """A tensor fetched with get_attr (a parameter, buffer or constant)."""

    def __init__(self, tensor: Any):
        self.tensor = tensor


class _Builder:
    def __init__(self, root: nn.Module, shapes: dict[str, dict]):
        self.root = root
        self.shapes = shapes
        self.ops: list[RawOp] = []
        self.graphs: dict[str, LocalGraph] = {}
        self.left_out: list[Skip] = []
        self.name_uses: dict[str, int] = {}
        self.islanded: set[str] = set()
        self.keys = StructureKeys(traced=lambda module: not is_structural_leaf(module))
        self.traces: dict[int, LocalGraph] = {}  # structural key -> first trace with that key
        # ids of modules reachable by more than one path, and the model's parameter count
        self.multi_path, self.param_count = _walk(root)
        self.kinds: dict[int, tuple[str, dict]] = {}  # structural key -> classify_module result

    # -- module level ---------------------------------------------------------------------
    def local(self, path: str, module: nn.Module) -> LocalGraph:
        if path not in self.graphs:
            self.graphs[path] = self.trace(path, module)
        return self.graphs[path]

    def trace(self, path: str, module: nn.Module) -> LocalGraph:
        """Trace a module, or reuse the trace of an earlier module built the same way."""
        key = self.keys.key(module)
        first = self.traces.get(key) if key is not None else None
        if first is not None:
            first.shared = True
            return LocalGraph(path, module, first.graph, first.error, shared=True)
        graph = self.sequential_graph(module)
        lg = LocalGraph(path, module, graph) if graph is not None else trace_module(module, path)
        if key is not None and _reusable(lg):
            self.traces[key] = lg
        return lg

    def sequential_graph(self, module: nn.Module) -> fx.Graph | None:
        """The graph fx would trace for a plain nn.Sequential, built without tracing.

        Sequential.forward calls its children in order; building that graph directly
        skips the tracer's walks over the whole subtree. Children that also live at
        another path (fx would name them by their first path) go through the tracer.
        """
        if type(module).forward is not nn.Sequential.forward:
            return None
        children = module._modules
        if any(child is None or id(child) in self.multi_path for child in children.values()):
            return None
        graph = fx.Graph()
        value = graph.placeholder("input")
        for name in children:
            value = graph.call_module(name, (value,))
        graph.output(value)
        return graph

    def expand_root(self, path: str, module: nn.Module) -> None:
        lg = self.local(path, module)
        if lg.graph is None:
            self.leave_out(lg)
            return
        self.expand(lg, None)

    def leave_out(self, lg: LocalGraph) -> None:
        """Report an untraceable module and trace its non-leaf children as islands."""
        if lg.path in self.islanded:
            return
        self.islanded.add(lg.path)
        self.left_out.append(Skip(lg.path or "<root>", f"not traceable ({lg.error}); its submodules "
                                  "are processed on their own"))
        for name, child in lg.module.named_children():
            if not is_structural_leaf(child):
                self.expand_root(_join(lg.path, name), child)

    def expand(self, lg: LocalGraph, bound: dict | None):
        """Emit the ops of one module call; returns the value of its output."""
        lg.calls += 1
        env: dict[fx.Node, Any] = {}
        shapes = iter(self.shapes.get(lg.path, {}).get("in", []))
        for node in lg.graph.nodes:
            inplace = False
            if node.op == "placeholder":
                if bound is None:
                    name = _join(lg.path, node.name) if lg.path else node.name
                    env[node] = self.emit(node, lg, "input", {}, [], [], name, next(shapes, None))
                else:
                    env[node] = bound.get(node)
            elif node.op == "get_attr":
                env[node] = _Const(_fetch(lg.module, node.target))
            elif node.op == "output":
                return _value(node.args[0], env)
            elif node.op == "call_module":
                sub = _submodule(lg.module, node.target)
                env[node] = self.call_module(node, sub, lg, env)
                inplace = _module_inplace(sub)
            else:
                env[node] = self.call_function(node, lg, env)
                inplace = is_inplace(node, lg.module)
            if inplace and isinstance(node.args[0], fx.Node):
                env[node.args[0]] = env[node]  # later reads of the mutated value see this op
        return None

    def call_module(self, node: fx.Node, sub: nn.Module, lg: LocalGraph, env: dict) -> Any:
        path = _join(lg.path, node.target)
        leaf = is_structural_leaf(sub)
        if not leaf:
            child = self.local(path, sub)
            if child.graph is not None:
                return self.expand(child, _bind(child.graph, node, env))
            self.leave_out(child)
        kind, attrs = self.classify(sub) if leaf else ("other", {"opaque": True})
        shape = self.shapes.get(path, {}).get("out")
        return self.emit(node, lg, kind, attrs, *_inputs(node, env), self.unique(path), shape)

    def classify(self, leaf: nn.Module) -> tuple[str, dict]:
        """classify_module, once per structure: leaves built alike classify alike."""
        key = self.keys.key(leaf)
        if key is None:
            return classify_module(leaf)
        if key not in self.kinds:
            self.kinds[key] = classify_module(leaf)
        kind, attrs = self.kinds[key]
        return kind, dict(attrs)

    def call_function(self, node: fx.Node, lg: LocalGraph, env: dict) -> Any:
        if node.target is operator.getitem:
            source = env.get(node.args[0]) if isinstance(node.args[0], fx.Node) else None
            if isinstance(source, _Struct) and isinstance(node.args[1], int):
                return source[node.args[1]] if -len(source) <= node.args[1] < len(source) else None
        args = tuple(_value(a, env) for a in node.args)
        kwargs = {k: _value(v, env) for k, v in node.kwargs.items()}
        kind, attrs = classify_call(node.op, node.target, args, kwargs)
        if kind == "conv":
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if isinstance(weight, _Const) and isinstance(weight.tensor, torch.Tensor):
                attrs.update(conv_weight_attrs(weight.tensor, attrs.get("groups", 1)))
        name = _join(lg.path, node.name) if lg.path else node.name
        return self.emit(node, lg, kind, attrs, *_inputs(node, env), self.unique(name))

    # -- op level ---------------------------------------------------------------------------
    def unique(self, name: str) -> str:
        uses = self.name_uses.get(name, 0)
        self.name_uses[name] = uses + 1
        return name if uses == 0 else f"{name}_{uses}"

    def emit(self, node: fx.Node, lg: LocalGraph, kind: str, attrs: dict, inputs: list,
             locals_: list, name: str, shape: Any = None) -> str:
        op_id = f"n{len(self.ops)}"
        self.ops.append(RawOp(op_id, kind, name, inputs, attrs, shape=shape,
                              ref=OpRef(lg.path, node, locals_)))
        return op_id


def trace_model(model: nn.Module, example_inputs: Any = None) -> TracedModel:
    """Trace `model` module by module and build its GraphView.

    example_inputs (a tensor or tuple of tensors) lets seinject record the input shape
    of every module with one forward pass, for channel counts the structure cannot give.

    Example:
        >>> traced = trace_model(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
        >>> traced.view.node("n1")["channels"]
        8
    """
    builder = _Builder(model, _record_shapes(model, example_inputs))
    builder.expand_root("", model)
    return TracedModel(model, GraphView(builder.ops), builder.graphs, builder.left_out,
                       builder.param_count)


# -- helpers ------------------------------------------------------------------------------
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
        return _module_inplace(_submodule(owner, node.target))
    return False


def _module_inplace(module: nn.Module) -> bool:
    # torch's modules keep `inplace` in the instance dict; reading it there avoids the
    # AttributeError that Module.__getattr__ raises for every module without one
    if "inplace" in module.__dict__:
        return module.__dict__["inplace"] is True
    return hasattr(type(module), "inplace") and getattr(module, "inplace", False) is True


def _submodule(module: nn.Module, target: str) -> nn.Module:
    """module.get_submodule(target), with a shortcut for a direct child."""
    child = module._modules.get(target)
    return child if child is not None else module.get_submodule(target)


_INPLACE_FUNCTIONS = {operator.iadd, operator.imul, torch.relu_, torch.nn.functional.relu_}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _walk(root: nn.Module) -> tuple[set[int], int]:
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


def _reusable(lg: LocalGraph) -> bool:
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


def _fetch(module: nn.Module, target: str) -> Any:
    obj: Any = module
    for part in target.split("."):
        obj = getattr(obj, part, None)
    return obj


def _value(arg: Any, env: dict) -> Any:
    if isinstance(arg, fx.Node):
        return env.get(arg)
    if isinstance(arg, (list, tuple)):
        return _Struct(_value(a, env) for a in arg)
    return arg


def _inputs(node: fx.Node, env: dict) -> tuple[list, list]:
    """Producer ids of a node's tensor inputs, and the local nodes carrying them."""
    inputs: list = []
    locals_: list = []
    for arg in node.args:
        _collect_inputs(arg, env, inputs, locals_)
    for arg in node.kwargs.values():
        _collect_inputs(arg, env, inputs, locals_)
    return inputs, locals_


def _collect_inputs(arg: Any, env: dict, inputs: list, locals_: list) -> None:
    # a module-level function, not a closure: a recursive closure is a reference cycle
    # that only the cyclic collector frees, and _inputs runs once per op
    if isinstance(arg, fx.Node):
        value = env.get(arg)
        if isinstance(value, str):
            inputs.append(value)
            locals_.append(arg)
        elif isinstance(value, _Struct):
            for item in value:
                if isinstance(item, str):
                    inputs.append(item)
                    locals_.append(None)
    elif isinstance(arg, (list, tuple)):
        for item in arg:
            _collect_inputs(item, env, inputs, locals_)
    elif isinstance(arg, dict):
        for item in arg.values():
            _collect_inputs(item, env, inputs, locals_)


def _bind(graph: fx.Graph, call: fx.Node, env: dict) -> dict:
    """Map a child graph's placeholders to the values the parent passes in."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    bound: dict = {}
    positional = list(call.args)
    for ph in placeholders:
        name = str(ph.target)
        if name.startswith("*"):
            bound[ph] = _Struct(_value(a, env) for a in positional)
            positional = []
        elif positional:
            bound[ph] = _value(positional.pop(0), env)
        elif name in call.kwargs:
            bound[ph] = _value(call.kwargs[name], env)
    return bound


def _record_shapes(model: nn.Module, example_inputs: Any) -> dict[str, dict]:
    """Input and output shapes of every module's first call, from one forward pass.

    The pass runs in eval mode on fake tensors (no compute, no buffer updates), falling
    back to real tensors under no_grad; training flags are restored afterwards.
    """
    if example_inputs is None:
        return {}
    args = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    shapes: dict[str, dict] = {}

    def shape_of(value: Any):
        return tuple(value.shape) if isinstance(value, torch.Tensor) else None

    handles = []
    for path, module in model.named_modules():
        def pre(mod, inputs, path=path):
            shapes.setdefault(path, {"in": [shape_of(t) for t in inputs], "out": None})

        def post(mod, inputs, output, path=path):
            if shapes[path]["out"] is None:
                shapes[path]["out"] = shape_of(output)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        _run_fake(model, args)
    except Exception:  # some ops have no fake kernel: fall back to a real pass
        shapes.clear()
        with torch.no_grad():
            model(*args)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return shapes


def _run_fake(model: nn.Module, args: tuple) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        model(*fake)
