"""The rule language: op kinds and their `fn` vocabulary, rule dataclasses, YAML loading, overrides.

Backend-neutral and torch-free: a rule means the same on a torch.fx graph and on an ONNX graph.

Example:
    >>> from seinject.rule import load_rule
    >>> load_rule("after_residual").insert.position
    'after'
"""

from .config import SEConfig
from .loader import builtin_rule_names, load_rule, parse_rule
from .overrides import resolve_rule
from .schema import Filters, Insert, OpSpec, Rule

__all__ = ["SEConfig", "Filters", "Insert", "OpSpec", "Rule", "builtin_rule_names", "load_rule",
           "parse_rule", "resolve_rule"]
