"""Fold SE blocks whose gates hardly depend on the input into fixed channel scales (SENet §6.4:
the last blocks saturate and can go at little cost).

A folded block's scale is gain × its mean gate on the data. It is multiplied into the next
conv where every reader of the block's output is one (the conv's input channels), else into
the previous conv or norm when the block is its only reader (its output channels, bias
included), else the block becomes a ChannelScale. All three are exact for the mean scale:
what folding changes is only that the gate no longer follows the input, and the report
measures that on the data.

Example:
    >>> import torch, torch.nn as nn, seinject
    >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()), rule="conv_block")
    >>> folded, report = fold(net, blocks=["2.se"], data=torch.randn(4, 3, 8, 8))
    >>> [(f.block, f.into) for f in report.folded], report.max_abs_diff
    ([('2.se', 'fixed scale')], 0.0)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError
from ..graph.table import format_table
from ..rule import checks
from .block import scale_channels
from .excitation import batches, record
from .api import forget_blocks
from .install import ATTACHED, restore_blocks
from .training import se_modules
from .verify import compare

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)

# gate types whose output is x times a per-channel gate: their mean gate is a channel scale
FOLDABLE = ("se", "ese", "eca")


class ChannelScale(nn.Module):
    """x times a fixed per-channel scale over dim 1: what a folded SE block becomes when no
    neighbouring conv or norm can take its scale.

    Example:
        >>> ChannelScale(torch.tensor([2.0, 3.0]))(torch.ones(1, 2, 2))[0, :, 0]
        tensor([2., 3.])
    """

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scale_channels(x, self.scale)

    def extra_repr(self) -> str:
        return f"channels={self.scale.numel()}"


@dataclass
class Folded:
    """One folded block: how saturated its gates were, its scale's range, where the scale went."""

    block: str
    saturation: float
    scale_min: float
    scale_max: float
    into: str


@dataclass
class FoldReport:
    """What fold did and what it cost on the data: max |Δ| of the outputs and, with labels and
    class scores as output, top-1 accuracy before and after."""

    folded: list[Folded] = field(default_factory=list)
    max_abs_diff: float = 0.0
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    samples: int = 0

    def __str__(self) -> str:
        rows = [(f.block, f"{f.saturation:.3f}", f"{f.scale_min:.3f}..{f.scale_max:.3f}", f.into)
                for f in self.folded]
        lines = [f"folded {len(self.folded)} SE block(s)",
                 format_table(("block", "saturation", "scale", "into"), rows),
                 f"on {self.samples} samples: max |new - old| = {self.max_abs_diff:.3g}"]
        if self.accuracy_before is not None:
            lines.append(f"top-1 accuracy {self.accuracy_before:.4f} -> {self.accuracy_after:.4f}")
        return "\n".join(lines)


def fold(model: nn.Module, blocks: "list[str] | None" = None, data: Any = None, labels: Any = None, *,
         min_saturation: float = 0.95, max_batches: int | None = None,
         inplace: bool = False) -> tuple[nn.Module, FoldReport]:
    """Replace SE blocks by their mean channel scale on `data`; returns (model, FoldReport).

    blocks: qualified names (seinject.se_modules); default: every block whose saturation on the
    data (seinject.excitations) is at least min_saturation. data and labels as for excitations.

    Example:
        >>> import torch, torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)), "conv_block")
        >>> folded, report = fold(net, data=torch.randn(4, 3, 8, 8))   # at identity every block is saturated
        >>> report.folded[0].into, seinject.se_modules(folded)
        ("next conv '2'", [])
    """
    if data is None:
        raise ConfigError("fold needs data= to measure each block's mean scale and what folding costs", key="data")
    checks.number("min_saturation", min_saturation, 0.0, 1.0)
    excitation = record(model, data, labels, max_batches)
    saturation, means = excitation.saturation(), excitation.mean()
    foldable = {name for name, block in se_modules(model) if getattr(block, "block_type", "se") in FOLDABLE}
    names = _chosen(model, blocks, {n: v for n, v in saturation.items() if n in foldable}, min_saturation)
    before = _outputs(model, data, labels, max_batches)
    target = model if inplace else copy.deepcopy(model)
    report = FoldReport()
    found = dict(se_modules(target))
    for name in names:
        block = found[name]
        scale = (block.gain * means[name]).to(next(block.parameters()).dtype)
        into = _fold_one(target, name, scale)
        report.folded.append(Folded(name, saturation[name], float(scale.min()), float(scale.max()), into))
    forget_blocks(target, names)
    after = _outputs(target, data, labels, max_batches)
    report.samples = before.samples
    report.max_abs_diff = compare(before.tensors, after.tensors, exact=False, where=type(model).__name__)
    report.accuracy_before, report.accuracy_after = before.accuracy, after.accuracy
    return target, report


def _chosen(model: nn.Module, blocks: Any, saturation: dict[str, float], lowest: float) -> list[str]:
    if blocks is None:
        return [name for name, value in saturation.items() if value >= lowest]
    names = list(checks.strings("blocks", blocks))
    for name in names:
        kind = getattr(_find(model, name), "block_type", "se")
        if kind not in FOLDABLE:
            raise ConfigError(f"block {name!r} is a {kind} block: only {', '.join(FOLDABLE)} scale channels "
                              "alone, so only they fold into a fixed channel scale", key="blocks")
        if name not in saturation:
            raise ConfigError(f"no SE block {name!r} ran in {type(model).__name__}; blocks: "
                              f"{', '.join(list(saturation)[:6])}", key="blocks")
    return names


def _find(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _fold_one(model: nn.Module, name: str, scale: torch.Tensor) -> str:
    """Put one block's scale into a neighbour (or a ChannelScale); returns where it went."""
    owner_name, _, attr = name.rpartition(".")
    owner = model.get_submodule(owner_name)
    readers, writer = _neighbours(model, owner, owner_name, attr)
    with torch.no_grad():
        if readers and all(isinstance(r, _CONVS) and _called_once(model, r) for _, r in readers):
            for _, conv in readers:
                _scale_conv_inputs(conv, scale)
            restore_blocks(model, {name})
            return "next conv " + ", ".join(repr(path) for path, _ in readers)
        if writer is not None and _takes_output_scale(writer[1]) and _called_once(model, writer[1]):
            _scale_outputs(writer[1], scale)
            restore_blocks(model, {name})
            kind = "conv" if isinstance(writer[1], _CONVS) else "norm"
            return f"previous {kind} {writer[0]!r}"
    owner._modules[attr] = ChannelScale(scale)
    return "fixed scale"


def _neighbours(model: nn.Module, owner: nn.Module, owner_name: str, attr: str):
    """([(path, module)] reading the block's output, (path, module) writing its input or None);
    ([], None) when unknown. Neighbours are found in the owner's forward, or, for a block attached
    to a leaf child of a plain nn.Sequential, among the child's siblings."""
    prefix = f"{owner_name}." if owner_name else ""
    attached = owner.__dict__.get(ATTACHED)
    if attached is not None:
        return _siblings(model, owner, owner_name, before=attr in attached[0])
    graphs = _graphs(owner)
    answers = {_around(graph, prefix, attr) for graph in graphs} if graphs else set()
    if len(answers) != 1:  # untraceable, or the train and eval graphs disagree
        return [], None
    readers, writer = answers.pop()
    lookup = lambda path: (path, owner.get_submodule(path[len(prefix):]))  # noqa: E731
    return [lookup(p) for p in readers], (lookup(writer) if writer else None)


def _siblings(model: nn.Module, child: nn.Module, child_name: str, before: bool):
    """A Sequential runs its children in order: the block on a child's output is read by the next
    child, the block on its input written by the previous one."""
    parent_name, _, key = child_name.rpartition(".")
    parent = model.get_submodule(parent_name)
    keys = list(parent._modules)  # a plain Sequential (its forward was not rewritten)
    index = keys.index(key)
    path = lambda k: f"{parent_name}.{k}" if parent_name else k  # noqa: E731
    if before:
        previous = (path(keys[index - 1]), parent._modules[keys[index - 1]]) if index > 0 else None
        return [(child_name, child)], previous
    following = [(path(keys[index + 1]), parent._modules[keys[index + 1]])] if index + 1 < len(keys) else []
    return following, (child_name, child)


def _graphs(owner: nn.Module) -> list[fx.Graph]:
    """The owner's forward as fx graphs (one per training mode it was rewritten for), children as leaves."""
    if isinstance(owner, fx.GraphModule):
        return [owner.graph]
    recipe = type(owner).__dict__.get("_seinject_recipe")
    modes = [owner.training] if recipe is None or len(recipe.sources) < 2 else [True, False]
    graphs, was = [], owner.training
    try:
        for mode in modes:
            owner.training = mode
            graphs.append(_LeafTracer().trace(owner))
    except Exception:  # any tracing failure: the block becomes a ChannelScale
        return []
    finally:
        owner.training = was
    return graphs


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return True


def _around(graph: fx.Graph, prefix: str, attr: str) -> tuple[tuple[str, ...], str | None]:
    node = next((n for n in graph.nodes if n.op == "call_module" and n.target == attr), None)
    if node is None:
        return (), None
    users = list(node.users)
    readers = tuple(prefix + u.target for u in users) if all(u.op == "call_module" for u in users) else ()
    source = node.args[0] if node.args else None
    writer = None
    if isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1:
        writer = prefix + source.target
    return readers, writer


def _called_once(model: nn.Module, module: nn.Module) -> bool:
    """Registered once in the model (a shared conv or norm would scale its other uses too)."""
    return sum(m is module for m in model.modules(remove_duplicate=False)) == 1


def _takes_output_scale(module: nn.Module) -> bool:
    if isinstance(module, _CONVS):
        return True
    return isinstance(module, _NORMS) and getattr(module, "affine", False) and module.weight is not None


def _scale_conv_inputs(conv: nn.Module, scale: torch.Tensor) -> None:
    """conv(x · s) = conv'(x): input channel c of the weight times s_c (groups respected)."""
    groups, (out_channels, per_group) = conv.groups, conv.weight.shape[:2]
    view = conv.weight.view(groups, out_channels // groups, per_group, *conv.weight.shape[2:])
    view.mul_(scale.reshape(groups, 1, per_group, *([1] * (conv.weight.dim() - 2))).to(conv.weight.dtype))


def _scale_outputs(module: nn.Module, scale: torch.Tensor) -> None:
    """module(x) · s = module'(x): output channel c of weight and bias times s_c."""
    shape = (-1,) + (1,) * (module.weight.dim() - 1)
    module.weight.mul_(scale.reshape(shape).to(module.weight.dtype))
    if module.bias is not None:
        module.bias.mul_(scale.to(module.bias.dtype))


@dataclass
class _Run:
    tensors: list[torch.Tensor]
    samples: int
    accuracy: float | None


def _outputs(model: nn.Module, data: Any, labels: Any, max_batches: int | None) -> _Run:
    """Every output tensor on the data (eval, no grad), and top-1 accuracy when every batch has
    integer labels and the output is one N × classes tensor."""
    tensors, right, seen, scored = [], 0, 0, True
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            for count, (inputs, batch_labels) in enumerate(batches(data, labels)):
                if max_batches is not None and count >= max_batches:
                    break
                out = model(*inputs)
                tensors += [t.detach().clone() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
                seen += len(batch_labels)
                scored = scored and isinstance(out, torch.Tensor) and out.dim() == 2 and all(
                    isinstance(y, int) and not isinstance(y, bool) for y in batch_labels)
                if scored:
                    right += int((out.argmax(1) == torch.tensor(batch_labels)).sum())
    finally:
        for module, training in modes.items():
            module.training = training
    return _Run(tensors, seen, right / seen if scored and seen else None)
