"""Splice SE subgraphs into an ONNX graph at the matcher's sites, in one linear pass.

Before:   producer ──x──▶ consumers
After:    producer ──x──▶ SE(x) ──y──▶ consumers (all of them, or the site's own)

Each block's nodes go right after the producer of x (or first, for a graph input), so
the node list stays topologically sorted without a sort. When x is a graph output and
every consumer is to read the SE output, the producer's output is renamed instead and
the block writes x, so the graph keeps its output names. A site whose value is read
inside a control-flow subgraph, has no known rank or has an element type other than
float/float16/double is skipped with the reason.

Names are unique by construction: a block's name "seinject/<site>" (or "seinject/<site>_<k>")
is chosen so that none of its node names, value names and initializer names, nor the block
name in its metadata, is already used anywhere in the model (main graph, subgraphs, sparse
initializers, value_info, graph inputs and outputs, dangling node inputs).

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

from .block import DTYPES, NAME_PREFIX, TAG_BLOCK, SEBlock, build_se
from .gates import build_gate
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
        producer = graph.producer.get(value, -1)
        rename = site.consumers is None and value in outputs and producer >= 0
        elem_type = graph.shapes.get(value, (None, None))[1] or TensorProto.FLOAT

        def build(name: str) -> SEBlock:
            return build_gate(name, f"{name}/input" if rename else value, site.channels, _rank(graph, value) - 2,
                            config, graph.opset, elem_type, seed, output=value if rename else None)

        block_name, block = _fresh_block(f"{NAME_PREFIX}{site.name}", taken, build, keep=value if rename else None)
        source = f"{block_name}/input" if rename else value
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
    """Every name the model uses: nodes, values, initializers (dense and sparse), value_info, graph
    inputs and outputs and SE block tags, in the main graph and all its subgraphs.

    Example:
        >>> import onnx.helper as h
        >>> sorted(_all_names(h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["y"], name="r")], "g", [], []))))
        ['r', 'x', 'y']
    """
    names: set[str] = set()
    stack = [model.graph]
    while stack:
        g = stack.pop()
        names.update(t.name for t in g.initializer)
        names.update(t.values.name for t in g.sparse_initializer)
        names.update(v.name for v in (*g.input, *g.output, *g.value_info))
        for node in g.node:
            names.add(node.name)
            names.update(node.input)
            names.update(node.output)
            names.update(p.value for p in node.metadata_props if p.key == TAG_BLOCK)
            for attr in node.attribute:
                if attr.HasField("g"):
                    stack.append(attr.g)
                stack.extend(attr.graphs)
    names.discard("")
    return names


def _block_names(block: SEBlock, keep: str | None) -> set[str]:
    """The names a block adds: its own, its nodes', their outputs (but `keep`, the output it takes
    over from the producer, whose own output becomes "<block>/input"), its initializers'."""
    names = {block.name, *(n.name for n in block.nodes), *(t.name for t in block.initializers)}
    names.update(out for n in block.nodes for out in n.output if out != keep)
    if keep is not None:
        names.add(f"{block.name}/input")
    return names


def _fresh_block(name: str, taken: set[str], build, keep: str | None = None) -> tuple[str, SEBlock]:
    """The first of name, name_1, name_2, ... whose block adds no name already in `taken`; marks them taken.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> build = lambda n: build_se(n, "x", 8, 2, SEConfig(ratio=4), opset=17)
        >>> _fresh_block("seinject/a", {"seinject/a/fc1.weight"}, build)[0]
        'seinject/a_1'
    """
    k = 0
    while True:
        candidate = name if k == 0 else f"{name}_{k}"
        k += 1
        if candidate in taken:
            continue
        block = build(candidate)
        names = _block_names(block, keep)
        if names.isdisjoint(taken):
            taken.update(names)
            return candidate, block


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
