"""ModelProto → RawOps → GraphView: the same backend-neutral view the torch backend builds.

- Op types become kinds (seinject.onnx.kinds); channels come from conv weights
  (initializers, Constant nodes, Identity of either) and from shape inference.
- Constants and shape arithmetic (Shape → Gather → Concat → Reshape) are not data:
  they are left out of the view, as torch.fx shows `x.size()` as a shape read.
- x·sigmoid(x) and x·hardsigmoid(x) (how SiLU and Hardswish are exported) are one act op.
- A channels-last norm wrapped in permutes inside one module, Transpose → LayerNormalization
  (last axis) → Transpose back (torchvision's and timm's LayerNorm2d), is one norm op on the
  N×C×… map, as the torch backend sees that module: a site after it takes the module's name.
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
from .kinds import attrs_of, classify
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
        wrapped = _wrapped_norms(self.nodes, order, wires, {o.name for o in graph.output}, self.constants)
        self.wrapped = {i: pair for i, pair in wrapped.items() if not self.tags.keys() & {i, *pair}}
        self.wrapped_inner = {j for pair in self.wrapped.values() for j in pair}
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
        if i in self.wrapped_inner:  # part of the norm op emitted at its closing Transpose
            return
        if i in self.wrapped:
            self._add_wrapped(i)
            return
        if i in self.tags:  # a gate's last node may read only the block's own values
            self._add_se(i)
            return
        ins = [n for n in (*node.input, *outer_names(node)) if n in self.data]
        if not ins or node.op_type in NOT_DATA_OPS:
            if node.op_type == "Identity" and node.input and node.input[0] in self.constants:
                self.constants[node.output[0]] = self.constants[node.input[0]]
            return
        if i not in self.fused_gates:  # a fused gate is part of the act op at its Mul
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

    def _add_wrapped(self, i: int) -> None:
        """One norm op for Transpose → norm → Transpose, at the closing Transpose's output."""
        opening, norm_index = self.wrapped[i]
        source = self.nodes[opening].input[0]
        if source not in self.data:
            return
        norm, close = self.nodes[norm_index], self.nodes[i]
        kind, attrs = classify(norm, self.constants, self.shapes)
        op_id = close.output[0]
        inner = scope_of(norm)
        scope = Scope(inner.path, inner.local, inner.op_type, scope_of(close).fallback)
        op = RawOp(op_id, kind, "", [self.data[source]], attrs, shape=self._dims(op_id), ref=i)
        self.emit(op, scope, [opening, norm_index, i])

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


WRAPPABLE_NORMS = frozenset({"LayerNormalization", "RMSNormalization"})  # they normalise the last axis


def _wrapped_norms(nodes, order: list[int], wires: Wiring, outputs: set[str], constants) -> dict[int, tuple[int, int]]:
    """Closing Transpose index → (opening Transpose, norm) for Transpose(to channels-last) →
    LayerNormalization/RMSNormalization over the last axis → Transpose(back), each value read only
    by the next and none a graph output, all three in one module scope (the same scope, or none).

    Example:
        >>> import onnx
        >>> m = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[1, 4, 8, 8] x) => (float[1, 4, 8, 8] y) <float[4] s, float[4] b> {
        ...     t = Transpose<perm = [0, 2, 3, 1]>(x)
        ...     n = LayerNormalization<axis = -1>(t, s, b)
        ...     y = Transpose<perm = [0, 3, 1, 2]>(n)
        ...   }''')
        >>> order = topological_order(m)
        >>> _wrapped_norms(m.graph.node, order, wiring(m.graph.node, order), set(), {"s", "b"})
        {2: (0, 1)}
    """
    found: dict[int, tuple[int, int]] = {}
    for i in order:
        close = nodes[i]
        if not _plain(close, "Transpose") or not close.input or close.input[0] in outputs:
            continue
        norm_index = wires.producer.get(close.input[0])
        if norm_index is None or wires.consumers.get(close.input[0]) != [i]:
            continue
        norm = nodes[norm_index]
        if not _plain(norm, norm.op_type) or norm.op_type not in WRAPPABLE_NORMS or not norm.input:
            continue
        opening_index = wires.producer.get(norm.input[0])
        if opening_index is None or norm.input[0] in outputs or wires.consumers.get(norm.input[0]) != [norm_index]:
            continue
        opening = nodes[opening_index]
        if not _plain(opening, "Transpose") or not _constant_inputs(norm.input[1:], wires, nodes, constants):
            continue
        to_last, back = _perm(opening), _perm(close)
        if to_last is None or back is None or len(to_last) < 3 or len(to_last) != len(back):
            continue
        rank = len(to_last)
        if to_last != (0, *range(2, rank), 1) or back != (0, rank - 1, *range(1, rank - 1)):
            continue
        if attrs_of(norm).get("axis", -1) not in (-1, rank - 1):
            continue
        if len({scope_of(nodes[j]).path for j in (opening_index, norm_index, i)}) != 1:
            continue
        found[i] = (opening_index, norm_index)
    return found


def _plain(node: onnx.NodeProto, op_type: str) -> bool:
    """An ai.onnx node of this type with one output."""
    return node.op_type == op_type and node.domain in ("", "ai.onnx") and len(node.output) == 1


def _perm(node: onnx.NodeProto) -> tuple | None:
    perm = attrs_of(node).get("perm")
    if not isinstance(perm, (list, tuple)) or not all(isinstance(p, int) for p in perm):
        return None
    return tuple(perm)


def _constant_inputs(names, wires: Wiring, nodes, constants) -> bool:
    """True when every named input is an initializer or a Constant node's output, or an Identity of
    one (the legacy exporter shares equal initializers through Identity nodes)."""
    for name in names:
        for _ in range(8):  # a short Identity chain at most
            if not name or name in constants:
                break
            producer = wires.producer.get(name)
            if producer is None:
                return False
            node = nodes[producer]
            if node.op_type == "Constant":
                break
            if node.op_type != "Identity" or not node.input:
                return False
            name = node.input[0]
        else:
            return False
    return True


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
