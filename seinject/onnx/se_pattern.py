"""Recognise SE blocks that carry no seinject tags, by their structure: `Mul(x, g)` where g is
computed from x only through a global average pool and a sigmoid-type gate (the blocks of a
model that seinject rewrote and torch exported, torchvision's SqueezeExcitation, timm's SEModule
and EffectiveSEModule). They count as "already has SE", as their modules do in torch.

Example:
    >>> import onnx
    >>> from seinject.onnx.wiring import topological_order, wiring
    >>> m = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
    ...   g (float[1, 4, 8, 8] x) => (float[1, 4, 8, 8] y) <float[4, 4, 1, 1] w> {
    ...     p = GlobalAveragePool(x)
    ...     h = Conv(p, w)
    ...     s = Sigmoid(h)
    ...     y = Mul(x, s)
    ...   }''')
    >>> order = topological_order(m)
    >>> blocks = untagged_se(m.graph.node, order, wiring(m.graph.node, order), {"w"}, set())
    >>> sorted(blocks.items())
    [(0, ('y', 'part')), (1, ('y', 'part')), (2, ('y', 'part')), (3, ('y', 'scale'))]
"""

from __future__ import annotations

from typing import Container

GATES = frozenset({"Sigmoid", "HardSigmoid"})
POOLS = frozenset({"GlobalAveragePool", "ReduceMean"})
SHAPE_READS = frozenset({"Shape", "Size"})  # read x's shape, not its values
MAX_NODES = 48  # nodes of one block's excitation path (seinject's own has at most 14)


def untagged_se(nodes, order: list[int], wires, constants: Container[str], tagged: set[int]) -> dict[int, tuple[str, str]]:
    """{node index: (block name, role)} for every untagged SE block: role "scale" for its last Mul,
    "part" for the nodes that compute its gate."""
    found: dict[int, tuple[str, str]] = {}
    for i in order:
        node = nodes[i]
        if i in tagged or i in found or node.op_type != "Mul" or len(node.input) != 2:
            continue
        for x, g in (tuple(node.input), tuple(reversed(node.input))):
            members = _excitation(nodes, wires, constants, x, g, i)
            if members:
                block = node.name or node.output[0]
                found.update({j: (block, "part") for j in members})
                found[i] = (block, "scale")
                break
    return found


def _excitation(nodes, wires, constants: Container[str], x: str, g: str, scale: int) -> set[int] | None:
    """The node indices that compute g from x through a global pool and a gate, used by nothing else;
    None when g is anything else."""
    start = wires.producer.get(g)
    if start is None:
        return None
    seen: set[int] = set()
    stack, gate, pool = [start], False, False
    while stack:
        j = stack.pop()
        if j in seen:
            continue
        seen.add(j)
        if len(seen) > MAX_NODES:
            return None
        node = nodes[j]
        gate = gate or node.op_type in GATES
        if node.op_type in POOLS and node.input and node.input[0] == x:
            pool = True
            continue
        for name in node.input:
            if not name or name in constants:
                continue
            if name == x:
                if node.op_type in SHAPE_READS:
                    continue
                return None  # x itself reaches the gate another way (x·sigmoid(x) is an activation)
            producer = wires.producer.get(name)
            if producer is None:
                return None  # another graph input
            if nodes[producer].op_type != "Constant":
                stack.append(producer)
    if not (gate and pool):
        return None
    inside = seen | {scale}
    for j in seen:
        for out in nodes[j].output:
            if any(c not in inside for c in wires.consumers.get(out, [])):
                return None
    return seen
