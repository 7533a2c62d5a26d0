"""Save and load only the SE weights, with what it takes to rebuild the blocks: state_dict, save, load.

`save` writes the SE blocks' tensors and the rule, overrides and sites that made them to a
safetensors file (format: seinject.torch.checkpoint_file). `load` applies that rule to a
plain model (or checks the blocks a model already carries), then copies the weights in:
the result computes exactly what the saved model computed, given the same base weights.
Like `apply`, `load` returns a rewritten copy unless inplace=True.

Example:
    >>> import tempfile, torch, torch.nn as nn, seinject
    >>> def make():
    ...     torch.manual_seed(0)
    ...     return nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())
    >>> net = seinject.apply(make(), rule="conv_block", ratio=4)
    >>> path = save(net, tempfile.mkdtemp() + "/se.safetensors")
    >>> again = load(make(), path)
    >>> x = torch.randn(1, 3, 8, 8)
    >>> torch.equal(again(x), net(x)), sorted(state_dict(again)) == sorted(state_dict(net))
    (True, True)
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..errors import CheckpointError, ModelError, SEInjectWarning
from .gates import build_gate
from .checkpoint_file import CheckpointHeader, header_metadata, read_header, write_atomically
from .api import REPORT
from .install import keep_across_copies, restore
from .training import check_patterns_used, compile_patterns, matched_names, se_modules
from .wrappers import compiled_inner



class CheckpointWarning(SEInjectWarning):
    """load(strict=False) left parts of a checkpoint out; `mismatches` lists them, one line each."""

    def __init__(self, message: str, mismatches: list[str]):
        super().__init__(message)
        self.mismatches = mismatches


def state_dict(model: nn.Module, also: "str | Iterable[str]" = ()) -> dict[str, torch.Tensor]:
    """The tensors of the SE blocks seinject inserted (parameters and buffers) under their state_dict
    names, plus those of parameters and buffers whose name `also` matches (regexes, as in mark_trainable).

    Example:
        >>> import torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> sorted(state_dict(net, also=r"^0\\.bias"))
        ['0.bias', '...se.fc1.bias', '...se.fc1.weight', '...se.fc2.bias', '...se.fc2.weight']
    """
    inner = _unwrap(model)
    patterns = compile_patterns(also)
    tensors = _selected(inner, patterns)
    hits = matched_names(patterns, list(tensors))
    check_patterns_used(patterns, {p for p, names in hits.items() if names}, list(inner.state_dict()),
                        "parameter or buffer")
    return tensors


def save(model: nn.Module, path: "str | os.PathLike", *, also: "str | Iterable[str]" = ()) -> Path:
    """Write the SE blocks' weights and how to rebuild them (rule, overrides, sites) to a safetensors file.

    `also`: regexes naming more tensors to keep (a retrained head: `also=[r"^fc\\."]`).
    The write is atomic: a failure leaves no file behind (and an existing file as it was).
    The blocks must come from one `apply` (the one seinject.report(model) describes).
    Returns the path written.

    Example:
        >>> import tempfile, torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU()), rule="conv_block")
        >>> save(net, tempfile.mkdtemp() + "/se.safetensors").name
        'se.safetensors'
    """
    from .. import __version__

    inner = _unwrap(model)
    destination = Path(path)
    report = _apply_record(inner, str(destination))
    tensors = state_dict(inner, also)
    metadata = header_metadata(report.rule_spec, report.overrides, [b.to_dict() for b in report.inserted],
                               [p.pattern for p in compile_patterns(also)], type(inner).__qualname__, __version__)
    write_atomically(destination, safetensors_bytes(_storable(tensors), metadata))
    return destination


def load(model: nn.Module, path: "str | os.PathLike", *, strict: bool = True, inplace: bool = False,
         example_inputs: Any = None) -> nn.Module:
    """The model with the checkpoint's SE blocks and weights: a rewritten copy unless inplace=True.

    A plain model gets the checkpoint's rule with its overrides applied first; a model that
    already carries seinject blocks is checked against the checkpoint. strict=True: any
    mismatch (missing or extra block, other shape or block settings, a tensor without a place)
    is a CheckpointError naming the first one, and the model is left as it was.
    strict=False: loads every block whose tensors all fit (and each fitting `also` tensor),
    leaves the rest as they are (a block just inserted: at identity), and warns once with a
    CheckpointWarning whose `mismatches` lists what did not fit. example_inputs: as for apply,
    for a model whose sites needed recorded shapes when it was saved.

    Example: see the module docstring.
    """
    from .api import apply

    header = read_header(path)
    fresh = not se_modules(_unwrap(model))
    if fresh:
        with warnings.catch_warnings():  # a rule that inserts nothing is reported below, as a mismatch
            warnings.simplefilter("ignore", SEInjectWarning)
            target = apply(model, header.rule, inplace=inplace, example_inputs=example_inputs,
                           **header.overrides)
        _drop_unsaved_blocks(target, header)
    else:
        target = model if inplace else copy.deepcopy(model)
    inner = _unwrap(target)
    problems, loadable = _compare(header, inner)
    if problems and strict:
        if fresh and inplace:
            restore(inner)
            keep_across_copies(inner, REPORT, None)
        raise CheckpointError(_summary(header, inner, problems), header.path, problems)
    _copy_in(header.path, inner, loadable)
    if problems:
        warnings.warn(CheckpointWarning(f"{header.path}: {len(problems)} mismatch(es), not loaded:\n"
                                        + "\n".join(problems), problems), stacklevel=2)
    return target


def _drop_unsaved_blocks(target: nn.Module, header: CheckpointHeader) -> None:
    """After the stored rule was applied: take out the new blocks the checkpoint does not hold
    because they had been removed (seinject.remove(blocks=...), seinject.fold) before saving.
    Only when every saved block is there; otherwise _compare reports the mismatch."""
    from .api import remove

    inner = _unwrap(target)
    present = {name for name, _ in se_modules(inner)}
    saved = {site["module"] for site in header.sites}
    if saved and saved < present:
        remove(inner, inplace=True, blocks=sorted(present - saved))


def _storable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two sharing memory (safetensors refuses that; tied `also` weights would):
    a copy only where one is needed."""
    out, seen = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        if tensor.untyped_storage().data_ptr() in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside torch.compile's, DataParallel's or DistributedDataParallel's wrapper."""
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}")
    model = compiled_inner(model) or model
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return model


def _apply_record(inner: nn.Module, where: str):
    """The report of the apply that made the model's blocks; CheckpointError when there is none to trust."""
    names = sorted(name for name, _ in se_modules(inner))
    if not names:
        raise CheckpointError(f"{type(inner).__name__} has no SE block inserted by seinject: nothing to save",
                              where)
    report = getattr(inner, REPORT, None)
    if report is None or getattr(report, "rule_spec", None) is None:
        raise CheckpointError(f"{type(inner).__name__} carries SE blocks but no record of the apply that made "
                              "them (seinject.report(model) has no rule)", where)
    recorded = sorted(block.module for block in report.inserted)
    if recorded != names:
        odd = sorted(set(names) ^ set(recorded))[0]
        raise CheckpointError(f"the model's SE blocks are not those its last apply inserted (e.g. {odd!r}): "
                              "a checkpoint holds the blocks of one apply", where)
    return report


def _selected(inner: nn.Module, patterns: list) -> dict[str, torch.Tensor]:
    prefixes = tuple(f"{name}." for name, _ in se_modules(inner))
    tensors = inner.state_dict()
    extra = set().union(*matched_names(patterns, list(tensors)).values()) if patterns else set()
    return {name: tensor for name, tensor in tensors.items() if name.startswith(prefixes) or name in extra}


def _compare(header: CheckpointHeader, inner: nn.Module) -> tuple[list[str], list[str]]:
    """Every mismatch between checkpoint and model (one line each), and the tensor names that fit."""
    found = dict(se_modules(inner))
    report = getattr(inner, REPORT, None)
    placed = {block.module: block.site for block in report.inserted} if report is not None else {}
    model_shapes = {name: tuple(t.shape) for name, t in _selected(inner, compile_patterns(header.also)).items()}
    blocks = {site["module"] for site in header.sites} | set(found)
    ours, theirs = _by_block(header.shapes, blocks), _by_block(model_shapes, blocks)
    problems, loadable = [], []
    for site in header.sites:
        name = site["module"]
        where = f"SE block {name!r} (site {site.get('name', '?')!r}, {site.get('channels', '?')} channels)"
        if name not in found:
            problems.append(f"{where}: the model has no SE block {name!r}")
            continue
        misfit = _tensor_misfits(ours.get(name, {}), theirs.get(name, {}))
        if misfit:
            problems.append(f"{where}: {misfit[0]}")
            continue
        loadable += list(ours.get(name, {}))
        problems += [f"{where}: {d}" for d in _block_difference(found[name], site, header)]
        problems += [f"{where}: {d}" for d in _site_difference(placed.get(name), site)]
    expected = {site["module"] for site in header.sites}
    problems += [f"SE block {name!r} of the model is not in the checkpoint" for name in found if name not in expected]
    others = _tensor_misfits(ours.get(None, {}), theirs.get(None, {}))
    problems += others
    loadable += [n for n, shape in ours.get(None, {}).items() if theirs.get(None, {}).get(n) == shape]
    return problems, loadable


def _by_block(shapes: dict[str, tuple], blocks: set[str]) -> dict[str | None, dict[str, tuple]]:
    """Tensor shapes grouped by the SE block that holds them (None: tensors outside every block)."""
    groups: dict[str | None, dict[str, tuple]] = {}
    for name, shape in shapes.items():
        parts = name.split(".")
        owner = next((p for p in (".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)) if p in blocks), None)
        groups.setdefault(owner, {})[name] = shape
    return groups


def _tensor_misfits(ours: dict[str, tuple], theirs: dict[str, tuple]) -> list[str]:
    """Tensors of the checkpoint (ours) and the model (theirs) that differ, in the model's order."""
    problems = []
    for name in list(theirs) + [name for name in ours if name not in theirs]:
        if name not in ours:
            problems.append(f"the model's tensor {name!r} {list(theirs[name])} is not in the checkpoint")
        elif name not in theirs:
            problems.append(f"the checkpoint's tensor {name!r} {list(ours[name])} has no place in the model")
        elif theirs[name] != ours[name]:
            problems.append(f"tensor {name!r}: the checkpoint has shape {list(ours[name])}, "
                            f"the model {list(theirs[name])}")
    return problems


def _block_difference(block: nn.Module, site: dict, header: CheckpointHeader) -> list[str]:
    """How the model's block differs from the one the checkpoint's rule makes at this site (gate, act, ...)."""
    channels = site.get("channels")
    if not isinstance(channels, int):
        return []
    wanted = build_gate(channels, site.get("spatial_rank") or 2, header.resolved.se, device="meta")
    if repr(wanted) == repr(block):
        return []
    ours, theirs = repr(block).splitlines(), repr(wanted).splitlines()
    differ = [(a.strip(), b.strip()) for a, b in zip(ours, theirs) if a != b]
    have, make = differ[0] if differ else (" ".join(ours), " ".join(theirs))
    return [f"the model's block has {have!r} where the checkpoint's rule makes {make!r}"]


def _site_difference(placed, site: dict) -> list[str]:
    """Where the model's block sits (by its last apply's report), when that is not where the checkpoint's sat."""
    if placed is None:
        return []
    ours = (site.get("name"), site.get("position"))
    theirs = (placed.name, placed.position)
    if ours == theirs:
        return []
    return [f"the model's block sits {placed.describe()!r}, the checkpoint's {site.get('placement', ours)!r}"]


def _summary(header: CheckpointHeader, inner: nn.Module, problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more mismatch(es))" if len(problems) > 1 else ""
    return (f"does not fit {type(inner).__name__}: {problems[0]}{more}; the checkpoint holds "
            f"{len(header.sites)} SE block(s) (rule {header.rule.name!r}, saved from a {header.model}), "
            f"this {type(inner).__name__} has {len(se_modules(inner))}")


def _copy_in(path: str, inner: nn.Module, names: list[str]) -> None:
    with safe_open(path, framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in names}
    inner.load_state_dict(tensors, strict=False)
