"""Splice SE subgraphs into an ONNX graph at the matcher's sites, in one linear pass.

Before:   producer ──x──▶ consumers
After:    producer ──x──▶ SE(x) ──y──▶ consumers (all of them, or the site's own)

Each block's nodes go right after the producer of x (or first, for a graph input), so
the node list stays topologically sorted without a sort. When x is a graph output and
every consumer is to read the SE output, the producer's output is renamed instead and
the block writes x, so the graph keeps its output names. A site whose value is read
inside a control-flow subgraph, has no known rank or has an element type other than
float/float16/double is skipped with the reason.

Example:
    >>> import onnx
    >>> from seinject.rule.loader import load_rule
    >>> from seinject.graph.matcher import match
    >>> from seinject.onnx.view import build_view
    >>> model = onnx.parser.parse_model('''
    ...   <ir_version: 8, opset_import: ["" : 17]>
    ...   g (float[N, 2, 4, 4] x) => (float[N, 2, 4, 4] y) <float[2, 2, 1, 1] w = {1.0, 0.5, 0.5, 1.0}> {
    ...     c = Conv(x, w)
    ...     a = Add(c, x)
    ...     y = Relu(a)
    ...   }''')
    >>> graph = build_view(model)
    >>> rule = load_rule("after_residual")
    >>> done = splice(graph, match(rule, graph.view).sites, rule.se)
    >>> [block.module for block in done.inserted], model.graph.node[-1].name
    (['seinject/y'], 'seinject/y/scale')
"""

from __future__ import annotations

from collections import defaultdict

from onnx import TensorProto

from .block import DTYPES, NAME_PREFIX, SEBlock, build_se
from ..rule.config import SEConfig
from ..graph.site import Inserted, Site, Skip, SpliceResult
from .view import OnnxGraph


def splice(graph: OnnxGraph, sites: list[Site], config: SEConfig, seed: int = 0) -> SpliceResult:
    """Insert one SE block per site into graph.model, in place.

    Example:
        >>> import onnx.helper as h
        >>> from seinject.onnx.view import build_view
        >>> splice(build_view(h.make_model(h.make_graph([], "g", [], []))), [], SEConfig()).inserted
        []
    """
    model = graph.model
    nodes = model.graph.node
    result = SpliceResult()
    taken = _all_names(model)
    outputs = {o.name for o in model.graph.output}
    after: dict[int, list[SEBlock]] = defaultdict(list)   # producer index (-1: graph input) -> blocks
    for site in sites:
        value = site.node
        reason = _unsupported(graph, site)
        if reason:
            result.skipped.append(Skip(name=site.name, reason=reason))
            continue
        readers = _readers(graph, site)
        block_name = _fresh(f"{NAME_PREFIX}{site.name}", taken)
        producer = graph.producer.get(value, -1)
        rename = site.consumers is None and value in outputs and producer >= 0
        elem_type = graph.shapes.get(value, (None, None))[1] or TensorProto.FLOAT
        source = f"{block_name}/input" if rename else value
        block = build_se(block_name, source, site.channels, _rank(graph, value) - 2, config, graph.opset,
                         elem_type, seed, output=value if rename else None)
        taken.update(n.name for n in block.nodes)
        if rename:
            node = nodes[producer]
            for k, out in enumerate(node.output):
                if out == value:
                    node.output[k] = source
        else:
            for index in readers:
                node = nodes[index]
                for k, name in enumerate(node.input):
                    if name == value:
                        node.input[k] = block.output
        model.graph.initializer.extend(block.initializers)
        after[producer].append(block)
        result.inserted.append(Inserted(module=block_name, site=site))
    if after:
        _rebuild(graph, after)
    return result


def _unsupported(graph: OnnxGraph, site: Site) -> str | None:
    value = site.node
    if value.startswith("#node"):
        return "the value has no name"
    if value in graph.implicit and site.consumers is None:
        return "the value is read inside a control-flow subgraph (If/Loop/Scan)"
    rank = _rank(graph, value)
    if rank is None or rank < 3:
        return "rank unknown or below 3 (need N×C×spatial…)"
    elem_type = graph.shapes.get(value, (None, None))[1]
    if elem_type and elem_type not in DTYPES:
        return f"element type {elem_type} is not float, float16 or double"
    return None


def _rank(graph: OnnxGraph, value: str) -> int | None:
    dims = graph.shapes.get(value, (None, None))[0]
    if dims is not None:
        return len(dims)
    kernel = graph.view.node(value).attrs.get("kernel_size") if value in graph.view else None
    return len(kernel) + 2 if kernel else None


def _readers(graph: OnnxGraph, site: Site) -> list[int]:
    """Node indices whose inputs read the site's value and must read the SE output instead."""
    reading = graph.consumers.get(site.node, [])
    if site.consumers is None:
        return sorted(set(reading))
    wanted = {i for op in site.consumers for i in graph.members.get(op, [])}
    return sorted(set(reading) & wanted)


def _all_names(model) -> set[str]:
    names = {n.name for n in model.graph.node}
    names.update(out for n in model.graph.node for out in n.output)
    names.update(t.name for t in model.graph.initializer)
    names.update(v.name for v in model.graph.input)
    return names


def _fresh(name: str, taken: set[str]) -> str:
    candidate, k = name, 0
    while candidate in taken or any(f"{candidate}/{r}" in taken for r in ("scale", "squeeze")):
        k += 1
        candidate = f"{name}_{k}"
    taken.add(candidate)
    return candidate


def _rebuild(graph: OnnxGraph, after: dict[int, list[SEBlock]]) -> None:
    """The node list in topological order with each block right after its producer."""
    old = graph.model.graph.node
    new = [n for block in after.get(-1, []) for n in block.nodes]
    for i in graph.order:
        new.append(old[i])
        for block in after.get(i, ()):
            new.extend(block.nodes)
    del old[:]
    old.extend(new)
