"""Safe YAML loading that remembers the line of every mapping key and list item.

Example:
    >>> doc = load_with_lines("a: 1\\nb:\\n  - x\\n", "f.yaml")
    >>> doc.lines["b"], doc["b"].lines[0]
    (2, 3)
"""

from __future__ import annotations

import yaml

from ..errors import RuleError


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
    pass


def _mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise RuleError(f"keys must be strings, got {key!r}", loader.name, line)
        if key in out:
            raise RuleError(f"duplicate key {key!r}", loader.name, line)
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


def load_with_lines(text: str, path: str):
    """Parse YAML text safely; syntax errors become RuleError with the file and line.

    Example:
        >>> load_with_lines("name: x", "r.yaml")["name"]
        'x'
    """
    loader = _LineLoader(text)
    loader.name = path
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RuleError(f"invalid YAML: {exc.problem or exc}", path, line) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"invalid YAML: {exc}", path) from None
    finally:
        loader.dispose()
