"""What trains after a rewrite: seinject's SE blocks and their parameters, freezing the rest, counts.

seinject's blocks are known by the mark the rewrite leaves on each block it inserts
(seinject.torch.install.is_inserted), not by class or name; the mark is part of the block's
state, so it survives copying and pickling (GraphModules included). SE modules a model
brings itself (timm's SqueezeExcite and SEModule, torchvision's SqueezeExcitation) are not
seinject's and are left alone.

mark_trainable sets `requires_grad` only. BatchNorm layers still update their running
statistics in train mode even when their weights are frozen; `freeze_norm_stats=True`
keeps every frozen norm layer that tracks running statistics in eval mode, also after a
later `model.train()`.

Example:
    >>> import torch.nn as nn, seinject
    >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
    >>> [name for name, _ in se_parameters(net)]
    ['...se.fc1.weight', '...se.fc1.bias', '...se.fc2.weight', '...se.fc2.bias']
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Iterable

from torch import nn

from ..errors import ConfigError, ModelError, SEInjectWarning
from ..rule import checks
from ..rule.patterns import matching_names
from ..suggest import closest, short
from .install import is_inserted


@dataclass(frozen=True)
class TrainableSummary:
    """How many parameters train: str() is peft's line 'trainable params: N || all params: M || trainable%: p'.

    Example:
        >>> print(TrainableSummary(trainable=49, total=497))
        trainable params: 49 || all params: 497 || trainable%: 9.8592
    """

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        """The trainable share of all parameters, in percent."""
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} "
                f"|| trainable%: {self.percent:.4f}")


def se_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every SE block seinject inserted, in the model's module order.

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> [name for name, _ in se_modules(net)]
        ['...se']
    """
    _check_module(model)
    return [(name, module) for name, module in model.named_modules() if is_inserted(module)]


def se_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(qualified name, parameter) of exactly the SE blocks seinject inserted: what to hand an optimizer.

    Example:
        >>> import torch, torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> opt = torch.optim.AdamW([p for _, p in se_parameters(net)], lr=1e-3)
        >>> sum(p.numel() for _, p in se_parameters(net))
        49
    """
    return [(f"{name}.{param_name}", param) for name, block in se_modules(model)
            for param_name, param in block.named_parameters()]


def mark_trainable(model: nn.Module, also: "str | Iterable[str]" = (), *,
                   freeze_norm_stats: bool = False) -> TrainableSummary:
    """Train only the SE blocks (and what `also` names): requires_grad True there, False elsewhere.

    `also`: regexes (peft style), each searched in every parameter's qualified name
    (`fc.weight`) and in the names of the modules that hold it (`fc`, `layer4.0`); a
    regex that matches nothing is a ConfigError. Each call sets every parameter afresh.
    `freeze_norm_stats=True` puts every norm layer that tracks running statistics and has
    no trainable parameter in eval mode and keeps it there through later `model.train()`
    calls; with False (the default) such layers follow the model's mode and, in train
    mode, normalise with batch statistics and update their running statistics.
    Returns the counts; str() gives peft's line.

    Example:
        >>> import torch, torch.nn as nn, seinject
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(),
        ...                     nn.Linear(16 * 4 * 4, 2))
        >>> net = seinject.apply(net, rule="conv_block")
        >>> print(mark_trainable(net, also=[r"^4\\."], freeze_norm_stats=True))   # the SE block and net[4]
        trainable params: 563 || all params: 1,043 || trainable%: 53.9789
        >>> net.train()[1].training
        True
        >>> _ = net(torch.randn(2, 3, 6, 6)); net[1].training     # kept in eval mode when called
        False
    """
    _check_module(model)
    patterns = compile_patterns(also)
    chosen = {id(param) for _, param in se_parameters(model)}
    named = list(model.named_parameters(remove_duplicate=False))
    hits = matched_names(patterns, [name for name, _ in named])
    used = {pattern for pattern, names in hits.items() if names}
    extra = set().union(*hits.values())
    chosen.update(id(param) for name, param in named if name in extra)
    check_patterns_used(patterns, used, [name for name, _ in named], "parameter")
    for _, param in named:
        param.requires_grad_(id(param) in chosen)
    _hold_norm_stats(model, freeze_norm_stats)
    summary = trainable_summary(model)
    if summary.trainable == 0:
        warnings.warn(f"{type(model).__name__} has no SE block inserted by seinject (and `also` names no "
                      "parameter): every parameter is frozen", SEInjectWarning, stacklevel=2)
    return summary


def trainable_summary(model: nn.Module) -> TrainableSummary:
    """Counts of trainable (requires_grad) and all parameters; shared parameters count once.

    Example:
        >>> import torch.nn as nn
        >>> trainable_summary(nn.Linear(3, 2)).trainable
        8
    """
    _check_module(model)
    params = list(model.parameters())
    return TrainableSummary(trainable=sum(p.numel() for p in params if p.requires_grad),
                            total=sum(p.numel() for p in params))


def print_trainable_parameters(model: nn.Module) -> None:
    """Print peft's line for the model as it is now: 'trainable params: N || all params: M || trainable%: p'.

    Example:
        >>> import torch.nn as nn
        >>> print_trainable_parameters(nn.Linear(3, 2))
        trainable params: 8 || all params: 8 || trainable%: 100.0000
    """
    print(trainable_summary(model))


def compile_patterns(also: "str | Iterable[str]") -> list[re.Pattern]:
    """The `also` regexes compiled (one string or several), checked as include/exclude are
    (seinject.rule.checks.regexes); a bad one is a ConfigError naming it.

    Example:
        >>> [p.pattern for p in compile_patterns(r"^fc\\.")]
        ['^fc\\\\.']
    """
    return [re.compile(text) for text in checks.regexes("also", also or ())]


def matched_names(patterns: list[re.Pattern], names: list[str]) -> dict[str, set[str]]:
    """Pattern → the names it is found in, in the dotted name or a module prefix of it (`fc` of
    `fc.weight`); matching is bounded in time (seinject.rule.patterns).

    Example:
        >>> matched_names(compile_patterns([r"layer4\\.0$"]), ["layer4.0.conv1.weight", "fc.bias"])
        {'layer4\\\\.0$': {'layer4.0.conv1.weight'}}
    """
    prefixes = {name: [name.rsplit(".", k)[0] for k in range(name.count(".") + 1)] for name in names}
    texts = sorted({text for options in prefixes.values() for text in options})
    out = {}
    for pattern in patterns:
        found = {text for text, hit in zip(texts, matching_names([pattern.pattern], texts, "also")) if hit}
        out[pattern.pattern] = {name for name in names if not found.isdisjoint(prefixes[name])}
    return out


def check_patterns_used(patterns: list[re.Pattern], used: set[str], names: list[str], what: str) -> None:
    """ConfigError for the first `also` regex not in `used`, with the closest of the model's names.

    Example:
        >>> check_patterns_used(compile_patterns("fcc"), set(), ["fc.weight"], "parameter")
        Traceback (most recent call last):
        ...
        seinject.errors.ConfigError: `also` pattern 'fcc' matches no parameter of the model (did you mean 'fc'?)
    """
    for pattern in patterns:
        if pattern.pattern not in used:
            modules = sorted({name.rsplit(".", 1)[0] for name in names if "." in name})
            raise ConfigError(f"`also` pattern {short(pattern.pattern)} matches no {what} of the model"
                              f"{closest(pattern.pattern, modules + names)}")


def _hold_norm_stats(model: nn.Module, hold: bool) -> None:
    """Keep frozen running-statistics norm layers in eval mode (hold=True), or let every one follow the model."""
    for module in model.modules():
        if not (isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats):
            continue
        frozen = not any(p.requires_grad for p in module.parameters(recurse=False))
        held = _stay_in_eval in module._forward_pre_hooks.values()
        if hold and frozen:
            module.eval()
            if not held:
                module.register_forward_pre_hook(_stay_in_eval)
        elif held:
            for key in [k for k, hook in module._forward_pre_hooks.items() if hook is _stay_in_eval]:
                del module._forward_pre_hooks[key]
            module.train(model.training)


def _stay_in_eval(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: the norm layer runs in eval mode whatever mode the model was put in."""
    module.training = False


def _check_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}")
