"""GraphView: the backend-neutral view of a model's ops, with the facts rules need computed once.

Backends hand over RawOps in topological order; the view turns each into a ViewNode and
computes, once: layout and channel count of every value (seinject.graph.layout), its
resolution level (seinject.graph.resolution, for stage numbers) and whether it is a globally
pooled vector, depthwise and grouped convs, and which additions are residual joins, with
their branch, shortcut and split point (seinject.graph.joins). The op graph itself is a
networkx DiGraph over the node ids.

Example:
    >>> ops = [RawOp("x", "input", "x", [], shape=(1, 8, 4, 4)),
    ...        RawOp("c", "conv", "conv", ["x"], {"out_channels": 8, "groups": 1}),
    ...        RawOp("a", "add", "add", ["c", "x"])]
    >>> view = GraphView(ops)
    >>> view.node("a").residual, view.node("a").join.shortcut
    (True, 'x')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from ..rule.kinds import NOT_DATA
from .joins import Join, classify_join
from .layout import NC, infer_layout
from .resolution import infer_resolution, reference_area


@dataclass
class RawOp:
    """One op as a backend sees it: id, kind, qualified name, producer ids of its inputs.

    Example:
        >>> RawOp("n1", "act", "layer1.0.relu", ["n0"], {"fn": "relu"}).kind
        'act'
    """

    id: str
    kind: str
    name: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    shape: tuple | None = None
    ref: Any = None


@dataclass(slots=True, eq=False)
class ViewNode:
    """One op of the view and the facts derived for it.

    id, kind, name, attrs, shape, ref: as the backend gave them (ref points back into the
        backend's graph: an fx node, an ONNX node index).
    inputs: producer ids of its data inputs, in argument order (repeats kept).
    layout: "nc" (N×C×spatial…, a feature map SE can scale), "cl" (channels last),
        "other", or None (unknown). channels: its channel count when known.
        Two facts flow backwards: a conv's unknown input becomes an N×C map with the conv's
        in_channels, and a residual join's unknown inputs take the join's channel count.
    level, origin: the resolution level (log2 of how many times fewer positions than the input)
        and what it is relative to (seinject.graph.resolution); squeezed: a globally pooled vector.
    grouped, depthwise: for convs (groups > 1; groups == in_channels).
    join: the residual-join record, on adds that join a branch and a shortcut.
    in_residual: the op lies on the branch of some residual join.

    Example:
        >>> ViewNode("c", "conv", "conv", [], {}).residual
        False
    """

    id: str
    kind: str
    name: str
    inputs: list[str]
    attrs: dict[str, Any]
    shape: tuple | None = None
    ref: Any = None
    layout: str | None = None
    channels: int | None = None
    level: float | None = None
    origin: str | None = None
    squeezed: bool = False
    grouped: bool = False
    depthwise: bool = False
    join: Join | None = None
    in_residual: bool = False

    @property
    def residual(self) -> bool:
        """True for an add that joins a residual branch and its shortcut."""
        return self.join is not None


class GraphView:
    """The op graph plus derived facts, one ViewNode per op.

    Example:
        >>> GraphView([RawOp("x", "input", "x", [], shape=(1, 3, 8, 8))]).node("x").channels
        3
    """

    def __init__(self, ops: list[RawOp]):
        self._nodes: dict[str, ViewNode] = {}
        self.order: list[str] = []
        edges = []
        for op in ops:
            inputs = [i for i in op.inputs if i in self._nodes]
            self._nodes[op.id] = ViewNode(op.id, op.kind, op.name, inputs, op.attrs, op.shape, op.ref)
            self.order.append(op.id)
            edges += [(producer, op.id) for producer in inputs]
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from(self.order)
        self.graph.add_edges_from(edges)
        self.index = {n: i for i, n in enumerate(self.order)}
        for n in self.order:
            node = self._nodes[n]
            infer_layout(node, [self._nodes[i] for i in node.inputs])
        reference = reference_area([self._nodes[n] for n in self.order])
        for n in self.order:
            node = self._nodes[n]
            rank = self.spatial_rank(node.inputs[0]) if "resample" in node.attrs and node.inputs else None
            infer_resolution(node, [self._nodes[i] for i in node.inputs], reference, rank)
        for n in self.order:
            if self._nodes[n].kind == "add":
                classify_join(self, self._nodes[n])

    def node(self, node_id: str) -> ViewNode:
        """One node by id."""
        return self._nodes[node_id]

    def nodes(self) -> Iterator[str]:
        """Node ids in topological order."""
        return iter(self.order)

    def inputs(self, node_id: str) -> list[str]:
        """Producer ids of a node's data inputs, in argument order (repeats kept)."""
        return self._nodes[node_id].inputs

    def consumers(self, node_id: str) -> list[str]:
        """Ops that read this node's output as data (shape reads excluded), in topological order."""
        users = [u for u in self.graph.successors(node_id) if self._nodes[u].kind not in NOT_DATA]
        return sorted(users, key=self.index.__getitem__)

    def is_feature_map(self, node_id: str) -> bool:
        """True when the output is N x C x spatial with a known channel count."""
        node = self._nodes[node_id]
        return node.layout == NC and node.channels is not None

    def spatial_rank(self, node_id: str) -> int | None:
        """Spatial dims of a feature map (2 for N×C×H×W): from its shape, else from the nearest conv
        or pool upstream (its kernel or stride), None when nothing tells.

        Example:
            >>> v = GraphView([RawOp("x", "input", "x", []),
            ...                RawOp("c", "conv", "c", ["x"], {"out_channels": 4, "kernel_size": (3,)}),
            ...                RawOp("r", "act", "r", ["c"])])
            >>> v.spatial_rank("r"), v.spatial_rank("x")
            (1, None)
        """
        seen, todo = set(), [node_id]
        while todo and len(seen) < 256:
            node = self._nodes[todo.pop(0)]
            if node.id in seen:
                continue
            seen.add(node.id)
            if node.shape is not None and len(node.shape) >= 3:
                return len(node.shape) - 2
            kernel, stride = node.attrs.get("kernel_size"), node.attrs.get("stride")
            if node.kind == "conv" and isinstance(kernel, tuple) and kernel:
                return len(kernel)
            if node.kind in ("conv", "pool") and isinstance(stride, tuple) and len(stride) > 1:
                return len(stride)  # one int stride is ambiguous (F.max_pool2d(x, 2) records (2,))
            if node.layout == NC:
                todo += [i for i in node.inputs if self._nodes[i].layout == NC]
        return None

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self.order)
