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

import dis
import functools
import inspect
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx._symbolic_trace import PH

from ..graph.site import Skip
from ..graph.view import GraphView, RawOp
from .calls import Call, defaults_call, forward_function, forward_parameters, simple
from .kinds import classify_call, classify_module, conv_weight_attrs, is_structural_leaf
from .install import ATTACHED
from .shapes import bind_recorded, record_shapes, recorded_call
from .structure import StructureKeys
from .trace import LocalGraph, is_inplace, module_inplace, reusable, submodule, trace_module, walk_modules
from .valued import SHAPE_KEY, trace_valued


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


class _Struct(tuple):
    """A tuple of values (a module's returned tuple, an fx literal)."""


class _ListStruct(_Struct):
    """A list of values: kept apart from a tuple, a forward may branch on `isinstance(x, list)`."""


class _DictStruct(dict):
    """A dict of values (a module's returned dict or Hugging Face ModelOutput, a `**kwargs`)."""

    def item(self, key: Any) -> Any:
        """`d[key]`; an int reads the int-th value that is not None, as ModelOutput's indexing does."""
        if isinstance(key, str):
            return self.get(key)
        if isinstance(key, int) and not isinstance(key, bool):
            present = [v for v in self.values() if v is not None]
            return present[key] if -len(present) <= key < len(present) else None
        return None


class _Const:
    """A tensor fetched with get_attr (a parameter, buffer or constant)."""

    def __init__(self, tensor: Any):
        self.tensor = tensor


@dataclass
class _Split:
    """A chunk/split call whose parts are each read by getitem: each read becomes a split op."""

    source: str
    attrs: dict


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

    # -- module level ---------------------------------------------------------------------
    def local(self, path: str, module: nn.Module) -> LocalGraph:
        if path not in self.graphs:
            self.graphs[path] = self.trace(path, module)
        return self.graphs[path]

    def trace(self, path: str, module: nn.Module, call: Call | None = None) -> LocalGraph:
        """Trace a module for a call, or reuse the trace of an earlier module built and called the same way."""
        key = self.keys.key(module)
        cache_key = None if key is None else (key, None if call is None else call.key())
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
            if any((t.call.key() if t.call is not None else None) == (call.key() if call is not None else None)
                   for t in tried):
                continue
            lg = self.local(path, module) if call is None else self.trace(path, module, call)
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
        seen = _without_mutated_lists(module, recorded_call(module, recorded)) if recorded else None
        call = seen if seen is not None else defaults_call(module, passed=_required(module))
        lg = self.graphs[path] = self.traced_for(path, module, [call or None, None], recorded)
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
                env[node] = _Const(_fetch(lg.module, node.target))
            elif node.op == "output":
                return _value(node.args[0], env)
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
            return (_ListStruct if type(layout) is list else _Struct)(ids)
        return self.emit(node, lg, "input", {}, [], [], name, shape)

    def call_module(self, node: fx.Node, sub: nn.Module, lg: LocalGraph, env: dict) -> Any:
        path = _join(lg.path, node.target)
        leaf = is_structural_leaf(sub)
        if not leaf:
            child = self.child_graph(path, sub, node, env)
            if child.graph is not None:
                start = len(self.ops)
                out = self.expand(child, _bind(child.graph, node, env))
                scaled = _excitation(self.ops, start, out)
                if scaled is None:
                    return out
                # a channel-attention module of any name (x · gate(f(pool(x)))): one "se" op, as in ONNX
                del self.ops[start:]
                inputs, locals_ = _inputs(node, env)
                carrier = next((local for i, local in zip(inputs, locals_) if i == scaled), None)
                return self.emit(node, lg, "se", {"foreign": type(sub).__name__}, [scaled], [carrier],
                                 self.unique(path), self.shapes.get(path, {}).get("out"))
            self.leave_out(child)
        kind, attrs = self.classify(sub) if leaf else ("other", {"opaque": True})
        shape = self.shapes.get(path, {}).get("out")
        inputs, locals_ = _inputs(node, env)
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
        call = _call_site(sub, node, env, fix_passed=False) or None
        if previous is not None and previous.graph is not None and previous.call is not None and call is not None \
                and previous.call.key() == call.key() or previous is not None and previous.call is call is None:
            return previous  # the same module called again the same way
        lg = self.traced_for(path, sub, [call, lambda: _call_site(sub, node, env, fix_passed=True)],
                             self.shapes.get(path))
        if previous is not None:  # called again, another way: every trace of it counts every call
            lg.calls = previous.calls
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
            if isinstance(source, _Struct) and isinstance(node.args[1], int):
                return source[node.args[1]] if -len(source) <= node.args[1] < len(source) else None
            if isinstance(source, _DictStruct):
                return source.item(node.args[1])
            if isinstance(source, _Split):  # one part of a split: its own op, read from the whole
                attrs = {**source.attrs, "index": node.args[1]}
                return self.emit(node, lg, "split", attrs, [source.source], [None], self.unique(name))
        if isinstance(node.target, type) and issubclass(node.target, dict) and not node.args:
            return _DictStruct((k, _value(v, env)) for k, v in node.kwargs.items())  # a ModelOutput built
        if node.target is getattr and isinstance(node.args[0], fx.Node) and len(node.args) == 2:
            source = env.get(node.args[0])
            if isinstance(source, _DictStruct):  # `outputs.last_hidden_state` of a returned ModelOutput
                return source.get(node.args[1])
        args = tuple(_value(a, env) for a in node.args)
        kwargs = {k: _value(v, env) for k, v in node.kwargs.items()}
        kind, attrs = classify_call(node.op, node.target, args, kwargs)
        if kind in ("add", "mul") and any(isinstance(a, _Struct) for a in args):
            kind, attrs = "other", {}  # `(y,) + parts[1:]`: tuple arithmetic, not a tensor op
        if kind == "concat" and node.args and _mutated_list(node.args[0]):
            # torch.cat(xs) of a list the forward was given and appends to (timm's VoVNet
            # SequentialAppendList): the caller's list does not say which tensors it holds then
            kind, attrs = "other", {}
        inputs, locals_ = _inputs(node, env)
        if kind == "split":
            if len(inputs) == 1 and _parts_read_by_index(node):
                return _Split(inputs[0], attrs)
            kind, attrs = "other", {}  # the parts are used as a whole: one opaque op
        if kind == "conv":
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if isinstance(weight, _Const) and isinstance(weight.tensor, torch.Tensor):
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
                      builder.param_count, builder.multi_path, builder.leaf_calls, run_calls)


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


def _value(arg: Any, env: dict) -> Any:
    if isinstance(arg, fx.Node):
        return env.get(arg)
    if isinstance(arg, (list, tuple)):
        return (_ListStruct if isinstance(arg, list) else _Struct)(_value(a, env) for a in arg)
    if isinstance(arg, dict):
        return _DictStruct((k, _value(v, env)) for k, v in arg.items())
    return arg


@functools.lru_cache(maxsize=None)
def _may_mutate_lists(function: Any) -> bool:
    """Whether a forward's own code calls a list-mutating method or assigns/deletes an item
    (`xs.append(y)`, `xs[0] = y`): traced with a list of placeholders, such changes to the caller's
    list would happen at trace time only."""
    code = getattr(function, "__code__", None)
    if code is None:
        return True
    return any(ins.opname in ("STORE_SUBSCR", "DELETE_SUBSCR")
               or (ins.opname in ("LOAD_METHOD", "LOAD_ATTR") and ins.argval in _LIST_MUTATIONS)
               for ins in dis.get_instructions(code))


def _call_site(module: nn.Module, call: fx.Node, env: dict, fix_passed: bool) -> Call:
    """How the parent's call node calls `module`, as a Call for tracing it: defaults the call leaves out
    are fixed (when simple), lists and tuples of tensors become lists of PH (unless the forward may
    change the list in place); with fix_passed, simple values the call passes (flags) are fixed too,
    and `*args` / `**kwargs` get what the call passes them."""
    parameters = forward_parameters(module)
    mutates = _may_mutate_lists(forward_function(module))
    positional = [_argument_value(a, env) for a in call.args]
    keywords = {k: _argument_value(v, env) for k, v in call.kwargs.items()}
    named = {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    values = []
    for parameter in parameters:
        name = parameter.name
        if parameter.kind is parameter.VAR_POSITIONAL:
            if fix_passed:
                values.append((name, tuple(_as_argument(v, mutates) for v in positional)))
            positional = []
        elif parameter.kind is parameter.VAR_KEYWORD:
            if fix_passed:
                values.append((name, {k: _as_argument(v, mutates) for k, v in keywords.items() if k not in named}))
        elif positional and parameter.kind is not parameter.KEYWORD_ONLY:
            chosen = _as_argument(positional.pop(0), mutates, fix_passed)
            if chosen is not PH:
                values.append((name, chosen))
        elif name in keywords:
            chosen = _as_argument(keywords[name], mutates, fix_passed)
            if chosen is not PH:
                values.append((name, chosen))
        elif parameter.default is not parameter.empty and simple(parameter.default):
            values.append((name, parameter.default))
    return Call(tuple(values), "the call in its parent's forward")


def _as_argument(value: Any, mutates: bool, fix: bool = True) -> Any:
    """PH, a list/tuple of PH (a list of traced tensors), or the fixed value of one argument."""
    if isinstance(value, _Struct) and value and all(isinstance(item, str) for item in value):
        return PH if mutates else ([PH] * len(value) if isinstance(value, _ListStruct) else (PH,) * len(value))
    if isinstance(value, (str, _Struct, _DictStruct, _Const, _Split, _Unknown)):
        return PH  # a traced value (an op id), a structure holding some, a tensor constant, unknown
    return value if fix and simple(value) else PH


class _Unknown:
    """An argument computed in the parent's graph whose value the view does not know (a shape read)."""


def _argument_value(arg: Any, env: dict) -> Any:
    value = _value(arg, env)
    return _Unknown() if value is None and isinstance(arg, fx.Node) else value


def _required(module: nn.Module) -> int:
    """How many positional values a call must pass (at least one: a forward's first input)."""
    required = [p for p in forward_parameters(module) if p.default is p.empty and
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return max(1, len(required))


def _without_mutated_lists(module: nn.Module, call: Call | None) -> Call | None:
    """The recorded call, with lists traced as one value when the forward may change them in place."""
    if call is None or not _may_mutate_lists(forward_function(module)):
        return call
    return Call(tuple((k, PH if isinstance(v, (list, tuple)) and v and all(i is PH for i in v) else v)
                      for k, v in call.values), call.why)


_GATES = frozenset({"sigmoid", "hardsigmoid"})


def _excitation(ops: list[RawOp], start: int, out: Any) -> str | None:
    """The scaled input x when the ops a module call emitted (ops[start:]) compute x · g, g from x only
    through a global pool and a sigmoid-type gate, with nothing else (an SE block by structure, as
    seinject.onnx.se_pattern sees it in ONNX); else None."""
    inner = {op.id: op for op in ops[start:]}
    last = inner.get(out) if isinstance(out, str) else None
    if last is None or last.kind != "mul" or len(last.inputs) != 2:
        return None
    for x, g in (tuple(last.inputs), tuple(reversed(last.inputs))):
        if x in inner or g not in inner:
            continue
        seen, stack, pool, gate = set(), [g], False, False
        while stack:
            op = inner[stack.pop()]
            if op.id in seen:
                continue
            seen.add(op.id)
            gate = gate or (op.kind == "act" and op.attrs.get("fn") in _GATES)
            if op.attrs.get("global_pool") and op.inputs == [x]:
                pool = True
                continue
            if any(i == x and op.kind != "shape" or i != x and i not in inner for i in op.inputs):
                stack = None
                break
            stack += [i for i in op.inputs if i != x]
        if stack is not None and pool and gate and \
                all(op.id in seen or op.kind == "shape" for op in inner.values() if op is not last):
            return x
    return None


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
        elif isinstance(value, (_Struct, _DictStruct)):
            for item in (value.values() if isinstance(value, _DictStruct) else value):
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
    named = {str(ph.target) for ph in placeholders}
    for ph in placeholders:
        name = str(ph.target)
        if name.startswith("**"):
            bound[ph] = _DictStruct((k, _value(v, env)) for k, v in call.kwargs.items() if k not in named)
        elif name.startswith("*"):
            bound[ph] = _Struct(_value(a, env) for a in positional)
            positional = []
        elif positional:
            bound[ph] = _value(positional.pop(0), env)
        elif name in call.kwargs:
            bound[ph] = _value(call.kwargs[name], env)
    return bound


# failures of a plain trace that example values can answer (a proxy read as a Python value)
_CONCRETE_READS = ("control flow", "int()", "cannot be interpreted as an integer", "cannot be iterated",
                   "has no len()", "float()")
_LIST_MUTATIONS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "__setitem__",
                             "__delitem__", "__iadd__"})


def _mutated_list(value: object) -> bool:
    """Whether an fx value (a list the forward was given) is changed in place by the forward."""
    return isinstance(value, fx.Node) and any(
        user.op == "call_method" and user.target in _LIST_MUTATIONS and user.args and user.args[0] is value
        for user in value.users)
