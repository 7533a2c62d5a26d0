"""Residual joins: which additions join a branch and a shortcut, and where the two sides split.

An add of two feature maps with the same channel count is a residual join when its inputs
meet at a common split point. The branch is the side with more ops (then more convs)
between the split and the join; the other side (nothing, or a projection) is the shortcut.

    split ─┬─ conv ─ bn ─ relu ─ conv ─ bn ─┐ branch
           └──────────── shortcut ──────────(+) join

Example:
    >>> from seinject.graph.view import GraphView, RawOp
    >>> view = GraphView([RawOp("x", "input", "x", [], shape=(1, 8, 4, 4)),
    ...                   RawOp("c", "conv", "c", ["x"], {"out_channels": 8}),
    ...                   RawOp("a", "add", "a", ["c", "x"])])
    >>> join = view.node("a").join
    >>> (join.branch, join.shortcut, join.split, sorted(join.branch_nodes))
    ('c', 'x', 'x', ['c'])
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..rule.kinds import NOT_DATA
from .layout import CL, NC, OTHER

if TYPE_CHECKING:  # pragma: no cover
    from .view import GraphView, ViewNode

MAX_JOIN_SEARCH = 20000  # nodes visited looking for a split point before giving up


@dataclass(frozen=True, slots=True)
class Join:
    """The two sides of a residual join.

    branch, shortcut: ids of the join's two inputs; split: id of the value both sides start from;
    branch_nodes, shortcut_nodes: ids of the ops only that side reaches from the split.

    Example:
        >>> Join("b", "x", "x", frozenset({"c", "b"}), frozenset()).shortcut
        'x'
    """

    branch: str
    shortcut: str
    split: str
    branch_nodes: frozenset[str]
    shortcut_nodes: frozenset[str]


def classify_join(view: "GraphView", node: "ViewNode") -> None:
    """Give an add its Join when it is a residual join; mark its branch ops as in_residual.

    Both inputs of a join have the join's shape, so an input of unknown layout takes the
    join's channel count.
    """
    ins = list(dict.fromkeys(node.inputs))
    if len(ins) != 2:
        return
    a, b = view.node(ins[0]), view.node(ins[1])
    if OTHER in (a.layout, b.layout) or a.kind in NOT_DATA or b.kind in NOT_DATA:
        return
    if None not in (a.channels, b.channels) and a.channels != b.channels:
        return
    found = split_point(view, a.id, b.id)
    if found is None:
        return
    split, only_a, only_b = found
    if not only_a and not only_b:
        return
    if _weight(view, only_a) > _weight(view, only_b):
        branch, shortcut, branch_nodes, shortcut_nodes = a, b, only_a, only_b
    else:
        branch, shortcut, branch_nodes, shortcut_nodes = b, a, only_b, only_a
    node.join = Join(branch.id, shortcut.id, split, frozenset(branch_nodes), frozenset(shortcut_nodes))
    for x in branch_nodes:
        view.node(x).in_residual = True
    for side in (a, b):  # an opaque side of a join has the join's layout (channels-last stays channels-last)
        if side.channels is None and node.channels is not None and side.layout is None and node.layout in (NC, CL):
            side.layout, side.channels = node.layout, node.channels


def _weight(view: "GraphView", side: list[str]) -> tuple[int, int]:
    """How much work a side does: its op count, then its conv count."""
    return len(side), sum(view.node(x).kind == "conv" for x in side)


def split_point(view: "GraphView", a: str, b: str) -> tuple[str, list[str], list[str]] | None:
    """Latest common ancestor of a and b (ancestors-or-self), and the nodes only one side reaches.

    Walks backwards in decreasing topological order, so the first node reached from
    both sides is the split; the cost is the size of the block, not of the graph.

    Example:
        >>> from seinject.graph.view import GraphView, RawOp
        >>> view = GraphView([RawOp("x", "input", "x", []), RawOp("r", "act", "r", ["x"])])
        >>> split_point(view, "r", "x")
        ('x', ['r'], [])
    """
    index, order = view.index, view.order
    side = {a: 1, b: 2}
    pending = {1: 1, 2: 1, 3: 0}  # queued nodes per label; a side with none left cannot meet
    heap = [-index[a], -index[b]]
    heapq.heapify(heap)
    exclusive: dict[int, list[str]] = {1: [], 2: []}
    steps = 0
    while heap and steps < MAX_JOIN_SEARCH:
        steps += 1
        current = order[-heapq.heappop(heap)]
        label = side[current]
        pending[label] -= 1
        if label == 3:
            return current, exclusive[1], exclusive[2]
        exclusive[label].append(current)
        for producer in view.inputs(current):
            if view.node(producer).kind in NOT_DATA:
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
