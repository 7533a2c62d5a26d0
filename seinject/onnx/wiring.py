"""Who makes and who reads each value of an ONNX graph, and the nodes in topological order.

Values read inside If/Loop/Scan bodies count as read by the node that holds the body
(`implicit` readers): they cannot be rewired from the outer graph.

Example:
    >>> import onnx.helper as h
    >>> g = h.make_graph([h.make_node("Relu", ["x"], ["a"]), h.make_node("Relu", ["a"], ["b"])], "g", [], [])
    >>> w = wiring(g.node, topological_order(h.make_model(g)))
    >>> w.producer["a"], w.consumers["a"]
    (0, [1])
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass

import onnx

from ..errors import ModelError

SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})  # ai.onnx ops with graph attributes


@dataclass
class Wiring:
    """value name → index of the node that makes it; → indices of the nodes that read it
    (directly, or inside a subgraph body: implicit)."""

    producer: dict[str, int]
    consumers: dict[str, list[int]]
    implicit: dict[str, list[int]]


def wiring(nodes, order: list[int]) -> Wiring:
    """The producer and readers of every value, visiting nodes in `order`.

    Example: see the module docstring.
    """
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
        for name in outer_names(node):
            implicit[name].append(i)
    return Wiring(producer, dict(consumers), dict(implicit))


def outer_names(node: onnx.NodeProto) -> list[str]:
    """Values of the enclosing graph that a node's subgraphs (If/Loop/Scan bodies) read.

    Example:
        >>> import onnx.helper as h
        >>> outer_names(h.make_node("Relu", ["x"], ["y"]))
        []
    """
    names: list[str] = []
    if node.op_type not in SUBGRAPH_OPS and node.domain in ("", "ai.onnx"):
        return names
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            names.extend(free_names(sub))
    return names


def free_names(graph: onnx.GraphProto) -> list[str]:
    """Names a (sub)graph reads without defining them: values of its enclosing graph."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    free: list[str] = []
    for node in graph.node:
        for name in (*node.input, *outer_names(node)):
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
    deps = [{producer[n] for n in (*node.input, *outer_names(node)) if n in producer} for node in nodes]
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
