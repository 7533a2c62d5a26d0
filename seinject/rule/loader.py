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
from ..suggest import clip, closest, short
from ..limits import MAX_RULE_BYTES
from . import checks
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
                f"unknown rule {short(text)}{closest(text, names)}; built-in rules: {', '.join(names)}"
                " (or give a path to a .yaml file)"
            )
        return parse_rule(read_rule_file(path), str(path))
    path = Path(text)
    if not path.is_file():  # also refuses FIFOs and devices, which could block or never end
        raise RuleNotFoundError(f"rule file not found: {clip(text)}")
    return parse_rule(read_rule_file(path), text)


def read_rule_file(path: Path) -> str:
    """The text of a rule file: at most MAX_RULE_BYTES, UTF-8; other files are a RuleError.

    Example:
        >>> read_rule_file(builtin_rules_dir() / "after_residual.yaml").startswith("name:")
        True
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RULE_BYTES + 1)  # never more, whatever the file claims its size is
        if len(data) > MAX_RULE_BYTES:
            raise RuleError(f"rule file is larger than {MAX_RULE_BYTES} bytes; rules are short", str(path))
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read rule file: {clip(str(exc))}", str(path)) from None


def parse_rule(text: str, path: str = "<string>") -> Rule:
    """Parse and validate one rule from YAML text.

    Example:
        >>> parse_rule("name: x\\npattern: [{kind: concat}]\\n").pattern[0].kinds
        ('concat',)
    """
    if len(text) > MAX_RULE_BYTES:
        raise RuleError(f"rule text is longer than {MAX_RULE_BYTES} characters; rules are short", path)
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
            raise RuleError(f"unknown key {short(key)} in {where}{closest(key, allowed)}; "
                            f"allowed: {', '.join(allowed)}", path, mapping.lines.get(key))


def _string(doc: LineDict, key: str, path: str) -> str:
    value = doc[key]
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{key!r} must be a non-empty string, got {short(value)}", path, doc.lines.get(key))
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
        raise RuleError(f"a pattern element must be a kind or a mapping, got {short(item)}", path, line)
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
            raise RuleError(f"'id' must be a string, got {short(item['id'])}", path, at("id"))
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
        raise RuleError(f"insert position must be one of {', '.join(POSITIONS)}, got {short(position)}"
                        f"{closest(position, POSITIONS)}", path, value.lines.get("position", line))
    node = value.get("node")
    ids = [s.id for s in pattern if s.id]
    if node is not None and node not in ids:
        raise RuleError(f"insert node {short(node)} is not the id of a pattern element{closest(node, ids)}; "
                        f"ids: {', '.join(ids) or '(none)'}", path, value.lines.get("node", line))
    target = next((s for s in pattern if s.id == node), pattern[-1])
    if position != "after" and not ("add" in target.kinds and target.residual):
        raise RuleError(f"insert position {short(position)} needs a pattern element with kind add and "
                        "residual: true as its node", path, value.lines.get("position", line))
    return Insert(position=position, node=node)


def _filters(value: Any, line: int | None, path: str, se: Any = None) -> Filters:
    """The `filters:` mapping; `se: {min_channels: N}` is accepted as an alias of its min_channels.
    Values are checked by Filters itself (as keyword overrides are); errors get the key's line."""
    if value is None:
        value = LineDict()
    if not isinstance(value, LineDict):
        raise RuleError("'filters' must be a mapping", path, line)
    _check_keys(value, FILTER_KEYS, path, "filters")
    values = {k: v for k, v in value.items() if v is not None}
    lines = dict(value.lines)
    if isinstance(se, LineDict) and se.get("min_channels") is not None:  # both spellings: the larger bound
        alias = _checked(checks.integer, "min_channels", se["min_channels"], line=se.lines.get("min_channels"),
                         path=path)
        values["min_channels"] = max(alias, _checked(checks.integer, "min_channels", values.get("min_channels", 1),
                                                     line=lines.get("min_channels"), path=path))
        lines.setdefault("min_channels", se.lines.get("min_channels"))
    try:
        return Filters(**values)
    except ConfigError as exc:
        raise RuleError(exc.reason, path, lines.get(exc.key, line)) from None


def _se(value: Any, line: int | None, path: str) -> SEConfig:
    if value is None:
        return SEConfig()
    if not isinstance(value, LineDict):
        raise RuleError("'se' must be a mapping of SE settings", path, line)
    _check_keys(value, SE_KEYS, path, "se")
    try:
        return SEConfig(**{k: v for k, v in value.items() if k != "min_channels"})  # a filter: see _filters
    except ConfigError as exc:
        raise RuleError(exc.reason, path, value.lines.get(exc.key, line)) from None


def _checked(check: Any, key: str, value: Any, *args: Any, line: int | None, path: str) -> Any:
    """check(key, value, *args) with its ConfigError turned into a RuleError at `line`."""
    try:
        return check(key, value, *args)
    except ConfigError as exc:
        raise RuleError(exc.reason, path, line) from None


def _bool(value: Any, key: str, line: int, path: str) -> bool:
    return _checked(checks.flag, key, value, line=line, path=path)


def _int(value: Any, key: str, line: int, path: str) -> int:
    return _checked(checks.integer, key, value, line=line, path=path)


def _ints(value: Any, key: str, line: int, path: str) -> tuple[int, ...]:
    return _checked(checks.integers, key, value, line=line, path=path)


def _names(value: Any, key: str, line: int, path: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    items = _checked(checks.strings, key, value, line=line, path=path)
    for item in items:
        if allowed is not None and item not in allowed:
            raise RuleError(f"unknown {key} {short(item)}{closest(item, allowed)}; known: {', '.join(allowed)}",
                            path, line)
    return items


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
            hint = f"; {short(name)} is an fn of kind {', '.join(owners)}" if owners else closest(name, allowed)
            raise RuleError(f"unknown fn {short(name)} for kind {', '.join(kinds)}{hint}; known: {', '.join(allowed)}",
                            path, line)
    return tuple(dict.fromkeys(canonical_fn(name) for name in names))
