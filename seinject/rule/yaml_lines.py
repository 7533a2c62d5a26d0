"""Safe, bounded YAML loading that remembers the line of every mapping key and list item.

Bounded: at most MAX_YAML_DEPTH levels of nesting, MAX_YAML_ALIASES alias uses and
MAX_YAML_NODES nodes counted with every alias expanded, all checked on the node tree
before any value is built, so an alias bomb fails fast with the line of the culprit.

Example:
    >>> doc = load_with_lines("a: 1\\nb:\\n  - x\\n", "f.yaml")
    >>> doc.lines["b"], doc["b"].lines[0]
    (2, 3)
"""

from __future__ import annotations

import yaml

from ..errors import RuleError
from ..suggest import clip, short
from ..limits import MAX_YAML_ALIASES, MAX_YAML_DEPTH, MAX_YAML_NODES


class LineDict(dict):
    """A dict from YAML with `.line` (its own) and `.lines` (per key)."""

    line: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines: dict = {}


class LineList(list):
    """A list from YAML with `.line` (its own) and `.lines` (per index)."""

    line: int | None = None

    def __init__(self, *args):
        super().__init__(*args)
        self.lines: list[int] = []


class _LineLoader(yaml.SafeLoader):
    """SafeLoader building LineDict/LineList, with depth and alias counts bounded while composing."""

    def __init__(self, stream: str, name: str):
        super().__init__(stream)
        self.name = name
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise RuleError(f"more than {MAX_YAML_ALIASES} YAML aliases (*name); a rule needs none",
                                self.name, mark.line + 1)
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise RuleError(f"YAML nested more than {MAX_YAML_DEPTH} levels deep", self.name, mark.line + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_size(node: yaml.Node, sizes: dict[int, int], path: str, open_nodes: set[int] | None = None) -> int:
    """Nodes below and including `node` with every alias expanded (shared nodes counted per use);
    an alias inside its own anchor (`&a [*a]`, a structure that contains itself) is a RuleError."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    open_nodes = set() if open_nodes is None else open_nodes
    if id(node) in open_nodes:
        raise RuleError("a YAML alias refers to its own anchor (a structure that contains itself)", path,
                        node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = []
    open_nodes.add(id(node))
    size = 1 + sum(_expanded_size(child, sizes, path, open_nodes) for child in children)
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def _mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise RuleError(f"keys must be strings, got {short(key)}", loader.name, line)
        if key in out:
            raise RuleError(f"duplicate key {short(key)}", loader.name, line)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def _largest_entry_line(node: yaml.Node, sizes: dict[int, int]) -> int:
    """The line of the top-level key whose value expands the most (the document's line otherwise)."""
    if isinstance(node, yaml.MappingNode) and node.value:
        key, _ = max(node.value, key=lambda pair: sizes[id(pair[1])])
        return key.start_mark.line + 1
    return node.start_mark.line + 1


def load_with_lines(text: str, path: str):
    """Parse YAML text safely; syntax errors become RuleError with the file and line.

    Example:
        >>> load_with_lines("name: x", "r.yaml")["name"]
        'x'
    """
    loader = None
    try:
        loader = _LineLoader(text, path)  # reads the stream: a NUL byte fails here
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}
        size = _expanded_size(node, sizes, path)
        if size > MAX_YAML_NODES:
            raise RuleError(f"the YAML document expands to {size} nodes (aliases included); at most "
                            f"{MAX_YAML_NODES} are allowed", path, _largest_entry_line(node, sizes))
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RuleError(f"invalid YAML: {clip(exc.problem or str(exc))}", path, line) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"invalid YAML: {clip(str(exc))}", path) from None
    except RuleError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # an explicit tag on a value it cannot convert
        raise RuleError(f"invalid YAML value: {clip(str(exc))} (an explicit tag such as !!float on a value "
                        "of another type?)", path) from None
    finally:
        if loader is not None:
            loader.dispose()
