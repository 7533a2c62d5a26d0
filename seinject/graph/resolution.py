"""Where a feature map's resolution drops: each value's downsampling level, for numbering stages.

A stage is a run of the network at one resolution. Each node gets a level, log2 of how many
times fewer spatial positions its value has than the reference:

- with shapes (recorded from example_inputs, or stored in an ONNX file), from its shape against
  the first input's: the level is then absolute ("abs" origin), whatever could be traced;
- else from the ops on the way: a strided conv or pool adds log2 of its stride's product, an
  upsample by a known factor takes it off, other ops keep their input's level. The level is
  then relative to its origin: the graph input, or an op whose effect on resolution is unknown
  (a module seinject could not trace, an input of such a module's traced children, a resize to a
  size, a strided slice or a pixel shuffle: `resample="size"`). Values of
  different origins cannot be compared (origin None where they meet).

A value computed from a global pool (N×C×1×1: the squeeze of a channel-attention branch, a
classifier head) is `squeezed`: it is a vector, not a feature map SE should scale.

Example:
    >>> from seinject.graph.view import GraphView, RawOp
    >>> v = GraphView([RawOp("x", "input", "x", [], shape=(1, 3, 32, 32)),
    ...                RawOp("c", "conv", "c", ["x"], {"out_channels": 8, "stride": (2, 2)}),
    ...                RawOp("r", "act", "r", ["c"])])
    >>> v.node("x").level, v.node("r").level, v.node("r").origin
    (0.0, 2.0, 'abs')
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .layout import NC

if TYPE_CHECKING:  # pragma: no cover
    from .view import ViewNode

ABSOLUTE = "abs"  # the level was read from a shape, against the reference input's
# ops that scale a vector back up or mix it with a map: a squeezed value does not stay squeezed
_COMBINE = frozenset({"add", "mul", "concat"})
_VECTOR_OPS = frozenset({"conv", "norm", "act", "dropout", "identity", "se", "linear", "split", "reshape"})


def reference_area(nodes: list["ViewNode"]) -> int | None:
    """Spatial positions of the first graph input that is an N×C×… map with a known shape."""
    for node in nodes:
        if node.kind == "input" and node.layout == NC:
            area = _area(node.shape)
            if area:
                return area
    return None


def infer_resolution(node: "ViewNode", inputs: list["ViewNode"], reference: int | None,
                     rank: int | None = None) -> None:
    """Set node.level, node.origin and node.squeezed from its shape or its inputs'. rank: the spatial
    rank of an upsample's input (one scale factor applies to each spatial dim).

    Example: see the module docstring.
    """
    node.squeezed = _squeezed(node, inputs)
    area = _area(node.shape) if node.layout == NC else None
    if reference and area:
        node.origin, node.level = ABSOLUTE, math.log2(reference / area)
        return
    if node.kind == "input" or not inputs or node.attrs.get("opaque"):
        node.origin, node.level = node.id, 0.0  # what happens to resolution before it is unknown
        return
    maps = [i for i in inputs if not i.squeezed] or inputs
    origins = {i.origin for i in maps}
    if len(origins) != 1 or None in origins:
        node.origin, node.level = None, None
        return
    node.origin = origins.pop()
    step = _step(node, rank)
    level = max(i.level for i in maps)
    node.level = None if step is None else level + step
    if node.level is None:  # a resize to a size, a strided slice: a new origin, shared by resamples alike
        key = node.attrs.get("resample_key")
        node.origin, node.level = (f"{node.origin}|{level}|{key}" if key else node.id), 0.0


def is_global_pool(node: "ViewNode") -> bool:
    """A pool (or reduction) over every spatial position: its output is N×C×1×1.

    Example:
        >>> from seinject.graph.view import ViewNode
        >>> is_global_pool(ViewNode("p", "pool", "p", [], {"fn": "adaptive_avg_pool", "global_pool": True}))
        True
    """
    return bool(node.attrs.get("global_pool"))


def _squeezed(node: "ViewNode", inputs: list["ViewNode"]) -> bool:
    if is_global_pool(node):
        return True
    if not inputs:
        return False
    if node.kind in _COMBINE:
        return all(i.squeezed for i in inputs)
    return node.kind in _VECTOR_OPS and inputs[0].squeezed


def _step(node: "ViewNode", rank: int | None) -> float | None:
    """log2 of how many times fewer positions the op leaves (negative for an upsample; None: unknown)."""
    if node.kind in ("conv", "pool"):
        stride = node.attrs.get("stride")
        if is_global_pool(node):
            return 0.0  # a squeezed vector: its level is never a site's
        if stride and all(isinstance(s, int) and s > 0 for s in stride):
            step = math.log2(math.prod(stride))
            return -step if node.attrs.get("transposed") else step  # a transposed conv upsamples
        return None  # an adaptive pool to a fixed size, a stride the trace does not give: unknown
    scale = node.attrs.get("resample")
    if scale is not None:
        if scale == "size" or len(scale) == 1 and rank is None:
            return None  # a new size, or one factor on an unknown number of dims
        return -math.log2(math.prod(scale) ** (rank if len(scale) == 1 else 1))
    return 0.0


def _area(shape) -> int | None:
    if not shape or len(shape) < 3 or not all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return None
    return math.prod(shape[2:])


def stage_numbers(levels: list[tuple[str | None, float | None]]) -> list[int | None]:
    """Stage k for each (origin, level): the k-th resolution among them, levels within half a step of a
    stage's first level counting as that stage. None for every entry when they do not share one origin
    (their resolutions cannot be compared) or one has none.

    Example:
        >>> stage_numbers([("abs", 2.0), ("abs", 4.05), ("abs", 2.0), ("abs", 6.0)])
        [1, 2, 1, 3]
        >>> stage_numbers([("x", 0.0), ("y", 1.0)])
        [None, None]
    """
    origins = {origin for origin, _ in levels}
    if len(origins) != 1 or None in origins or any(level is None for _, level in levels):
        return [None] * len(levels)
    firsts: list[float] = []
    for level in sorted({level for _, level in levels}):
        if not firsts or level - firsts[-1] > 0.5:
            firsts.append(level)
    return [max(i for i, first in enumerate(firsts) if level >= first - 1e-9) + 1 for _, level in levels]
