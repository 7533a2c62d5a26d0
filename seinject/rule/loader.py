"""Load rules: built-in names resolve to rules/<name>.yaml, anything else is a path.

Every problem is a RuleError citing the file and line, with a did-you-mean for
misspelt keys, kinds, fn names and rule names. An `fn` alias (hard_swish, max_pool2d)
is stored as its canonical name (hardswish, max_pool).

Example:
    >>> rule = load_rule("after_residual")
    >>> rule.name, rule.insert.position
    ('after_residual', 'after')
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import SEConfig
from ..errors import ConfigError, RuleError, RuleNotFoundError
from .kinds import FN_NAMES, KINDS, canonical_fn, fn_names
from .schema import POSITIONS, Filters, Insert, OpSpec, Rule
from ..suggest import closest
from .yaml_lines import LineDict, LineList, load_with_lines

TOP_KEYS = ("name", "description", "pattern", "insert", "filters", "se")
SPEC_KEYS = tuple(f.name for f in fields(OpSpec) if f.name not in ("kinds", "line")) + ("kind",)
INSERT_KEYS = ("position", "node")
FILTER_KEYS = tuple(f.name for f in fields(Filters))
SE_KEYS = tuple(f.name for f in fields(SEConfig)) + ("min_channels",)  # se: {min_channels} is a filter


def builtin_rules_dir() -> Path:
    """The folder of built-in rules: inside the installed package, else the repository's rules/.

    Example:
        >>> (builtin_rules_dir() / "after_residual.yaml").exists()
        True
    """
    package = Path(__file__).resolve().parents[1]
    packaged = package / "rules"
    if packaged.is_dir():
        return packaged
    return package.parent / "rules"


def builtin_rule_names() -> list[str]:
    """Names of the built-in rules, sorted.

    Example:
        >>> "residual_branch" in builtin_rule_names()
        True
    """
    return sorted(p.stem for p in builtin_rules_dir().glob("*.yaml"))


def load_rule(rule: "str | Path | Rule") -> Rule:
    """A Rule from a built-in name, a YAML path, or a Rule (returned as is).

    Example:
        >>> load_rule("conv_block").filters.outside_residual
        True
    """
    if isinstance(rule, Rule):
        return rule
    if not isinstance(rule, (str, Path)):
        raise RuleError(f"rule must be a name, a path or a Rule, got {type(rule).__name__}")
    text = str(rule)
    looks_like_path = isinstance(rule, Path) or "/" in text or "\\" in text or text.endswith((".yaml", ".yml"))
    if not looks_like_path:
        path = builtin_rules_dir() / f"{text}.yaml"
        if not path.is_file():
            names = builtin_rule_names()
            raise RuleNotFoundError(
                f"unknown rule {text!r}{closest(text, names)}; built-in rules: {', '.join(names)}"
                " (or give a path to a .yaml file)"
            )
        return parse_rule(path.read_text(encoding="utf-8"), str(path))
    path = Path(text)
    if not path.is_file():
        raise RuleNotFoundError(f"rule file not found: {text}")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read rule file: {exc}", text) from None
    return parse_rule(content, text)


def parse_rule(text: str, path: str = "<string>") -> Rule:
    """Parse and validate one rule from YAML text.

    Example:
        >>> parse_rule("name: x\\npattern: [{kind: concat}]\\n").pattern[0].kinds
        ('concat',)
    """
    doc = load_with_lines(text, path)
    if not isinstance(doc, LineDict):
        raise RuleError("a rule file must be a mapping with at least 'name' and 'pattern'", path, 1)
    _check_keys(doc, TOP_KEYS, path, "rule")
    for required in ("name", "pattern"):
        if required not in doc:
            raise RuleError(f"missing required key {required!r}", path, doc.line)
    name = _string(doc, "name", path)
    pattern = _pattern(doc, path)
    insert = _insert(doc.get("insert"), doc.lines.get("insert"), pattern, path)
    filters = _filters(doc.get("filters"), doc.lines.get("filters"), path, doc.get("se"))
    se = _se(doc.get("se"), doc.lines.get("se"), path)
    description = _string(doc, "description", path) if "description" in doc else ""
    return Rule(name=name, description=description.strip(), pattern=pattern, insert=insert,
                filters=filters, se=se, source=path)


def _check_keys(mapping: LineDict, allowed: tuple[str, ...], path: str, where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise RuleError(f"unknown key {key!r} in {where}{closest(key, allowed)}; "
                            f"allowed: {', '.join(allowed)}", path, mapping.lines.get(key))


def _string(doc: LineDict, key: str, path: str) -> str:
    value = doc[key]
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{key!r} must be a non-empty string, got {value!r}", path, doc.lines.get(key))
    return value


def _pattern(doc: LineDict, path: str) -> tuple[OpSpec, ...]:
    items = doc["pattern"]
    line = doc.lines["pattern"]
    if not isinstance(items, LineList) or not items:
        raise RuleError("'pattern' must be a non-empty list of op specs", path, line)
    specs = [_spec(item, items.lines[i], path) for i, item in enumerate(items)]
    ids = [s.id for s in specs if s.id]
    if len(ids) != len(set(ids)):
        raise RuleError("pattern element ids must be unique", path, line)
    if all(s.optional for s in specs):
        raise RuleError("a pattern needs at least one element that is not optional", path, line)
    return tuple(specs)


def _spec(item: Any, line: int, path: str) -> OpSpec:
    if isinstance(item, str):
        item = LineDict(kind=item)
        item.lines["kind"] = line
    if not isinstance(item, LineDict):
        raise RuleError(f"a pattern element must be a kind or a mapping, got {item!r}", path, line)
    _check_keys(item, SPEC_KEYS, path, "pattern element")
    if "kind" not in item:
        raise RuleError("pattern element needs a 'kind'", path, line)
    at = lambda key: item.lines.get(key, line)  # noqa: E731
    kinds = _names(item["kind"], "kind", at("kind"), path, KINDS)
    values: dict[str, Any] = {"kinds": kinds, "line": line}
    for key in ("optional", "depthwise", "grouped", "residual", "channel_concat"):
        if key in item:
            values[key] = _bool(item[key], key, at(key), path)
    for key in ("min_channels", "max_channels"):
        if key in item:
            values[key] = _int(item[key], key, at(key), path)
    for key in ("kernel_size", "stride"):
        if key in item:
            values[key] = _ints(item[key], key, at(key), path)
    if "fn" in item:
        values["fn"] = _fns(item["fn"], kinds, at("fn"), path)
    if "id" in item:
        if not isinstance(item["id"], str):
            raise RuleError(f"'id' must be a string, got {item['id']!r}", path, at("id"))
        values["id"] = item["id"]
    return OpSpec(**values)


def _insert(value: Any, line: int | None, pattern: tuple[OpSpec, ...], path: str) -> Insert:
    if value is None:
        return Insert()
    if not isinstance(value, LineDict):
        raise RuleError("'insert' must be a mapping with 'position' and optionally 'node'", path, line)
    _check_keys(value, INSERT_KEYS, path, "insert")
    position = value.get("position", "after")
    if position not in POSITIONS:
        raise RuleError(f"insert position must be one of {', '.join(POSITIONS)}, got {position!r}"
                        f"{closest(str(position), POSITIONS)}", path, value.lines.get("position", line))
    node = value.get("node")
    ids = [s.id for s in pattern if s.id]
    if node is not None and node not in ids:
        raise RuleError(f"insert node {node!r} is not the id of a pattern element{closest(str(node), ids)}; "
                        f"ids: {', '.join(ids) or '(none)'}", path, value.lines.get("node", line))
    target = next((s for s in pattern if s.id == node), pattern[-1])
    if position != "after" and not ("add" in target.kinds and target.residual):
        raise RuleError(f"insert position {position!r} needs a pattern element with kind add and "
                        "residual: true as its node", path, value.lines.get("position", line))
    return Insert(position=position, node=node)


def _filters(value: Any, line: int | None, path: str, se: Any = None) -> Filters:
    """The `filters:` mapping; `se: {min_channels: N}` is accepted as an alias of its min_channels."""
    if value is None:
        value = LineDict()
    if not isinstance(value, LineDict):
        raise RuleError("'filters' must be a mapping", path, line)
    _check_keys(value, FILTER_KEYS, path, "filters")
    at = lambda key: value.lines.get(key, line)  # noqa: E731
    values: dict[str, Any] = {}
    for key in ("include", "exclude"):
        if key in value:
            values[key] = _regexes(value[key], key, at(key), path)
    for key in ("min_channels", "max_channels", "first", "last", "every", "offset"):
        if key in value and value[key] is not None:
            values[key] = _int(value[key], key, at(key), path, minimum=0 if key == "offset" else 1)
    if "outside_residual" in value:
        values["outside_residual"] = _bool(value["outside_residual"], "outside_residual", at("outside_residual"), path)
    if "stages" in value and value["stages"] is not None:
        values["stages"] = _ints(value["stages"], "stages", at("stages"), path)
    if isinstance(se, LineDict) and se.get("min_channels") is not None:  # both spellings: the larger bound
        alias = _int(se["min_channels"], "min_channels", se.lines.get("min_channels"), path)
        values["min_channels"] = max(alias, values.get("min_channels", 1))
    return Filters(**values)


def _se(value: Any, line: int | None, path: str) -> SEConfig:
    if value is None:
        return SEConfig()
    if not isinstance(value, LineDict):
        raise RuleError("'se' must be a mapping of SE settings", path, line)
    _check_keys(value, SE_KEYS, path, "se")
    try:
        return SEConfig(**{k: v for k, v in value.items() if k != "min_channels"})  # a filter: see _filters
    except ConfigError as exc:
        bad = next((k for k in value if repr(k) in str(exc)), None)
        raise RuleError(str(exc), path, value.lines.get(bad, line)) from None


def _bool(value: Any, key: str, line: int, path: str) -> bool:
    if not isinstance(value, bool):
        raise RuleError(f"{key!r} must be true or false, got {value!r}", path, line)
    return value


def _int(value: Any, key: str, line: int, path: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RuleError(f"{key!r} must be an integer >= {minimum}, got {value!r}", path, line)
    return value


def _ints(value: Any, key: str, line: int, path: str) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(_int(v, key, line, path) for v in items)


def _names(value: Any, key: str, line: int, path: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str):
            raise RuleError(f"{key!r} must be a string or a list of strings, got {item!r}", path, line)
        if allowed is not None and item not in allowed:
            raise RuleError(f"unknown {key} {item!r}{closest(item, allowed)}; known: {', '.join(allowed)}",
                            path, line)
    return tuple(items)


def _fns(value: Any, kinds: tuple[str, ...], line: int, path: str) -> tuple[str, ...]:
    """The `fn` names of an element, aliases made canonical; each must belong to one of its kinds."""
    allowed = fn_names(kinds)
    if not allowed:
        raise RuleError(f"'fn' does not apply to kind {', '.join(kinds)}: only kinds "
                        f"{', '.join(FN_NAMES)} have an fn", path, line)
    names = _names(value, "fn", line, path, None)
    for name in names:
        if canonical_fn(name) not in allowed:
            owners = [kind for kind, known in FN_NAMES.items() if canonical_fn(name) in known]
            hint = f"; {name!r} is an fn of kind {', '.join(owners)}" if owners else closest(name, allowed)
            raise RuleError(f"unknown fn {name!r} for kind {', '.join(kinds)}{hint}; known: {', '.join(allowed)}",
                            path, line)
    return tuple(dict.fromkeys(canonical_fn(name) for name in names))


def _regexes(value: Any, key: str, line: int, path: str) -> tuple[str, ...]:
    import re

    items = _names(value, key, line, path, None)
    for item in items:
        try:
            re.compile(item)
        except re.error as exc:
            raise RuleError(f"{key} pattern {item!r} is not a valid regular expression: {exc}", path, line) from None
    return items
