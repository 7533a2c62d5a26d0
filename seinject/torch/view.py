"""Inline the per-module fx graphs of a model into one GraphView (the torch backend's view building).

Each module's local graph (seinject.torch.trace) is inlined into its parent's call: a
child's placeholders are bound to the parent's arguments, its output to the parent's call,
so a residual join written as `x + self.block(x)` in a parent is seen whole. A module
whose forward cannot be traced is kept as an opaque op, its own children are traced as
separate islands, and the reason is reported.

Modules built alike (same structural key, see seinject.torch.structure) share one trace,
and a plain nn.Sequential gets the graph of its forward without tracing: on a network of
repeated blocks each kind of block is traced once. A split of a tensor (chunk, split)
becomes one op of kind "split" per part that the forward reads, as ONNX's Split does.

Example:
    >>> import torch.nn as nn
    >>> built = build_view(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    >>> [built.view.node(n).name for n in built.view.nodes()]
    ['input_1', '0', '1']
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx._symbolic_trace import PH

from ..graph.site import Skip
from ..graph.view import GraphView, RawOp
from .calls import Call, defaults_call, key_of
from .kinds import classify_call, classify_module, conv_weight_attrs, is_structural_leaf
from .install import ATTACHED
from .shapes import bind_recorded, record_shapes, recorded_call
from .structure import StructureKeys
from .se_pattern import excitation_input
from .trace import LocalGraph, is_inplace, module_inplace, reusable, submodule, trace_module, walk_modules
from .valued import SHAPE_KEY, trace_valued
from .values import (Const, DictStruct, ListStruct, Split, Struct, bind, call_site, inputs_of, mutated_list,
                     required_inputs, value_of, without_mutated_lists)


@dataclass
class OpRef:
    """Where a view op lives: the module graph holding it, the local node that holds its
    value, and the local nodes that carry each of its inputs (parallel to RawOp.inputs;
    None where an input is not a plain local value, e.g. the part of a split)."""

    owner: str
    node: fx.Node
    input_locals: list

@dataclass
class TorchGraph:
    """A model's GraphView with the per-module graphs behind it and the parts left out."""

    root: nn.Module
    view: GraphView
    graphs: dict[str, LocalGraph]
    left_out: list[Skip] = field(default_factory=list)
    param_count: int = 0  # elements in the model's parameters (each shared tensor once)
    multi_path: set[int] = field(default_factory=set)  # ids of modules at more than one path
    leaf_calls: dict[int, int] = field(default_factory=dict)  # leaf module id -> calls in the view
    # module id -> calls in one forward pass on example_inputs (None without them); this also
    # counts calls from forwards the trace could not follow
    run_calls: dict[int, int] | None = None
    # paths of modules left out that the view calls more than once: what runs inside them runs each time
    repeated: set[str] = field(default_factory=set)


def _has_forward(module: nn.Module) -> bool:
    """False for containers that only hold modules (ModuleList, ModuleDict): they are never called."""
    return type(module).forward is not nn.Module.forward


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
        self.multi_path, self.param_count = walk_modules(root)
        self.kinds: dict[int, tuple[str, dict]] = {}  # structural key -> classify_module result
        self.leaf_calls: dict[int, int] = {}  # leaf module id -> how often the view calls it
        self.opaque_calls: dict[str, int] = {}  # path of a module left out -> how often the view calls it

    # -- module level ---------------------------------------------------------------------
    def trace(self, path: str, module: nn.Module, call: Call | None = None) -> LocalGraph:
        """Trace a module for a call, or reuse the trace of an earlier module built and called the same way."""
        key = self.keys.key(module)
        cache_key = None if key is None else (key, key_of(call))
        first = self.traces.get(cache_key) if cache_key is not None else None
        if first is not None:
            first.shared = True
            return LocalGraph(path, module, first.graph, first.error, shared=True, call=call)
        graph = self.sequential_graph(module) if call is None else None
        lg = LocalGraph(path, module, graph) if graph is not None else trace_module(module, path, call)
        if cache_key is not None and reusable(lg):
            self.traces[cache_key] = lg
        return lg

    def traced_for(self, path: str, module: nn.Module, calls: list, recorded: dict | None) -> LocalGraph:
        """The first trace that works among the calls to try (None: the plain trace; a function: the call
        it makes), else a trace at the values the shape pass recorded (example_inputs), else the first
        failure."""
        tried: list[LocalGraph] = []
        for call in calls:
            call = call() if callable(call) else call  # made only when the calls before it failed
            if any(key_of(t.call) == key_of(call) for t in tried):
                continue
            lg = self.trace(path, module, call)  # never an earlier call's trace of this path
            if lg.graph is not None:
                return lg
            tried.append(lg)
        first = tried[0]
        if recorded is not None and _has_forward(module):
            valued = trace_valued(module, path, recorded, why=first.error or "")
            if valued.graph is not None:
                return valued
            return LocalGraph(path, module, None, valued.error or first.error, call=first.call)
        if self.shapes or first.error is None or not any(m in first.error for m in _CONCRETE_READS):
            return first
        return LocalGraph(path, module, None, f"{first.error}; if it computes on its input's sizes, example_inputs= "
                          "lets seinject trace it at theirs", call=first.call)

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
        recorded = self.shapes.get(path)
        # traced for the call it gets: the one example_inputs showed (its flags, its lists of tensors),
        # else a call passing its required inputs and leaving every parameter with a default at its
        # default (`if mask is not None:` then takes the branch a plain call takes); else plain
        if recorded:
            calls = [without_mutated_lists(module, recorded_call(module, recorded, numbers)) for numbers in (False, True)]
        else:
            calls = [defaults_call(module, passed=required_inputs(module))]
        calls = [call or None for call in calls if call is not None] + [None]
        lg = self.graphs[path] = self.traced_for(path, module, calls, recorded)
        if lg.graph is None:
            self.leave_out(lg)
            return
        self.expand(lg, None)

    def leave_out(self, lg: LocalGraph) -> None:
        """Report an untraceable module and trace its non-leaf children as islands."""
        if lg.path in self.islanded:
            return
        self.islanded.add(lg.path)
        if not _has_forward(lg.module):  # ModuleList, ModuleDict: nothing to trace, nothing left out
            pass
        elif self.shapes and lg.path not in self.shapes:  # example_inputs showed it is never called
            pass
        else:
            self.left_out.append(Skip(name=lg.path or "<root>", reason=f"not traceable ({lg.error}); its "
                                      "submodules are processed on their own"))
        for name, child in lg.module.named_children():
            if not is_structural_leaf(child):
                self.expand_root(_join(lg.path, name), child)

    def expand(self, lg: LocalGraph, bound: dict | None):
        """Emit the ops of one module call; returns the value of its output."""
        lg.calls += 1
        env: dict[fx.Node, Any] = {}
        shapes = iter(self.shapes.get(lg.path, {}).get("in", []))
        recorded = bind_recorded(lg.module, self.shapes.get(lg.path)) if bound is None and lg.call else None
        for node in lg.graph.nodes:
            inplace = False
            if node.op == "placeholder":
                if bound is None:
                    name = _join(lg.path, node.name) if lg.path else node.name
                    env[node] = self.graph_input(node, lg, name, next(shapes, None), recorded)
                else:
                    env[node] = bound.get(node)
            elif node.op == "get_attr":
                env[node] = Const(_fetch(lg.module, node.target))
            elif node.op == "output":
                return value_of(node.args[0], env)
            elif node.op == "call_module":
                sub = submodule(lg.module, node.target)
                env[node] = self.call_module(node, sub, lg, env)
                inplace = module_inplace(sub)
            else:
                env[node] = self.call_function(node, lg, env)
                inplace = is_inplace(node, lg.module)
            if inplace and isinstance(node.args[0], fx.Node):
                env[node.args[0]] = env[node]  # later reads of the mutated value see this op
        return None

    def graph_input(self, node: fx.Node, lg: LocalGraph, name: str, shape: Any, recorded: dict | None) -> Any:
        """The op(s) of one input of a graph seinject starts at (the model's, or an island's): a list of
        tensors the call passes (a Concat module called from a forward seinject could not trace) is one
        input op per tensor, with the shapes example_inputs gave them."""
        parameter = str(node.target).lstrip("*")
        layout = lg.call.get(parameter) if lg.call is not None else PH
        if type(layout) in (list, tuple) and layout and all(item is PH for item in layout):
            items = (recorded or {}).get(parameter)
            items = items if isinstance(items, (list, tuple)) and len(items) == len(layout) else [None] * len(layout)
            ids = [self.emit(node, lg, "input", {}, [], [], f"{name}.{i}", getattr(item, "shape", None))
                   for i, item in enumerate(items)]
            return (ListStruct if type(layout) is list else Struct)(ids)
        return self.emit(node, lg, "input", {}, [], [], name, shape)

    def call_module(self, node: fx.Node, sub: nn.Module, lg: LocalGraph, env: dict) -> Any:
        path = _join(lg.path, node.target)
        leaf = is_structural_leaf(sub)
        if not leaf:
            child = self.child_graph(path, sub, node, env)
            if child.graph is not None:
                start = len(self.ops)
                out = self.expand(child, bind(child.graph, node, env))
                scaled = excitation_input(self.ops, start, out)
                if scaled is None:
                    return out
                # a channel-attention module of any name (x · gate(f(pool(x)))): one "se" op, as in ONNX
                del self.ops[start:]
                inputs, locals_ = inputs_of(node, env)
                carrier = next((local for i, local in zip(inputs, locals_) if i == scaled), None)
                return self.emit(node, lg, "se", {"foreign": type(sub).__name__}, [scaled], [carrier],
                                 self.unique(path), self.shapes.get(path, {}).get("out"))
            self.opaque_calls[path] = self.opaque_calls.get(path, 0) + 1
            self.leave_out(child)
        kind, attrs = self.classify(sub) if leaf else ("other", {"opaque": True})
        shape = self.shapes.get(path, {}).get("out")
        inputs, locals_ = inputs_of(node, env)
        if not leaf:
            return self.emit(node, lg, kind, attrs, inputs, locals_, self.unique(path), shape)
        self.leaf_calls[id(sub)] = self.leaf_calls.get(id(sub), 0) + 1
        # blocks attached to the leaf: "se" ops on its input, then the leaf, then "se" ops on its output
        before, after = sub.__dict__.get(ATTACHED, ((), ()))
        carrier = locals_[0] if locals_ and locals_[0] is not None else node
        for name in before:
            inputs[:1] = [self.attached_se(carrier, lg, sub, path, name, inputs[:1], locals_[:1])]
        op = self.emit(node, lg, kind, attrs, inputs, locals_, self.unique(path), shape)
        if attrs.get("fused_act"):  # timm's EvoNorm: the activation, at the same module call
            op = self.emit(node, lg, "act", {"type": attrs["type"]}, [op], [node], self.unique(f"{path}.act"), shape)
        for name in after:
            op = self.attached_se(node, lg, sub, path, name, [op], [node])
        return op

    def child_graph(self, path: str, sub: nn.Module, node: fx.Node, env: dict) -> LocalGraph:
        """The trace of a child for this call of it. `if shortcut is None:` traced with a proxy takes
        the wrong branch for a call that leaves the default: the defaults a call leaves out are fixed;
        a list of tensors traced as one proxy takes the tensor branch of `isinstance(x, list)`: it is
        traced as a list of that length. A forward that still stops (`if embed:`, `*args`) is traced
        with the call's flags fixed too, then at the values of example_inputs."""
        previous = self.graphs.get(path)
        call = call_site(sub, node, env, fix_passed=False) or None
        if previous is not None and key_of(previous.call) == key_of(call) and \
                (previous.graph is not None or call is None):
            return previous  # the same module called again the same way
        lg = self.traced_for(path, sub, [call, lambda: call_site(sub, node, env, fix_passed=True)],
                             self.shapes.get(path))
        if previous is not None:  # called again, another way: every trace of it counts every call
            lg.calls = max(previous.calls, 1)  # a first call whose trace failed was a call too
        self.graphs[path] = lg
        return lg

    def attached_se(self, node: fx.Node, lg: LocalGraph, leaf: nn.Module, path: str, name: str,
                    inputs: list, locals_: list) -> str:
        """Emit the "se" op of a block attached to a leaf (its value is carried by `node`)."""
        block_path = _join(path, name)
        kind, attrs = classify_module(leaf._modules[name])
        shape = self.shapes.get(block_path, {}).get("out")
        return self.emit(node, lg, kind, attrs, inputs, locals_, self.unique(block_path), shape)

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
        name = _join(lg.path, node.name) if lg.path else node.name
        if node.target is operator.getitem:
            source = env.get(node.args[0]) if isinstance(node.args[0], fx.Node) else None
            if isinstance(source, Struct) and isinstance(node.args[1], int):
                return source[node.args[1]] if -len(source) <= node.args[1] < len(source) else None
            if isinstance(source, DictStruct):
                return source.item(node.args[1])
            if isinstance(source, Split):  # one part of a split: its own op, read from the whole
                attrs = {**source.attrs, "index": node.args[1]}
                return self.emit(node, lg, "split", attrs, [source.source], [None], self.unique(name))
        if isinstance(node.target, type) and issubclass(node.target, dict) and not node.args:
            return DictStruct((k, value_of(v, env)) for k, v in node.kwargs.items())  # a ModelOutput built
        if node.target is getattr and isinstance(node.args[0], fx.Node) and len(node.args) == 2:
            source = env.get(node.args[0])
            if isinstance(source, DictStruct):  # `outputs.last_hidden_state` of a returned ModelOutput
                return source.get(node.args[1])
        args = tuple(value_of(a, env) for a in node.args)
        kwargs = {k: value_of(v, env) for k, v in node.kwargs.items()}
        kind, attrs = classify_call(node.op, node.target, args, kwargs)
        if kind in ("add", "mul") and any(isinstance(a, Struct) for a in args):
            kind, attrs = "other", {}  # `(y,) + parts[1:]`: tuple arithmetic, not a tensor op
        if kind == "concat" and node.args and mutated_list(node.args[0]):
            # torch.cat(xs) of a list the forward was given and appends to (timm's VoVNet
            # SequentialAppendList): the caller's list does not say which tensors it holds then
            kind, attrs = "other", {}
        inputs, locals_ = inputs_of(node, env)
        if kind == "split":
            if len(inputs) == 1 and _parts_read_by_index(node):
                return Split(inputs[0], attrs)
            kind, attrs = "other", {}  # the parts are used as a whole: one opaque op
        if kind == "conv":
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if isinstance(weight, Const) and isinstance(weight.tensor, torch.Tensor):
                attrs.update(conv_weight_attrs(weight.tensor, attrs.get("groups", 1)))
        return self.emit(node, lg, kind, attrs, inputs, locals_, self.unique(name))

    # -- op level ---------------------------------------------------------------------------
    def unique(self, name: str) -> str:
        uses = self.name_uses.get(name, 0)
        self.name_uses[name] = uses + 1
        return name if uses == 0 else f"{name}_{uses}"

    def emit(self, node: fx.Node, lg: LocalGraph, kind: str, attrs: dict, inputs: list,
             locals_: list, name: str, shape: Any = None) -> str:
        op_id = f"n{len(self.ops)}"
        if shape is None and node is not None:
            shape = node.meta.get(SHAPE_KEY)  # traced at the values of example_inputs
        self.ops.append(RawOp(op_id, kind, name, inputs, attrs, shape=shape,
                              ref=OpRef(lg.path, node, locals_)))
        return op_id


def build_view(model: nn.Module, example_inputs: Any = None) -> TorchGraph:
    """Trace `model` module by module and build its GraphView.

    example_inputs (a tensor or tuple of tensors) lets seinject record the input shape
    of every module with one forward pass, for channel counts the structure cannot give.

    Example:
        >>> built = build_view(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
        >>> built.view.node("n1").channels
        8
    """
    run_calls: dict[int, int] | None = None if example_inputs is None else {}
    builder = _Builder(model, record_shapes(model, example_inputs, run_calls))
    builder.expand_root("", model)
    return TorchGraph(model, GraphView(builder.ops), builder.graphs, builder.left_out,
                      builder.param_count, builder.multi_path, builder.leaf_calls, run_calls,
                      {path for path, calls in builder.opaque_calls.items() if calls > 1})


# -- helpers ------------------------------------------------------------------------------
def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _parts_read_by_index(split: fx.Node) -> bool:
    """True when every reader of a split takes one part by a constant, non-negative index."""
    return bool(split.users) and all(
        user.target is operator.getitem and user.args[0] is split and len(user.args) > 1
        and isinstance(user.args[1], int) and user.args[1] >= 0 for user in split.users)


def _fetch(module: nn.Module, target: str) -> Any:
    obj: Any = module
    for part in target.split("."):
        obj = getattr(obj, part, None)
    return obj


# failures of a plain trace that example values can answer (a proxy read as a Python value)
_CONCRETE_READS = ("control flow", "int()", "cannot be interpreted as an integer", "cannot be iterated",
                   "has no len()", "float()")
