"""Layout inference: which values are N×C×spatial feature maps, and with how many channels.

One small rule per op kind (the LAYOUT table) gives a node's (layout, channels) from its
inputs; kinds without a rule are unknown. A recorded shape then fills in what structure
alone cannot tell (graph inputs, opaque ops, splits). Layouts:

    NC     N × C × spatial…: a feature map SE can scale
    CL     N × spatial… × C: channels last (after a permute); not scaled
    OTHER  vectors, flattened values, arbitrary permutes
    None   unknown

Example:
    >>> from seinject.graph.view import ViewNode
    >>> x = ViewNode("x", "input", "x", [], {}, shape=(1, 8, 4, 4))
    >>> infer_layout(x, [])
    >>> (x.layout, x.channels)
    ('nc', 8)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..rule.kinds import PASS_THROUGH

if TYPE_CHECKING:  # pragma: no cover
    from .view import ViewNode

NC = "nc"
CL = "cl"
OTHER = "other"
UNKNOWN: tuple[str | None, int | None] = (None, None)
SHAPE_FALLBACK_KINDS = frozenset({"input", "other", "split"})


def infer_layout(node: "ViewNode", inputs: list["ViewNode"]) -> None:
    """Set node.layout and node.channels (and a conv's grouped/depthwise flags).

    Example:
        >>> from seinject.graph.view import ViewNode
        >>> x = ViewNode("x", "input", "x", [], {}, layout=NC, channels=8)
        >>> c = ViewNode("c", "conv", "c", ["x"], {"out_channels": 16, "groups": 8, "in_channels": 8})
        >>> infer_layout(c, [x])
        >>> (c.layout, c.channels, c.depthwise)
        ('nc', 16, True)
    """
    rule = LAYOUT.get(node.kind)
    layout, channels = rule(node, inputs) if rule is not None else UNKNOWN
    layout, channels = _from_shape(node, inputs, layout, channels)
    node.layout, node.channels = layout, channels
    if node.kind == "conv":
        groups = node.attrs.get("groups") or 1
        in_channels = node.attrs.get("in_channels")
        node.grouped = groups > 1
        node.depthwise = groups > 1 and in_channels is not None and groups == in_channels


def _from_shape(node, inputs, layout, channels):
    """A recorded shape names the channels of inputs, opaque ops and splits fed by feature maps."""
    shape = node.shape
    if shape is None:
        return layout, channels
    if layout is None and node.kind in SHAPE_FALLBACK_KINDS:
        fed_by_map = not inputs or inputs[0].layout in (NC, None)
        if len(shape) >= 3 and isinstance(shape[1], int) and fed_by_map:
            return NC, shape[1]
        return OTHER, None
    if layout == NC and channels is None and len(shape) >= 3:
        return NC, shape[1] if isinstance(shape[1], int) else None
    return layout, channels


# -- one rule per kind ---------------------------------------------------------------------
def _conv(node, inputs):
    """N×C with out_channels; an input of unknown layout is a feature map with in_channels."""
    in_channels = node.attrs.get("in_channels")
    if inputs and inputs[0].layout is None and in_channels:
        inputs[0].layout, inputs[0].channels = NC, in_channels
    return NC, node.attrs.get("out_channels")


def _same_as_input(node, inputs):
    return (inputs[0].layout, inputs[0].channels) if inputs else UNKNOWN


def _elementwise(node, inputs):
    """add/mul: a feature map when any operand is one (broadcast scales keep the map's shape)."""
    maps = [i for i in inputs if i.layout == NC]
    if maps:
        return NC, max((m.channels for m in maps if m.channels is not None), default=None)
    return _same_as_input(node, inputs)


def _concat(node, inputs):
    """Along the channel dim: the channels add up; along any other dim: not a feature map."""
    if not node.attrs.get("channel_concat"):
        return OTHER, None
    if not inputs or any(i.layout != NC for i in inputs):
        return UNKNOWN
    counts = [i.channels for i in inputs]
    return NC, sum(counts) if None not in counts else None


def _reshape(node, inputs):
    """A permute between N×C×… and channels-last keeps the channel count; anything else is OTHER."""
    perm = node.attrs.get("perm")
    if perm is None or not inputs:
        return OTHER, None
    n, first = len(perm), inputs[0]
    if n >= 3 and first.layout == NC and perm == (0, *range(2, n), 1):
        return CL, first.channels
    if n >= 3 and first.layout == CL and perm == (0, n - 1, *range(1, n - 1)):
        return NC, first.channels
    return OTHER, None


def _linear(node, inputs):
    """On channels-last values a linear layer is a 1×1 conv: still channels last."""
    if inputs and inputs[0].layout == CL:
        return CL, node.attrs.get("out_features")
    return OTHER, None


def _split(node, inputs):
    """Part `index` of a split along the channel dim, as torch.split / torch.chunk / ONNX Split cut it:
    `sizes` lists every part's size; `step` is each part's size (the last may be smaller);
    `parts` cuts into that many parts of ceil(C / parts) channels (the last may be smaller)."""
    attrs = node.attrs
    if attrs.get("dim") != 1 or not inputs or inputs[0].layout != NC or inputs[0].channels is None:
        return UNKNOWN
    whole, index, sizes = inputs[0].channels, attrs.get("index", 0), attrs.get("sizes")
    if sizes is not None:
        return (NC, sizes[index]) if index < len(sizes) else UNKNOWN
    step = attrs.get("step") or (-(-whole // attrs["parts"]) if attrs.get("parts") else None)
    size = min(step, whole - index * step) if step else 0
    return (NC, size) if size > 0 else UNKNOWN


def _not_a_map(node, inputs):
    return OTHER, None


LAYOUT: dict[str, Callable] = {
    "conv": _conv,
    **{kind: _same_as_input for kind in PASS_THROUGH},
    "add": _elementwise,
    "mul": _elementwise,
    "concat": _concat,
    "reshape": _reshape,
    "linear": _linear,
    "split": _split,
    "shape": _not_a_map,
}
