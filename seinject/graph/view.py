"""GraphView: a backend-neutral networkx view of a model's ops and the facts rules need.

Backends hand over RawOps in topological order; the view computes, once:
channels and layout of every value, depthwise/grouped convs, how many
downsampling steps precede each op (its depth, for stage selection), and
which additions are residual joins (with their branch, shortcut and split).

Example:
    >>> ops = [RawOp("x", "input", "x", [], shape=(1, 8, 4, 4)),
    ...        RawOp("c", "conv", "conv", ["x"], {"out_channels": 8, "groups": 1}),
    ...        RawOp("a", "add", "add", ["c", "x"])]
    >>> view = GraphView(ops)
    >>> view.node("a")["residual"], view.node("a")["shortcut"]
    (True, 'x')
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from ..rule.kinds import NOT_DATA, PASS_THROUGH

NC = "nc"          # N x C x spatial...: a feature map SE can scale
CL = "cl"          # N x spatial... x C: channels last (after a permute), not scaled
OTHER = "other"    # any other layout (vectors, flattened, arbitrary permutes)
MAX_JOIN_SEARCH = 20000


@dataclass
class RawOp:
    """One op as a backend sees it.

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


def _permuted(layout: str | None, channels: int | None, perm: tuple[int, ...]):
    """Layout after a permute: NC <-> channels-last moves keep the channel count."""
    n = len(perm)
    to_last = perm == (0, *range(2, n), 1)
    to_first = perm == (0, n - 1, *range(1, n - 1))
    if layout == NC and to_last and n >= 3:
        return CL, channels
    if layout == CL and to_first and n >= 3:
        return NC, channels
    return OTHER, None


def _chunk_part(data: dict[str, dict], source: dict):
    """Layout of one part of x.chunk(n, dim=1) (ShuffleNet's channel split), else unknown."""
    attrs = source["attrs"]
    if attrs.get("fn") != "chunk" or attrs.get("dim") != 1 or not attrs.get("chunks") or not source["inputs"]:
        return None, None
    whole = data[source["inputs"][0]]
    if whole["layout"] != NC or whole["channels"] is None or whole["channels"] % attrs["chunks"]:
        return None, None
    return NC, whole["channels"] // attrs["chunks"]


class GraphView:
    """The op graph plus derived facts; nodes carry kind, name, attrs, channels, layout, depth.

    Example:
        >>> GraphView([RawOp("x", "input", "x", [], shape=(1, 3, 8, 8))]).node("x")["channels"]
        3
    """

    def __init__(self, ops: list[RawOp]):
        self.graph = nx.DiGraph()
        self._data: dict[str, dict] = {}  # node id -> attributes
        self.order: list[str] = []
        edges = []
        for op in ops:
            edges += self._add(op)
        self.graph.add_nodes_from(self._data.items())
        self.graph.add_edges_from(edges)
        self._data = dict(self.graph.nodes(data=True))  # networkx copied them: share its dicts
        self.index = {n: i for i, n in enumerate(self.order)}
        for n in self.order:
            self._infer_layout(n)
            self._infer_depth(n)
        for n in self.order:
            if self._data[n]["kind"] == "add":
                self._classify_join(n)

    # -- access -------------------------------------------------------------------------
    def node(self, node_id: str) -> dict:
        """Attributes of one node."""
        return self._data[node_id]

    def nodes(self) -> Iterator[str]:
        """Node ids in topological order."""
        return iter(self.order)

    def inputs(self, node_id: str) -> list[str]:
        """Producer ids of a node's data inputs, in argument order (repeats kept)."""
        return self._data[node_id]["inputs"]

    def consumers(self, node_id: str) -> list[str]:
        """Ops that read this node's output as data (shape reads excluded), in topological order."""
        users = [u for u in self.graph.successors(node_id) if self._data[u]["kind"] not in NOT_DATA]
        return sorted(users, key=self.index.__getitem__)

    def is_feature_map(self, node_id: str) -> bool:
        """True when the output is N x C x spatial with a known channel count."""
        data = self._data[node_id]
        return data["layout"] == NC and data["channels"] is not None

    def __len__(self) -> int:
        return len(self.order)

    # -- construction -------------------------------------------------------------------
    def _add(self, op: RawOp) -> list[tuple[str, str]]:
        """Record one op's attributes; returns its edges."""
        inputs = [i for i in op.inputs if i in self._data]
        self._data[op.id] = dict(kind=op.kind, name=op.name, attrs=op.attrs, shape=op.shape,
                                 ref=op.ref, inputs=inputs, channels=None, layout=None, depth=0,
                                 residual=False)
        self.order.append(op.id)
        return [(producer, op.id) for producer in inputs]

    def _infer_layout(self, n: str) -> None:
        data = self._data[n]
        kind, attrs, ins = data["kind"], data["attrs"], data["inputs"]
        first = self._data[ins[0]] if ins else None
        layout, channels = None, None
        if kind == "conv":
            layout, channels = NC, attrs.get("out_channels")
            if first is not None and first["layout"] is None and attrs.get("in_channels"):
                first["layout"], first["channels"] = NC, attrs["in_channels"]  # a conv's input
        elif kind in PASS_THROUGH and first is not None:
            layout, channels = first["layout"], first["channels"]
        elif kind in ("add", "mul"):
            maps = [self._data[i] for i in ins if self._data[i]["layout"] == NC]
            if maps:
                layout = NC
                channels = max((m["channels"] for m in maps if m["channels"] is not None), default=None)
            elif first is not None:
                layout, channels = first["layout"], first["channels"]
        elif kind == "concat" and attrs.get("channel_concat"):
            parts = [self._data[i] for i in ins]
            if parts and all(p["layout"] == NC for p in parts):
                layout = NC
                counts = [p["channels"] for p in parts]
                channels = sum(counts) if None not in counts else None
        elif kind == "reshape" and "perm" in attrs and first is not None:
            layout, channels = _permuted(first["layout"], first["channels"], attrs["perm"])
        elif kind == "linear" and first is not None and first["layout"] == CL:
            layout, channels = CL, attrs.get("out_features")
        elif kind in ("linear", "reshape", "concat", "shape"):
            layout = OTHER
        if kind == "other" and attrs.get("fn") == "getitem" and first is not None:
            layout, channels = _chunk_part(self._data, first)
        shape = data["shape"]
        if shape is not None and layout is None and kind in ("input", "other"):
            # a recorded shape names the channels of inputs and opaque ops fed by feature maps
            fed_by_map = first is None or first["layout"] in (NC, None)
            if len(shape) >= 3 and isinstance(shape[1], int) and fed_by_map:
                layout, channels = NC, shape[1]
            else:
                layout = OTHER
        elif shape is not None and layout == NC and channels is None and len(shape) >= 3:
            channels = shape[1] if isinstance(shape[1], int) else None
        data["layout"], data["channels"] = layout, channels
        if kind == "conv":
            groups = attrs.get("groups") or 1
            in_ch = attrs.get("in_channels")
            data["grouped"] = groups > 1
            data["depthwise"] = groups > 1 and in_ch is not None and groups == in_ch

    def _infer_depth(self, n: str) -> None:
        data = self._data[n]
        base = max((self._data[i]["depth"] for i in data["inputs"]), default=0)
        stride = data["attrs"].get("stride")
        strided = data["kind"] in ("conv", "pool") and stride is not None and any(s > 1 for s in stride)
        data["depth"] = base + int(strided)

    def _classify_join(self, n: str) -> None:
        """Mark an add as a residual join when its two inputs meet at a common split point."""
        data = self._data[n]
        ins = list(dict.fromkeys(data["inputs"]))
        if len(ins) != 2:
            return
        a, b = ins
        da, db = self._data[a], self._data[b]
        if OTHER in (da["layout"], db["layout"]) or da["kind"] in NOT_DATA or db["kind"] in NOT_DATA:
            return
        if None not in (da["channels"], db["channels"]) and da["channels"] != db["channels"]:
            return
        found = self._split_point(a, b)
        if found is None:
            return
        split, only_a, only_b = found
        if not only_a and not only_b:
            return
        convs = lambda side: sum(self._data[x]["kind"] == "conv" for x in side)  # noqa: E731
        a_is_branch = (len(only_a), convs(only_a)) > (len(only_b), convs(only_b))
        branch, shortcut = (a, b) if a_is_branch else (b, a)
        branch_nodes = only_a if a_is_branch else only_b
        data.update(residual=True, branch=branch, shortcut=shortcut, split=split,
                    branch_nodes=frozenset(branch_nodes),
                    shortcut_nodes=frozenset(only_b if a_is_branch else only_a))
        for x in branch_nodes:
            self._data[x]["in_residual"] = True
        for side in (da, db):  # both inputs of a join have the join's shape
            if side["channels"] is None and data["channels"] is not None and side["layout"] is None:
                side["layout"], side["channels"] = NC, data["channels"]

    def _split_point(self, a: str, b: str):
        """Latest common ancestor of a and b (ancestors-or-self), and the nodes only one side reaches.

        Walks backwards in decreasing topological order, so the first node reached from
        both sides is the split; the cost is the size of the block, not of the graph.
        """
        index, data = self.index, self._data
        side = {a: 1, b: 2}
        pending = {1: 1, 2: 1, 3: 0}  # queued nodes per label; a side with none left cannot meet
        heap = [-index[a], -index[b]]
        heapq.heapify(heap)
        exclusive: dict[int, list[str]] = {1: [], 2: []}
        steps = 0
        while heap and steps < MAX_JOIN_SEARCH:
            steps += 1
            node = self.order[-heapq.heappop(heap)]
            label = side[node]
            pending[label] -= 1
            if label == 3:
                return node, exclusive[1], exclusive[2]
            exclusive[label].append(node)
            for producer in data[node]["inputs"]:
                if data[producer]["kind"] in NOT_DATA:
                    continue
                old = side.get(producer)
                if old is None:
                    side[producer] = label
                    pending[label] += 1
                    heapq.heappush(heap, -index[producer])
                elif old | label != old:
                    side[producer] = old | label
                    pending[old] -= 1
                    pending[old | label] += 1
            if pending[3] == 0 and (pending[1] == 0 or pending[2] == 0):
                return None
        return None
