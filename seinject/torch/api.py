"""plan / apply / remove for torch nn.Modules: load the rule, trace, match, splice, report.

Example:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())
    >>> len(plan(net, "conv_block"))
    1
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import warnings
from dataclasses import replace
from typing import Any

from torch import nn

from .gates.base import Gate
from ..errors import ConfigError, NoSitesError, SEInjectError, SEInjectWarning, UsageError, VerificationError
from ..graph.matcher import MatchResult, match
from ..rule.loader import load_rule
from ..rule.overrides import checked_overrides, resolve_rule
from ..graph.report import ApplyReport, Plan
from ..rule.schema import Rule
from ..rule import checks
from ..suggest import clip, closest, short
from .install import keep_across_copies, restore, restore_blocks
from .training import se_modules
from .splice import splice
from .verify import compare, failure_cause, outputs
from .view import TorchGraph, build_view
from .wrappers import check_restorable, check_rewritable, compiled_inner

log = logging.getLogger("seinject")
REPORT = "_seinject_report"  # the model attribute seinject.report reads



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
    model = compiled_inner(model) or model  # torch.compile's wrapper: plan the model it wraps
    check_rewritable(model)
    resolved = resolve_rule(rule, overrides)
    with _gc_paused():
        traced = build_view(model, example_inputs)
        found = match(resolved, traced.view)
    return _plan_of(resolved, traced, found)


def apply(model: nn.Module, rule: "str | Rule" = "after_residual", *, inplace: bool = False,
          example_inputs: Any = None, strict: bool = False, verbose: bool = False, verify: bool | None = None,
          **overrides: Any) -> nn.Module:
    """Insert SE blocks where the rule matches; see seinject.apply.

    verify (default: when example_inputs are given) runs the model before and after the rewrite
    on example_inputs and raises VerificationError unless outputs are exactly equal (init="random":
    only that it runs); with inplace=True the model is restored first.

    Example:
        >>> import torch.nn as nn
        >>> net = apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), "conv_block")
        >>> type(net[1]).__name__, [name for name, _ in net.named_modules() if name.endswith("se")]
        ('ReLU', ['1.se'])
    """
    inner = compiled_inner(model)
    if inner is not None:  # torch.compile's wrapper: rewrite the model it wraps
        new = apply(inner, rule, inplace=inplace, example_inputs=example_inputs, strict=strict,
                    verbose=verbose, verify=verify, **overrides)
        return model if inplace else new
    check_rewritable(model)
    spec = load_rule(rule)
    resolved = resolve_rule(spec, overrides)
    verify = _check_verify(verify, example_inputs)
    before = outputs(model, example_inputs) if verify else None
    with _gc_paused():
        target = model if inplace else copy.deepcopy(model)
        report = _rewrite(target, resolved, example_inputs)
        report.rule_spec, report.overrides = spec, checked_overrides(resolved, overrides)  # what save stores
        keep_across_copies(target, REPORT, report)
    if before is not None and report.inserted:
        _verify(target, before, example_inputs, report, inplace)
    if not report.inserted:
        message = (f"rule {resolved.name!r} inserted no SE block into {type(model).__name__}: "
                   + ("; ".join(report.summary_lines(grouped=True)) or "no match"))
        if strict:
            raise NoSitesError(message)
        warnings.warn(message, SEInjectWarning, stacklevel=3)
    for part in report.left_out:
        log.info("left out %s: %s", part.name, part.reason)
    log.info("%s", report.trainable_line())
    if verbose:
        print(report)
    return target


def _check_verify(verify: bool | None, example_inputs: Any) -> bool:
    """verify=None means: verify when there are inputs to run on."""
    if verify is None:
        return example_inputs is not None
    if not isinstance(verify, bool):
        raise ConfigError(f"verify must be True, False or None, got {short(verify)}", key="verify")
    if verify and example_inputs is None:
        raise UsageError("verify=True runs the model before and after the rewrite: give example_inputs= "
                         "(a tensor or a tuple of the forward's arguments)")
    return verify


def _verify(target: nn.Module, before: list, example_inputs: Any, report: ApplyReport, inplace: bool) -> None:
    """Compare the rewritten model's outputs with `before`; on failure an in-place model is restored."""
    identity = report.init == "identity"
    try:
        try:
            after = outputs(target, example_inputs)
        except SEInjectError:
            raise
        except Exception as exc:  # the rewritten forward does not run: never hand that model back
            cause = failure_cause(target, example_inputs, se_modules(target))
            raise VerificationError(f"{type(target).__name__}: the rewritten model fails on example_inputs "
                                    f"({type(exc).__name__}: {clip(str(exc))}); {cause}") from exc
        report.max_abs_diff = compare(before, after, exact=identity, where=type(target).__name__)
    except BaseException:
        if inplace:
            restore(target)
            keep_across_copies(target, REPORT, None)
        raise
    report.verified = True
    report.verify_note = "outputs on example_inputs" + ("" if identity else "; init=random: they differ by design")


def _rewrite(target: nn.Module, resolved: Rule, example_inputs: Any) -> ApplyReport:
    """Trace, match and splice in place. The trace and view die on return, before the
    collector resumes, so it never walks them."""
    traced = build_view(target, example_inputs)
    found = match(resolved, traced.view)
    done = splice(traced, found.sites, resolved.se)
    return ApplyReport(plan=_plan_of(resolved, traced, found), inserted=done.inserted,
                       splice_skipped=done.skipped, init=resolved.se.init)


def _plan_of(resolved: Rule, traced: TorchGraph, found: MatchResult) -> Plan:
    """The Plan of a match on a traced model (its parts left out and parameter count); with
    example_inputs the sites whose map shape was recorded carry their MACs."""
    sites = [replace(s, macs=_macs(traced, s, resolved)) for s in found.sites]
    return Plan(rule=resolved.name, sites=sites, skipped=found.skipped, left_out=traced.left_out,
                matched=found.matched, model_params=traced.param_count,
                counts_macs=any(s.macs is not None for s in sites))


def _macs(traced: TorchGraph, site, resolved: Rule) -> int | None:
    shape = traced.view.node(site.node).shape if site.node in traced.view else None
    if not shape or len(shape) < 3 or not all(isinstance(d, int) for d in shape[2:]):
        return None
    return resolved.se.added_macs(site.channels, tuple(shape[2:]))


def remove(model: nn.Module, *, inplace: bool = False, blocks: "list[str] | None" = None) -> nn.Module:
    """The model without the SE blocks seinject inserted (a copy unless inplace=True); with
    `blocks` (qualified names, as seinject.se_modules gives them) only those go.

    Warns when a block had moved away from identity (training changed it): then the
    model without it computes something different from the model with it.

    Example:
        >>> import torch.nn as nn
        >>> net = apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), "conv_block")
        >>> hasattr(remove(net), "se")
        False
    """
    check_restorable(model)
    chosen = None if blocks is None else _block_names(model, blocks)
    target = model if inplace else copy.deepcopy(model)
    trained = [name for name, m in se_modules(target)
               if (chosen is None or name in chosen) and isinstance(m, Gate) and not m.is_identity()]
    if trained:
        warnings.warn(f"{len(trained)} SE block(s) are no longer at identity (e.g. {trained[0]}); "
                      "removing them changes the model's outputs", SEInjectWarning, stacklevel=3)
    if chosen is None:
        restore(target)
        keep_across_copies(target, REPORT, None)
        return target
    restore_blocks(target, chosen)
    forget_blocks(target, chosen)
    return target


def forget_blocks(model: nn.Module, names: "set[str] | list[str]") -> None:
    """The model's apply report no longer lists these blocks as inserted (removed or folded ones);
    with none left, the model has no report.

    Example:
        >>> import torch.nn as nn
        >>> net = apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), "conv_block")
        >>> forget_blocks(net, ["1.se"]); getattr(net, REPORT, None) is None
        True
    """
    report = getattr(model, REPORT, None)
    if report is not None:
        kept = [block for block in report.inserted if block.module not in set(names)]
        keep_across_copies(model, REPORT, replace(report, inserted=kept) if kept else None)


def _block_names(model: nn.Module, blocks: Any) -> set[str]:
    """The names in `blocks`, each checked to be a block seinject inserted into `model`."""
    names = checks.strings("blocks", blocks)
    known = [name for name, _ in se_modules(model)]
    for name in names:
        if name not in known:
            raise ConfigError(f"no SE block {short(name)} inserted by seinject in {type(model).__name__}"
                              f"{closest(name, known)}; blocks: {', '.join(known[:6])}"
                              f"{' ...' if len(known) > 6 else ''}", key="blocks")
    return set(names)


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while a rewrite allocates many small objects.

    Its full collections scan every live object (the whole model included), which made
    rewrite time grow faster than the model; cycles are collected once it is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
