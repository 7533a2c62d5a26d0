"""Recognise channel attention in a torch model by its structure: x · g, g from x only through a global pool and a gate.

The torch counterpart of seinject.onnx.se_pattern: a module whose call computes that (Hugging
Face's EfficientNetSqueezeExciteLayer, RegNetSELayer, PP-LCNet's SE, any user's) is one "se" op in
the view, whatever its class is called, so rules count it as SE the model already has and never put
blocks inside it.

Example:
    >>> from seinject.graph.view import RawOp
    >>> ops = [RawOp("x", "input", "x", []),
    ...        RawOp("p", "pool", "p", ["x"], {"fn": "adaptive_avg_pool", "global_pool": True}),
    ...        RawOp("c", "conv", "c", ["p"]), RawOp("g", "act", "g", ["c"], {"fn": "sigmoid"}),
    ...        RawOp("m", "mul", "m", ["x", "g"])]
    >>> excitation_input(ops, 1, "m")
    'x'
"""

from __future__ import annotations

from typing import Any

from ..graph.view import RawOp

_GATES = frozenset({"sigmoid", "hardsigmoid"})


def excitation_input(ops: list[RawOp], start: int, out: Any) -> str | None:
    """The scaled input x when the ops a module call emitted (ops[start:]) compute x · g, g from x only
    through a global pool and a sigmoid-type gate, with nothing else (an SE block by structure, as
    seinject.onnx.se_pattern sees it in ONNX); else None."""
    inner = {op.id: op for op in ops[start:]}
    last = inner.get(out) if isinstance(out, str) else None
    if last is None or last.kind != "mul" or len(last.inputs) != 2:
        return None
    for x, g in (tuple(last.inputs), tuple(reversed(last.inputs))):
        if x in inner or g not in inner:
            continue
        seen, stack, pool, gate = set(), [g], False, False
        while stack:
            op = inner[stack.pop()]
            if op.id in seen:
                continue
            seen.add(op.id)
            gate = gate or (op.kind == "act" and op.attrs.get("fn") in _GATES)
            if op.attrs.get("global_pool") and op.inputs == [x]:
                pool = True
                continue
            if any(i == x and op.kind != "shape" or i != x and i not in inner for i in op.inputs):
                stack = None
                break
            stack += [i for i in op.inputs if i != x]
        if stack is not None and pool and gate and \
                all(op.id in seen or op.kind == "shape" for op in inner.values() if op is not last):
            return x
    return None
