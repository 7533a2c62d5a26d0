"""ModelProto → RawOps → GraphView: the same backend-neutral view the torch backend builds.

- Op types become kinds (seinject.onnx.kinds); channels come from conv weights
  (initializers, Constant nodes, Identity of either) and from shape inference.
- Constants and shape arithmetic (Shape → Gather → Concat → Reshape) are not data:
  they are left out of the view, as torch.fx shows `x.size()` as a shape read.
- x·sigmoid(x) and x·hardsigmoid(x) (how SiLU and Hardswish are exported) are one act op.
- An SE block seinject inserted earlier (tagged nodes) is one op of kind "se" whose input
  is the value it scales, so the shared matcher reports "already has SE" on a second run.
- View ids are value names (a node's first output; graph input names).

Example:
    >>> import onnx
    >>> model = onnx.parser.parse_model('''
    ...   <ir_version: 8, opset_import: ["" : 17]>
    ...   g (float[N, 2, 4, 4] x) => (float[N, 2, 4, 4] y) <float[2, 2, 1, 1] w = {1.0, 0.5, 0.5, 1.0}> {
    ...     c = Conv(x, w)
    ...     y = Add(c, x)
    ...   }''')
    >>> graph = build_view(model)
    >>> graph.view.node("y")["residual"], graph.view.node("c")["channels"]
    (True, 2)
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field

import onnx
from onnx import helper

from .block import se_tag
from ..errors import ModelError
from ..graph.view import GraphView, RawOp
from . import shapes as shape_inference
from .kinds import classify
from .names import Scope, readable_names, scope_of

NOT_DATA_OPS = frozenset({"Shape", "Size"})
SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})  # ai.onnx ops with graph attributes
GATE_FUSION = {"Sigmoid": "silu", "HardSigmoid": "hardswish"}


@dataclass
class OnnxGraph:
    """A model, its GraphView, and the maps a splice needs (value → producer, consumers).

    members: view id → node indices that make up that op (a fused act, an SE block).
    """

    model: onnx.ModelProto
    view: GraphView
    order: list[int]
    producer: dict[str, int]
    consumers: dict[str, list[int]]
    implicit: dict[str, list[int]]
    members: dict[str, list[int]]
    shapes: dict
    opset: int
    se_blocks: dict[str, list[int]] = field(default_factory=dict)


def default_opset(model: onnx.ModelProto) -> int:
    """The model's ai.onnx opset version (0 when it imports none).

    Example:
        >>> import onnx.helper as h
        >>> default_opset(h.make_model(h.make_graph([], "g", [], []), opset_imports=[h.make_opsetid("", 13)]))
        13
    """
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def build_view(model: onnx.ModelProto, input_shapes: dict[str, tuple] | None = None) -> OnnxGraph:
    """The GraphView of a model's main graph, with shapes from onnx shape inference.

    Example:
        >>> import onnx.helper as h
        >>> len(build_view(h.make_model(h.make_graph([], "g", [], []))).view)
        0
    """
    graph = model.graph
    nodes = graph.node
    shapes = shape_inference.infer(model, input_shapes)
    constants = {t.name: t for t in graph.initializer}
    order = topological_order(model)
    producer: dict[str, int] = {}
    consumers: dict[str, list[int]] = defaultdict(list)
    implicit: dict[str, list[int]] = defaultdict(list)
    for i in order:
        node = nodes[i]
        for out in node.output:
            if out:
                producer[out] = i
        for name in node.input:
            if name:
                consumers[name].append(i)
        for name in _outer_names(node):
            implicit[name].append(i)
    fused = _fused_gates(nodes, order, producer, consumers, {o.name for o in graph.output})
    fused_gates = set(fused.values())
    tags = {i: tag for i in order if (tag := se_tag(nodes[i])) is not None}
    se_blocks: dict[str, list[int]] = defaultdict(list)
    for i, (block, _) in tags.items():
        se_blocks[block].append(i)

    ops: list[RawOp] = []
    scopes: list[Scope | None] = []
    data: dict[str, str] = {}          # value name -> view id of the op that makes it
    members: dict[str, list[int]] = {}
    initializer_names = set(constants)
    for value in graph.input:
        if value.name in initializer_names:
            continue
        entry = shapes.get(value.name)
        ops.append(RawOp(value.name, "input", value.name, [], {}, shape=entry[0] if entry else None))
        scopes.append(None)
        data[value.name] = value.name
    for i in order:
        node = nodes[i]
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            tensor = _constant_tensor(node)
            if tensor is not None:
                constants[node.output[0]] = tensor
            continue
        ins = [n for n in (*node.input, *_outer_names(node)) if n in data]
        if not ins or node.op_type in NOT_DATA_OPS:
            if node.op_type == "Identity" and node.input and node.input[0] in constants:
                constants[node.output[0]] = constants[node.input[0]]
            continue
        if i in tags:
            op = _se_op(nodes, i, tags[i], data)
            if op is None:
                continue
            members[op.id] = se_blocks[tags[i][0]]
            ops.append(op)
            scopes.append(None)
            continue
        if i in fused_gates:
            continue  # the sigmoid of x·sigmoid(x): part of the act op at its Mul
        kind, attrs = classify(node, constants, shapes)
        op_id = node.output[0] if node.output and node.output[0] else f"#node{i}"
        group = [i]
        if i in fused:
            gate = nodes[fused[i]]
            kind, attrs = "act", {"op_type": node.op_type, "fn": GATE_FUSION[gate.op_type]}
            ins = [n for n in ins if n != gate.output[0]]
            group = [fused[i], i]
        entry = shapes.get(op_id)
        ops.append(RawOp(op_id, kind, "", [data[n] for n in ins], attrs,
                         shape=entry[0] if entry else None, ref=i))
        scopes.append(scope_of(node))
        members[op_id] = group
        for out in node.output:
            if out:
                data[out] = op_id
    _name_ops(ops, scopes)
    return OnnxGraph(model, GraphView(ops), order, producer, dict(consumers), dict(implicit), members,
                     shapes, default_opset(model), dict(se_blocks))


def _name_ops(ops: list[RawOp], scopes: list[Scope | None]) -> None:
    scoped = [i for i, s in enumerate(scopes) if s is not None]
    names = readable_names([scopes[i] for i in scoped])
    for i, name in zip(scoped, names):
        ops[i].name = name


def _se_op(nodes, i: int, tag: tuple[str, str], data: dict) -> RawOp | None:
    """One op of kind se for a tagged block, emitted at its scale node (its last)."""
    block, role = tag
    if role != "scale":
        return None
    node = nodes[i]
    scaled = node.input[0]
    if scaled not in data:
        return None
    out = node.output[0]
    data[out] = out
    return RawOp(out, "se", block, [data[scaled]], {"block": block}, ref=i)


def _fused_gates(nodes, order: list[int], producer: dict, consumers: dict, outputs: set[str]) -> dict[int, int]:
    """Mul index → gate index for x·sigmoid(x) / x·hardsigmoid(x) where the gate feeds only the Mul."""
    fused = {}
    for i in order:
        node = nodes[i]
        if node.op_type != "Mul" or len(node.input) != 2 or se_tag(node) is not None:
            continue
        for a, b in (node.input, reversed(node.input)):
            gate_index = producer.get(b)
            if gate_index is None:
                continue
            gate = nodes[gate_index]
            if gate.op_type not in GATE_FUSION or gate.input[0] != a or b in outputs:
                continue
            if gate.op_type == "HardSigmoid" and not _torch_hardsigmoid(gate):
                continue
            if consumers.get(b) == [i]:
                fused[i] = gate_index
                break
    return fused


def _torch_hardsigmoid(node: onnx.NodeProto) -> bool:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return abs(attrs.get("alpha", 0.2) - 1 / 6) < 1e-6 and abs(attrs.get("beta", 0.5) - 0.5) < 1e-6


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            return attr.t
        if attr.name in ("value_float", "value_int"):
            value = helper.get_attribute_value(attr)
            kind = onnx.TensorProto.FLOAT if attr.name == "value_float" else onnx.TensorProto.INT64
            return helper.make_tensor(node.output[0], kind, [], [value])
        if attr.name in ("value_floats", "value_ints"):
            value = list(helper.get_attribute_value(attr))
            kind = onnx.TensorProto.FLOAT if attr.name == "value_floats" else onnx.TensorProto.INT64
            return helper.make_tensor(node.output[0], kind, [len(value)], value)
    return None


def _outer_names(node: onnx.NodeProto) -> list[str]:
    """Values of the enclosing graph that a node's subgraphs (If/Loop/Scan bodies) read."""
    names: list[str] = []
    if node.op_type not in SUBGRAPH_OPS and node.domain in ("", "ai.onnx"):
        return names
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            names.extend(_free_names(sub))
    return names


def _free_names(graph: onnx.GraphProto) -> list[str]:
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    free: list[str] = []
    for node in graph.node:
        for name in (*node.input, *_outer_names(node)):
            if name and name not in defined and name not in free:
                free.append(name)
        defined.update(node.output)
    return free


def topological_order(model: onnx.ModelProto) -> list[int]:
    """Node indices in topological order: the stored order when it is one, else Kahn's (stable).

    Example:
        >>> import onnx.helper as h
        >>> g = h.make_graph([h.make_node("Relu", ["a"], ["b"]), h.make_node("Relu", ["x"], ["a"])], "g", [], [])
        >>> topological_order(h.make_model(g))
        [1, 0]
    """
    nodes = model.graph.node
    producer = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producer[out] = i
    deps = [{producer[n] for n in (*node.input, *_outer_names(node)) if n in producer} for node in nodes]
    if all(d < i for i, ds in enumerate(deps) for d in ds):
        return list(range(len(nodes)))
    users: dict[int, list[int]] = defaultdict(list)
    for i, ds in enumerate(deps):
        for d in ds:
            users[d].append(i)
    waiting = [len(ds) for ds in deps]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        stuck = next(nodes[i].name or nodes[i].op_type for i, w in enumerate(waiting) if w > 0)
        raise ModelError(f"the graph has a cycle (node {stuck!r} is never ready)")
    return order
