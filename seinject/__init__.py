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
from .errors import (CheckpointError, ConfigError, ModelError, NoSitesError, RuleError, RuleNotFoundError,
                     SEInjectError, SEInjectWarning, UnsafeModelError, UsageError, VerificationError)
from .rule.loader import builtin_rule_names as list_rules
from .rule.loader import load_rule, parse_rule
from .rule.schema import Rule

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from .graph.report import ApplyReport, Plan
    from .torch.excitation import Excitations
    from .torch.fold import FoldReport
    from .torch.training import TrainableSummary

__version__ = "0.1.0"

__all__ = [
    "apply", "plan", "remove", "report", "load_rule", "parse_rule", "list_rules",
    "Rule", "SEConfig", "SEInjectError", "ConfigError", "RuleError", "RuleNotFoundError",
    "ModelError", "NoSitesError", "SEInjectWarning", "UsageError", "UnsafeModelError", "VerificationError", "onnx",
    "se_modules", "se_parameters", "mark_trainable", "print_trainable_parameters",
    "state_dict", "save", "load", "CheckpointError", "excitations", "fold", "register_se_class",
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
          example_inputs: Any = None, strict: bool = False, verbose: bool = False, verify: bool | None = None,
          **overrides: Any) -> Any:
    """Insert SE blocks where `rule` matches; returns the model (a rewritten copy unless inplace=True).

    Keyword overrides change the rule's `se:` settings (ratio, divisor, gate, init, act, ...)
    and filters (include, exclude, stages, min_channels, max_channels, first, last, every, ...).
    verify (default: True when example_inputs are given) runs the model before and after on
    example_inputs and raises VerificationError unless the outputs are exactly equal.
    example_inputs (a tensor or a tuple of the forward's arguments) also let seinject trace the
    call the model gets (its flags), forwards that compute on their input's sizes (Hugging Face's
    TF padding), and number stages by the resolutions the model really has.

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
                  verbose=verbose, verify=verify, **overrides)


def remove(model: Any, *, inplace: bool = False, blocks: "list[str] | None" = None) -> Any:
    """Take out the SE blocks seinject inserted (all, or only those named in `blocks`, qualified
    names as se_modules gives them); returns the model (a copy unless inplace=True).

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU())
        >>> keys = list(net.state_dict())
        >>> list(seinject.remove(seinject.apply(net, rule="conv_block")).state_dict()) == keys
        True
    """
    from .torch.api import remove as _remove

    return _remove(model, inplace=inplace, blocks=blocks)


def register_se_class(*classes: Any) -> None:
    """Count modules of these classes (nn.Module subclasses or class names) as SE blocks a model already
    has: rules skip the sites they scale and never put blocks inside them. Channel attention of the
    form x · gate(f(pool(x))) is recognised by its structure whatever its class is called; this is
    for attention modules of other forms.

    Example:
        >>> import torch.nn as nn, seinject
        >>> class MyAttention(nn.Module):
        ...     def forward(self, x): return x * x.amax(dim=1, keepdim=True).sigmoid()
        >>> seinject.register_se_class(MyAttention)
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), MyAttention())
        >>> [(s.name, s.reason) for s in seinject.plan(net, rule="conv_block").skipped]
        [('1', 'already has SE')]
    """
    from .torch.kinds import register_se_class as _register

    _register(*classes)


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


def se_modules(model: Any) -> list:
    """(qualified name, module) of every SE block seinject inserted (not SE modules the model had).

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> [name for name, _ in seinject.se_modules(net)]
        ['...se']
    """
    from .torch.training import se_modules as _se_modules

    return _se_modules(model)


def se_parameters(model: Any) -> list:
    """(qualified name, parameter) of exactly the SE blocks seinject inserted: what to give an optimizer.

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> [name for name, _ in seinject.se_parameters(net)][:2]
        ['...se.fc1.weight', '...se.fc1.bias']
    """
    from .torch.training import se_parameters as _se_parameters

    return _se_parameters(model)


def mark_trainable(model: Any, also: Any = (), *, freeze_norm_stats: bool = False) -> "TrainableSummary":
    """requires_grad=True on the SE blocks and on parameters whose name a regex in `also` matches, False
    elsewhere; freeze_norm_stats=True keeps frozen BatchNorm layers in eval mode. Returns the counts
    (str(): 'trainable params: N || all params: M || trainable%: p').

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> print(seinject.mark_trainable(net))
        trainable params: 49 || all params: 497 || trainable%: 9.8592
    """
    from .torch.training import mark_trainable as _mark_trainable

    return _mark_trainable(model, also, freeze_norm_stats=freeze_norm_stats)


def print_trainable_parameters(model: Any) -> None:
    """Print 'trainable params: N || all params: M || trainable%: p' for the model as it is now.

    Example:
        >>> import torch.nn as nn, seinject
        >>> seinject.print_trainable_parameters(nn.Linear(3, 2))
        trainable params: 8 || all params: 8 || trainable%: 100.0000
    """
    from .torch.training import print_trainable_parameters as _print

    _print(model)


def state_dict(model: Any, also: Any = ()) -> dict:
    """Only the SE blocks' tensors (and those whose name a regex in `also` matches), by state_dict name.

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> sorted(seinject.state_dict(net))
        ['...se.fc1.bias', '...se.fc1.weight', '...se.fc2.bias', '...se.fc2.weight']
    """
    from .torch.checkpoint import state_dict as _state_dict

    return _state_dict(model, also)


def save(model: Any, path: Any, *, also: Any = ()) -> "Path":
    """Write the SE weights and how to rebuild them (rule, overrides, sites) to a safetensors file, atomically.

    Example:
        >>> import tempfile, torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> seinject.save(net, tempfile.mkdtemp() + "/se.safetensors").suffix
        '.safetensors'
    """
    from .torch.checkpoint import save as _save

    return _save(model, path, also=also)


def load(model: Any, path: Any, *, strict: bool = True, inplace: bool = False, example_inputs: Any = None) -> Any:
    """The model with a checkpoint's SE blocks and weights (a rewritten copy unless inplace=True); a
    plain model gets the stored rule first. A checkpoint that does not fit raises CheckpointError.

    Example:
        >>> import tempfile, torch, torch.nn as nn, seinject
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())
        >>> path = seinject.save(seinject.apply(net, rule="conv_block"), tempfile.mkdtemp() + "/se.safetensors")
        >>> [name for name, _ in seinject.se_modules(seinject.load(net, path))]
        ['...se']
    """
    from .torch.checkpoint import load as _load

    return _load(model, path, strict=strict, inplace=inplace, example_inputs=example_inputs)


def excitations(model: Any, data: Any, labels: Any = None, max_batches: "int | None" = None) -> "Excitations":
    """Run the model on data (eval, no grad) and record every seinject block's gate values: the SENet
    paper's excitation analysis. The result gives per_class(), specificity(), saturation(), mean(),
    table() and plot(path) (matplotlib), each keyed by block name in depth order.

    data: one input tensor (with labels= a sequence or tensor), or batches as a DataLoader yields
    them (a tensor, or (inputs, labels, ...)). max_batches stops early.

    Example:
        >>> import torch, torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), rule="conv_block")
        >>> ex = seinject.excitations(net, torch.randn(8, 3, 6, 6), labels=[0, 1] * 4)
        >>> ex.classes, ex.specificity(), ex.saturation()   # at identity: gates 0.5 for everyone
        ([0, 1], {'1.se': 0.0}, {'1.se': 1.0})
    """
    from .torch.excitation import record

    return record(model, data, labels=labels, max_batches=max_batches)


def fold(model: Any, blocks: "list[str] | None" = None, data: Any = None, labels: Any = None, *,
         min_saturation: float = 0.95, max_batches: "int | None" = None,
         inplace: bool = False) -> "tuple[Any, FoldReport]":
    """Replace SE blocks whose gates hardly depend on the input by their mean channel scale on
    `data`, multiplied into the next conv (or the previous conv/norm) where one takes it, else a
    fixed ChannelScale; returns (model, FoldReport) with max |Δ| of the outputs on the data (and
    top-1 accuracy before and after when labels are known). blocks: names (se_modules); default:
    those with saturation >= min_saturation.

    Example:
        >>> import torch, torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1)), rule="conv_block")
        >>> folded, report = seinject.fold(net, data=torch.randn(4, 3, 8, 8))
        >>> report.folded[0].into, report.max_abs_diff
        ("next conv '2'", 0.0)
    """
    from .torch.fold import fold as _fold

    return _fold(model, blocks, data, labels, min_saturation=min_saturation, max_batches=max_batches,
                 inplace=inplace)


def __getattr__(name: str) -> Any:
    if name == "onnx":
        import importlib

        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'seinject' has no attribute {name!r}")
