"""Readable qualified names for ONNX nodes: recover the torch module path an exporter left behind.

- torch.onnx.export(dynamo=False) names nodes by scope: "/layer1/layer1.0/relu_1/Relu"
  (children of a Sequential appear as "layer1.0" under "layer1"; a module's second call
  gets "_1"). The module path is "layer1.0.relu_1".
- torch.onnx.export(dynamo=True) stores the scopes in node metadata
  "pkg.torch.onnx.name_scopes" (['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_2']),
  or in "namespace"; calls of one module are numbered here as the torch backend does.
- Anything else keeps the node's own name (or its first output's).

Metadata values are read only up to MAX_METADATA_CHARS (64 KiB; 4 KiB for a scope list
that is not a plain list of quoted names, which needs Python's literal parser): a longer or
malformed value is ignored (the node is named as if it had none), never an error.

An op that is the only kind of op in a scope with no sub-scopes is a module call and
gets the module path (numbered per call); other ops get "<scope>.<op>", as torch.fx
names a functional op inside a module ("layer1.0.add").

Example:
    >>> import onnx.helper as h
    >>> nodes = [h.make_node("Add", ["a", "b"], ["c"], name="/layer1/layer1.0/Add"),
    ...          h.make_node("Relu", ["c"], ["d"], name="/layer1/layer1.0/relu_1/Relu")]
    >>> readable_names([scope_of(n) for n in nodes])
    ['layer1.0.add', 'layer1.0.relu_1']
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass

import onnx

from ..limits import MAX_LITERAL_CHARS, MAX_METADATA_CHARS

_SUFFIX = re.compile(r"_\d+$")
_TORCH_NAMES = {"concat": "cat"}  # ONNX op type → the name torch.fx gives the same call
SCOPES_KEY = "pkg.torch.onnx.name_scopes"
NAMESPACE_KEY = "namespace"
_PLAIN_LIST = re.compile(r"\[\s*'[^'\\]*'(?:\s*,\s*'[^'\\]*')*\s*,?\s*\]")
_PLAIN_ITEM = re.compile(r"'([^'\\]*)'")


@dataclass(frozen=True)
class Scope:
    """Where a node came from: module path ('' at the root, None when unknown), a local op
    label, the op type, and a fallback name.

    Example:
        >>> Scope("layer1.0.relu", "relu_2", "Relu", "node_relu_2").path
        'layer1.0.relu'
    """

    path: str | None
    local: str
    op_type: str
    fallback: str


def scope_of(node: onnx.NodeProto, op_type: str | None = None) -> Scope:
    """The Scope of one node, from dynamo metadata, a dynamo=False scoped name, or neither.

    Example:
        >>> import onnx.helper as h
        >>> scope_of(h.make_node("Conv", ["x", "w"], ["y"], name="/layer2/layer2.0/downsample/downsample.0/Conv")).path
        'layer2.0.downsample.0'
    """
    op_type = op_type or node.op_type
    fallback = node.name or (node.output[0] if node.output else op_type)
    meta = {p.key: p.value for p in node.metadata_props} if len(node.metadata_props) else {}
    scopes = _dynamo_scopes(meta)
    if scopes:
        path = scopes[-2] if len(scopes) >= 2 else ""
        return Scope(path, scopes[-1], op_type, fallback)
    if node.name.startswith("/"):
        parts = node.name.split("/")[1:]
        return Scope(_join_segments(parts[:-1]), parts[-1] or op_type, op_type, fallback)
    return Scope(None, fallback, op_type, fallback)


def _dynamo_scopes(meta: dict[str, str]) -> list[str] | None:
    """The scope list a dynamo export left in node metadata; None when absent, oversized or malformed.

    Example:
        >>> _dynamo_scopes({SCOPES_KEY: "['', 'layer1', 'relu']"}), _dynamo_scopes({SCOPES_KEY: "[" * 10**6})
        (['', 'layer1', 'relu'], None)
    """
    raw = meta.get(SCOPES_KEY)
    if raw and len(raw) <= MAX_METADATA_CHARS:
        value = None
        if _PLAIN_LIST.fullmatch(raw):  # the usual form, parsed in linear time
            value = _PLAIN_ITEM.findall(raw)
        elif len(raw) <= MAX_LITERAL_CHARS:
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                value = None
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    raw = meta.get(NAMESPACE_KEY)
    if raw and len(raw) <= MAX_METADATA_CHARS:  # ": pkg.Model/layer1: torch...Sequential/relu_2: aten.relu.default"
        names = [part.split(":", 1)[0].strip() for part in raw.split("/")]
        return names if len(names) >= 2 else None
    return None


def _join_segments(segments: list[str]) -> str:
    """'layer2', 'layer2.0', 'downsample', 'downsample.0' → 'layer2.0.downsample.0'."""
    path, previous = "", None
    for seg in segments:
        if previous is not None and seg.startswith(previous + "."):
            path += seg[len(previous):]
        else:
            path = f"{path}.{seg}" if path else seg
        previous = seg
    return path


def readable_names(scopes: list[Scope]) -> list[str]:
    """One unique readable name per scope (same order).

    Example:
        >>> readable_names([Scope(None, "conv_a", "Conv", "conv_a"), Scope(None, "conv_a", "Conv", "conv_a")])
        ['conv_a', 'conv_a_1']
    """
    parents: set[str] = set()
    members: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(scopes):
        if s.path is None:
            continue
        members[s.path].append(i)
        parts = s.path.split(".") if s.path else []
        for k in range(len(parts)):
            parents.add(".".join(parts[:k]))
    names: list[str] = []
    call_index: dict[int, int] = {}
    for path, idx in members.items():
        if path and path not in parents and len({scopes[i].op_type for i in idx}) == 1:
            for n, i in enumerate(idx):
                call_index[i] = n
    for i, s in enumerate(scopes):
        if s.path is None:
            names.append(s.fallback)
        elif i in call_index:
            names.append(s.path if call_index[i] == 0 else f"{s.path}_{call_index[i]}")
        else:
            local = _SUFFIX.sub("", s.local).lower() or s.op_type.lower()
            local = _TORCH_NAMES.get(local, local)
            names.append(f"{s.path}.{local}" if s.path else local)
    return _unique(names)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    taken = set(names)
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        if count == 0:
            out.append(name)
            continue
        candidate = f"{name}_{count}"
        while candidate in taken:
            count += 1
            candidate = f"{name}_{count}"
        seen[name] = count + 1
        taken.add(candidate)
        out.append(candidate)
    return out
