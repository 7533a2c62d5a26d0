"""Readable qualified names for ONNX nodes: recover the torch module path an exporter left behind.

- torch.onnx.export(dynamo=False) names nodes by scope: "/layer1/layer1.0/relu_1/Relu"
  (children of a Sequential appear as "layer1.0" under "layer1"; a module's second call
  gets "_1"). The module path is "layer1.0.relu_1".
- torch.onnx.export(dynamo=True) stores the scopes in node metadata
  "pkg.torch.onnx.name_scopes" (['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_2']),
  or in "namespace"; calls of one module are numbered here as the torch backend does.
- Anything else keeps the node's own name (or its first output's).
- A BatchNorm folded into the conv before it is named after the conv, with either exporter:
  in eval mode the legacy exporter folds it and keeps only the conv's scope
  ("/layer1/layer1.0/conv2/Conv" → "layer1.0.conv2"); the dynamo exporter's optimizer folds it
  too, but the fused node carries the BatchNorm's scopes, so its name comes from the conv's
  weight, which keeps the conv's parameter name ("layer1.0.conv2.weight" → "layer1.0.conv2").
  (The torch backend names such a site after the BatchNorm, "layer1.0.bn2": the legacy export
  keeps no trace of that name, so the one scheme both exports can follow is the conv's.)

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
# Legacy exports label a functional op by its ONNX op type ("/layer1/Transpose_1"); these get the
# name torch.fx (and the dynamo exporter) gives the call behind them (Transpose: see _legacy_local).
_LEGACY_TORCH_NAMES = {"ReduceMean": "mean"}
SCOPES_KEY = "pkg.torch.onnx.name_scopes"
NAMESPACE_KEY = "namespace"
REWRITE_KEY = "pkg.onnxscript.rewriter.rule_name"  # the dynamo exporter's optimizer rules that made a node
FOLDING_OPS = frozenset({"Conv", "ConvTranspose", "Gemm"})  # what onnxscript folds a BatchNorm into
_PARAMETER_PATH = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")
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
        folded = _folded_conv_path(node, meta, scopes[-1])
        return Scope(folded if folded is not None else path, scopes[-1], op_type, fallback)
    if node.name.startswith("/"):
        parts = node.name.split("/")[1:]
        return Scope(_join_segments(parts[:-1]), _legacy_local(parts[-1], node, op_type), op_type, fallback)
    return Scope(None, fallback, op_type, fallback)


def _legacy_local(label: str, node: onnx.NodeProto, op_type: str) -> str:
    """A legacy export's op label with torch's name for the call: "Transpose_1" → "permute_1", or
    "transpose_1" where the perm swaps two axes (x.transpose(1, 2)); "ReduceMean" → "mean".
    The dynamo exporter and torch.fx name these calls so.

    Example:
        >>> import onnx.helper as h
        >>> to_last = h.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])
        >>> swap = h.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3, 4])
        >>> _legacy_local("Transpose_1", to_last, "Transpose"), _legacy_local("Transpose", swap, "Transpose")
        ('permute_1', 'transpose')
    """
    if not label:
        return op_type
    base, _, suffix = label.partition("_")
    if op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        swapped = perm is not None and sum(p != k for k, p in enumerate(perm)) == 2
        torch_name = "transpose" if swapped else "permute"
    else:
        torch_name = _LEGACY_TORCH_NAMES.get(op_type)
    if torch_name is None or base != op_type or (suffix and not suffix.isdigit()):
        return label
    return f"{torch_name}_{suffix}" if suffix else torch_name


def _folded_conv_path(node: onnx.NodeProto, meta: dict[str, str], local: str) -> str | None:
    """The conv's module path for a dynamo-exported conv that a BatchNorm was folded into, else None.

    Such a node carries the BatchNorm's scopes (its fx node is the batch norm) and, as its weight,
    the conv's parameter name; the legacy exporter names the same node after the conv.

    Example:
        >>> import onnx.helper as h
        >>> conv = h.make_node("Conv", ["x", "layer1.0.conv2.weight"], ["y"])
        >>> _folded_conv_path(conv, {REWRITE_KEY: "FuseBatchNormIntoConv"}, "_native_batch_norm_legit_no_training_2")
        'layer1.0.conv2'
    """
    if node.op_type not in FOLDING_OPS or len(node.input) < 2 or not node.input[1].endswith(".weight"):
        return None
    if "FuseBatchNorm" not in meta.get(REWRITE_KEY, "") and "batch_norm" not in local:
        return None
    path = node.input[1][: -len(".weight")]
    return path if _PARAMETER_PATH.fullmatch(path) else None


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
