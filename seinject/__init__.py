"""seinject: add Squeeze-and-Excitation blocks to trained models by graph rewriting.

The public API; heavy modules (torch.fx, onnx) load only when a function needs them.

Example:
    >>> import seinject
    >>> "after_residual" in seinject.list_rules()
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .rule.config import SEConfig
from .errors import (ConfigError, ModelError, NoSitesError, RuleError, RuleNotFoundError,
                     SEInjectError, SEInjectWarning)
from .rule.loader import builtin_rule_names as list_rules
from .rule.loader import load_rule, parse_rule
from .rule.schema import Rule

if TYPE_CHECKING:  # pragma: no cover
    from .graph.report import ApplyReport, Plan

__version__ = "0.1.0"

__all__ = [
    "apply", "plan", "remove", "report", "load_rule", "parse_rule", "list_rules",
    "Rule", "SEConfig", "SEInjectError", "ConfigError", "RuleError", "RuleNotFoundError",
    "ModelError", "NoSitesError", "SEInjectWarning", "onnx",
]


def plan(model: Any, rule: "str | Rule" = "after_residual", *, example_inputs: Any = None,
         **overrides: Any) -> "Plan":
    """Dry run: where `rule` would put SE blocks in `model`; the model is not changed.

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU())
        >>> [site.name for site in seinject.plan(net, rule="conv_block")]
        ['2']
    """
    from .torch.api import plan as _plan

    return _plan(model, rule, example_inputs=example_inputs, **overrides)


def apply(model: Any, rule: "str | Rule" = "after_residual", *, inplace: bool = False,
          example_inputs: Any = None, strict: bool = False, verbose: bool = False,
          **overrides: Any) -> Any:
    """Insert SE blocks where `rule` matches; returns the model (a rewritten copy unless inplace=True).

    Keyword overrides change the rule's `se:` settings (ratio, divisor, gate, init, act, ...)
    and filters (include, exclude, stages, min_channels, max_channels, first, last, every, ...).

    Example:
        >>> import torch, torch.nn as nn, seinject
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU())
        >>> new = seinject.apply(net, rule="conv_block", ratio=4)
        >>> x = torch.randn(2, 3, 8, 8)
        >>> torch.equal(new.eval()(x), net.eval()(x))
        True
    """
    from .torch.api import apply as _apply

    return _apply(model, rule, inplace=inplace, example_inputs=example_inputs, strict=strict,
                  verbose=verbose, **overrides)


def remove(model: Any, *, inplace: bool = False) -> Any:
    """Take every SE block seinject inserted out again; returns the original model structure.

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU())
        >>> keys = list(net.state_dict())
        >>> list(seinject.remove(seinject.apply(net, rule="conv_block")).state_dict()) == keys
        True
    """
    from .torch.api import remove as _remove

    return _remove(model, inplace=inplace)


def report(model: Any) -> "ApplyReport | None":
    """The ApplyReport of the last `apply` on this model (its plan, the blocks inserted, skipped
    sites and parts left out, parameters), or None.

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> seinject.report(net).added_params
        49
    """
    return getattr(model, "_seinject_report", None)


def __getattr__(name: str) -> Any:
    if name == "onnx":
        import importlib

        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'seinject' has no attribute {name!r}")
