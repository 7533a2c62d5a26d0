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
    >>> graph.view.node("y").residual, graph.view.node("c").channels
    (True, 2)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import onnx
from onnx import helper

from ..graph.view import GraphView, RawOp
from . import shapes as shape_inference
from .block import se_tag
from .kinds import classify
from .names import Scope, readable_names, scope_of
from .se_pattern import untagged_se
from .wiring import Wiring, outer_names, topological_order, wiring

NOT_DATA_OPS = frozenset({"Shape", "Size"})
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
    shapes = shape_inference.infer(model, input_shapes)
    order = topological_order(model)
    wires = wiring(model.graph.node, order)
    ops = _Ops(model, shapes, wires, order)
    for i in order:
        ops.add_node(i)
    _name_ops(ops.ops, ops.scopes)
    return OnnxGraph(model, GraphView(ops.ops), order, wires.producer, wires.consumers, wires.implicit,
                     ops.members, shapes, default_opset(model), dict(ops.se_blocks))


class _Ops:
    """RawOps of a graph's nodes, in topological order, with the node indices behind each op."""

    def __init__(self, model: onnx.ModelProto, shapes: dict, wires: Wiring, order: list[int]):
        graph = model.graph
        self.nodes = graph.node
        self.shapes = shapes
        self.constants = {t.name: t for t in graph.initializer}
        self.fused = _fused_gates(self.nodes, order, wires, {o.name for o in graph.output})
        self.fused_gates = set(self.fused.values())
        self.tags = {i: tag for i in order if (tag := se_tag(self.nodes[i])) is not None}
        self.tags.update(untagged_se(self.nodes, order, wires, self.constants, set(self.tags)))
        self.producer = wires.producer
        self.se_blocks: dict[str, list[int]] = defaultdict(list)
        for i, (block, _) in self.tags.items():
            self.se_blocks[block].append(i)
        self.ops: list[RawOp] = []
        self.scopes: list[Scope | None] = []
        self.data: dict[str, str] = {}  # value name -> view id of the op that makes it
        self.members: dict[str, list[int]] = {}  # view id -> node indices making up that op
        for value in graph.input:
            if value.name not in self.constants:
                self.emit(RawOp(value.name, "input", value.name, [], {}, shape=self._dims(value.name)), None, [])

    def emit(self, op: RawOp, scope: Scope | None, members: list[int]) -> None:
        self.ops.append(op)
        self.scopes.append(scope)
        self.members[op.id] = members
        self.data[op.id] = op.id

    def add_node(self, i: int) -> None:
        """The op(s) of node i, or none for constants, shape arithmetic and fused gates."""
        node = self.nodes[i]
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            tensor = _constant_tensor(node)
            if tensor is not None:
                self.constants[node.output[0]] = tensor
            return
        ins = [n for n in (*node.input, *outer_names(node)) if n in self.data]
        if not ins or node.op_type in NOT_DATA_OPS:
            if node.op_type == "Identity" and node.input and node.input[0] in self.constants:
                self.constants[node.output[0]] = self.constants[node.input[0]]
            return
        if i in self.tags:
            self._add_se(i)
        elif i not in self.fused_gates:  # a fused gate is part of the act op at its Mul
            self._add_op(i, node, ins)

    def _add_se(self, i: int) -> None:
        """One op of kind se for a tagged block, emitted at its scale node (its last)."""
        block, role = self.tags[i]
        node = self.nodes[i]
        members = self.se_blocks[block]
        # x: the one data value the block reads from outside (the gate types read it at several nodes)
        scaled = [n for m in members for n in self.nodes[m].input
                  if n in self.data and self.producer.get(n) not in set(members)]
        if role != "scale" or not scaled or scaled[0] not in self.data:
            return
        op = RawOp(node.output[0], "se", block, [self.data[scaled[0]]], {"block": block}, ref=i)
        self.emit(op, None, self.se_blocks[block])

    def _add_op(self, i: int, node: onnx.NodeProto, ins: list[str]) -> None:
        kind, attrs = classify(node, self.constants, self.shapes)
        inputs = [self.data[n] for n in ins]
        if kind == "split":  # one op per part, as the torch backend sees x.chunk(n)[k]
            for k, out in enumerate(node.output):
                if out:
                    part = RawOp(out, "split", "", inputs[:1], {**attrs, "index": k}, shape=self._dims(out), ref=i)
                    self.emit(part, scope_of(node), [i])
            return
        op_id = node.output[0] if node.output and node.output[0] else f"#node{i}"
        group = [i]
        if i in self.fused:
            gate = self.nodes[self.fused[i]]
            kind, attrs = "act", {"op_type": node.op_type, "fn": GATE_FUSION[gate.op_type]}
            inputs = [self.data[n] for n in ins if n != gate.output[0]]
            group = [self.fused[i], i]
        self.emit(RawOp(op_id, kind, "", inputs, attrs, shape=self._dims(op_id), ref=i), scope_of(node), group)
        for out in node.output:
            if out:
                self.data[out] = op_id

    def _dims(self, value: str) -> tuple | None:
        entry = self.shapes.get(value)
        return entry[0] if entry else None


def _name_ops(ops: list[RawOp], scopes: list[Scope | None]) -> None:
    scoped = [i for i, s in enumerate(scopes) if s is not None]
    names = readable_names([scopes[i] for i in scoped])
    for i, name in zip(scoped, names):
        ops[i].name = name


def _fused_gates(nodes, order: list[int], wires: Wiring, outputs: set[str]) -> dict[int, int]:
    """Mul index → gate index for x·sigmoid(x) / x·hardsigmoid(x) where the gate feeds only the Mul."""
    fused = {}
    for i in order:
        node = nodes[i]
        if node.op_type != "Mul" or len(node.input) != 2 or se_tag(node) is not None:
            continue
        for a, b in (node.input, reversed(node.input)):
            gate_index = wires.producer.get(b)
            if gate_index is None:
                continue
            gate = nodes[gate_index]
            if gate.op_type not in GATE_FUSION or gate.input[0] != a or b in outputs:
                continue
            if gate.op_type == "HardSigmoid" and not _torch_hardsigmoid(gate):
                continue
            if wires.consumers.get(b) == [i]:
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
