"""plan / apply / remove for torch nn.Modules: load the rule, trace, match, splice, report.

Example:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())
    >>> len(plan(net, "conv_block"))
    1
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import fields, replace
from typing import Any

from torch import nn

from ..blocks.se import SqueezeExcite
from ..config import SEConfig
from ..errors import ConfigError, ModelError, NoSitesError, SEInjectWarning
from ..loader import load_rule
from ..matcher import match
from ..reporting import ApplyReport, Plan
from ..rule import Filters, Rule
from ..suggest import closest
from .fx_splice import restore, splice
from .fx_trace import trace_model

log = logging.getLogger("seinject")

SE_FIELDS = tuple(f.name for f in fields(SEConfig))
FILTER_FIELDS = tuple(f.name for f in fields(Filters) if f.name != "min_channels")


def resolve_rule(rule: "str | Rule", overrides: dict[str, Any]) -> Rule:
    """The rule with keyword overrides applied: SE settings to `se`, the rest to `filters`.

    Example:
        >>> r = resolve_rule("after_residual", {"ratio": 8, "include": "layer3"})
        >>> r.se.ratio, r.filters.include
        (8, ('layer3',))
    """
    loaded = load_rule(rule)
    se_changes, filter_changes = {}, {}
    for key, value in overrides.items():
        if key in SE_FIELDS:
            se_changes[key] = value
        elif key in FILTER_FIELDS:
            filter_changes[key] = _filter_value(key, value)
        else:
            raise ConfigError(f"unknown option {key!r}{closest(key, SE_FIELDS + FILTER_FIELDS)}; "
                              f"SE settings: {', '.join(SE_FIELDS)}; filters: {', '.join(FILTER_FIELDS)}")
    try:
        filters = replace(loaded.filters, **filter_changes)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    return replace(loaded, se=loaded.se.with_overrides(**se_changes), filters=filters)


def _filter_value(key: str, value: Any) -> Any:
    if key in ("include", "exclude"):
        return (value,) if isinstance(value, str) else tuple(value or ())
    if key == "stages" and value is not None:
        return (value,) if isinstance(value, int) else tuple(value)
    if key == "outside_residual":
        if not isinstance(value, bool):
            raise ConfigError(f"option 'outside_residual' must be True or False, got {value!r}")
        return value
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"option {key!r} must be a non-negative integer, got {value!r}")
    return value


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}"
                         " (for ONNX models use seinject.onnx.apply)")


def plan(model: nn.Module, rule: "str | Rule" = "after_residual", *, example_inputs: Any = None,
         **overrides: Any) -> Plan:
    """Where the rule would insert SE blocks; the model is not changed.

    Example:
        >>> import torch.nn as nn
        >>> print(plan(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), "conv_block").table())
        #  site     stage  channels  hidden  params
        -  -------  -----  --------  ------  ------
        0  after 1      1        16       1      49
    """
    _check_model(model)
    resolved = resolve_rule(rule, overrides)
    traced = trace_model(model, example_inputs)
    found = match(resolved, traced.view)
    return Plan(resolved.name, found.sites, found.skipped, traced.left_out, found.matched,
                _count(model))


def apply(model: nn.Module, rule: "str | Rule" = "after_residual", *, inplace: bool = False,
          example_inputs: Any = None, strict: bool = False, verbose: bool = False,
          **overrides: Any) -> nn.Module:
    """Insert SE blocks where the rule matches; see seinject.apply.

    Example:
        >>> import torch.nn as nn
        >>> net = apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), "conv_block")
        >>> type(net[1]).__name__, hasattr(net, "se")
        ('ReLU', True)
    """
    _check_model(model)
    resolved = resolve_rule(rule, overrides)
    target = model if inplace else copy.deepcopy(model)
    traced = trace_model(target, example_inputs)
    found = match(resolved, traced.view)
    params_before = _count(target)
    done = splice(traced, found.sites, resolved.se)
    report = ApplyReport(resolved.name, found.sites, found.skipped + done.skipped, traced.left_out,
                         found.matched, _count(target), inserted=done.inserted)
    target.__dict__["_seinject_report"] = report
    if not done.inserted:
        message = (f"rule {resolved.name!r} inserted no SE block into {type(model).__name__}: "
                   + ("; ".join(report.summary_lines()) or "no match"))
        if strict:
            raise NoSitesError(message)
        warnings.warn(message, SEInjectWarning, stacklevel=3)
    for part in traced.left_out:
        log.info("left out %s: %s", part.name, part.reason)
    log.info("%s", report.trainable_line())
    if verbose:
        print(report)
    assert _count(target) == params_before + report.added_params
    return target


def remove(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """The model without the SE blocks seinject inserted (a copy unless inplace=True).

    Warns when a block had moved away from identity (training changed it): then the
    model without it computes something different from the model with it.

    Example:
        >>> import torch.nn as nn
        >>> net = apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), "conv_block")
        >>> hasattr(remove(net), "se")
        False
    """
    _check_model(model)
    target = model if inplace else copy.deepcopy(model)
    trained = [name for name, m in target.named_modules()
               if isinstance(m, SqueezeExcite) and not m.is_identity()]
    if trained:
        warnings.warn(f"{len(trained)} SE block(s) are no longer at identity (e.g. {trained[0]}); "
                      "removing them changes the model's outputs", SEInjectWarning, stacklevel=3)
    restore(target)
    target.__dict__.pop("_seinject_report", None)
    return target


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
