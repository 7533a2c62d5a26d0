"""Rules back to data: rule_to_dict and dump_rule write what a rule file says; rule_from_dict reads it back.

A checkpoint stores the rule its blocks were made with, so loading it needs no rule file.
The stored form is the YAML a rule file holds, read back by the same safe loader with the
same checks (seinject.rule.loader.parse_rule). Every `se:` setting and every filter is
written out, so a later change of a default does not change what a stored rule means.

Example:
    >>> from seinject.rule.loader import load_rule
    >>> rule = load_rule("residual_branch")
    >>> same_rule(rule_from_dict(rule_to_dict(rule)), rule)
    True
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import yaml

from .config import SEConfig
from .loader import parse_rule
from .schema import Filters, OpSpec, Rule

_SPEC_FIELDS = tuple(f.name for f in fields(OpSpec) if f.name not in ("kinds", "line", "optional"))


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The rule as the mapping a rule file holds (plain lists, str, int, float, bool and None).

    Example:
        >>> from seinject.rule.loader import load_rule
        >>> data = rule_to_dict(load_rule("after_residual"))
        >>> data["pattern"][0], data["se"]["ratio"]
        ({'kind': 'add', 'id': 'join', 'residual': True}, 16)
    """
    data: dict[str, Any] = {"name": rule.name}
    if rule.description:
        data["description"] = rule.description
    data["pattern"] = [_spec_to_dict(spec) for spec in rule.pattern]
    data["insert"] = {"position": rule.insert.position}
    if rule.insert.node is not None:
        data["insert"]["node"] = rule.insert.node
    data["filters"] = {f.name: _plain(getattr(rule.filters, f.name)) for f in fields(Filters)}
    data["se"] = {f.name: getattr(rule.se, f.name) for f in fields(SEConfig)}
    return data


def dump_rule(rule: Rule) -> str:
    """The rule as YAML text that load_rule / parse_rule read back to the same rule.

    Example:
        >>> from seinject.rule.loader import load_rule
        >>> print(dump_rule(load_rule("conv_block")).splitlines()[0])
        name: conv_block
    """
    return yaml.safe_dump(rule_to_dict(rule), sort_keys=False, allow_unicode=True)


def rule_from_dict(data: dict[str, Any], path: str = "<rule data>") -> Rule:
    """A Rule from the mapping rule_to_dict gives, checked like a rule file (RuleError citing `path`).

    Example:
        >>> rule_from_dict({"name": "x", "pattern": [{"kind": "concat"}]}).pattern[0].kinds
        ('concat',)
    """
    return parse_rule(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), path)


def same_rule(a: Rule, b: Rule) -> bool:
    """Whether two rules mean the same, ignoring where they were read from (file and lines).

    Example:
        >>> from seinject.rule.loader import load_rule
        >>> same_rule(load_rule("after_residual"), load_rule("residual_branch"))
        False
    """
    return _without_origin(a) == _without_origin(b)


def _without_origin(rule: Rule) -> Rule:
    return replace(rule, source=None, pattern=tuple(replace(spec, line=None) for spec in rule.pattern))


def _spec_to_dict(spec: OpSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": spec.kinds[0] if len(spec.kinds) == 1 else list(spec.kinds)}
    if spec.optional:
        out["optional"] = True
    for name in _SPEC_FIELDS:
        value = getattr(spec, name)
        if value is not None:
            out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """Tuples as lists: the safe YAML dumper writes only plain types."""
    return list(value) if isinstance(value, tuple) else value
