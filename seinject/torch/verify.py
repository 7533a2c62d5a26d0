"""Check the torch backend's promise: the rewritten model computes what the original computed.

`outputs` runs a model on example inputs (eval mode, no grad, training flags restored) and
keeps every tensor of its output structure; `compare` says how far two such runs are apart
and raises VerificationError when blocks at identity changed anything (NaN positions must
match, infinities must be equal: exactness, not closeness).

Example:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    >>> x = torch.randn(1, 3, 4, 4)
    >>> compare(outputs(net, x), outputs(net, x), exact=True, where="Sequential")
    0.0
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from ..errors import VerificationError


def outputs(model: nn.Module, example_inputs: Any) -> list[torch.Tensor]:
    """The tensors of model(*example_inputs) in eval mode, without grad, detached copies; the model
    runs on copies of the inputs, which stay as they were.

    Example:
        >>> import torch.nn as nn
        >>> [t.shape for t in outputs(nn.Identity(), torch.zeros(2, 3))]
        [torch.Size([2, 3])]
    """
    args = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    args = tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, args)  # a forward may write into them
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            result = model(*args)
    finally:
        for module, training in modes.items():
            module.training = training
    leaves, _ = tree_flatten(result)
    return [leaf.detach().clone() for leaf in leaves if isinstance(leaf, torch.Tensor)]


def compare(before: list[torch.Tensor], after: list[torch.Tensor], exact: bool, where: str) -> float:
    """max |after - before| over all outputs; with exact=True, a VerificationError naming the first
    output that differs (shape, value, or NaN position).

    Example:
        >>> compare([torch.tensor([1.0, float("nan")])], [torch.tensor([1.0, float("nan")])], True, "net")
        0.0
    """
    if len(before) != len(after):
        raise VerificationError(f"{where}: the rewritten model returns {len(after)} tensors, the original "
                                f"{len(before)}")
    worst = 0.0
    for index, (old, new) in enumerate(zip(before, after)):
        if old.shape != new.shape or old.dtype != new.dtype:
            raise VerificationError(f"{where}: output {index} is {tuple(new.shape)} {new.dtype} after the "
                                    f"rewrite, {tuple(old.shape)} {old.dtype} before")
        if not old.is_floating_point() and not old.is_complex():
            same = torch.equal(old, new)
            diff = 0.0 if same else float("inf")
        else:
            both_nan = torch.isnan(old) & torch.isnan(new)
            same = bool(((old == new) | both_nan).all())
            gap = (new.double() - old.double()).abs()
            finite = torch.isfinite(gap)
            diff = float(gap[finite].max()) if bool(finite.any()) else 0.0
            if not same and diff == 0.0:
                diff = float("inf")  # NaN or infinity where the other has a number
        worst = max(worst, diff)
        if exact and not same:
            raise VerificationError(f"{where}: output {index} differs after inserting SE blocks at identity "
                                    f"(max |new - old| = {diff:.3g}); the rewritten model is not returned (an "
                                    "in-place one is restored). Please report this with the model")
    return worst


def failure_cause(model: nn.Module, example_inputs: Any, blocks: "list[tuple[str, nn.Module]]") -> str:
    """Why a rewritten model fails on example_inputs, in words: the first inserted block whose input
    does not have the channels it was built for (seinject counted that site wrong), else the innermost
    module that was running when the forward failed.

    Example:
        >>> from seinject.torch.block import SqueezeExcite
        >>> block = SqueezeExcite(4)
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 1), block)
        >>> failure_cause(net, torch.zeros(1, 3, 2, 2), [("1", block)])
        "block '1' was built for 4 channels and gets 8: seinject counted that site's channels wrong (please report the model)"
    """
    names = {id(module): name for name, module in model.named_modules()}
    running: list[str] = []
    found: list[str] = []

    def check(block_name: str):
        def hook(module, inputs):
            first = inputs[0] if inputs else None
            channels = getattr(module, "channels", None)
            if isinstance(first, torch.Tensor) and first.dim() >= 2 and channels is not None \
                    and first.shape[1] != channels and not found:
                found.append(f"block {block_name!r} was built for {channels} channels and gets {first.shape[1]}: "
                             "seinject counted that site's channels wrong (please report the model)")
        return hook

    def enter(module, inputs):
        running.append(names.get(id(module), "?"))

    def leave(module, inputs, output):
        if running:
            running.pop()

    handles = [module.register_forward_pre_hook(enter) for module in model.modules()]
    handles += [module.register_forward_hook(leave) for module in model.modules()]
    handles += [block.register_forward_pre_hook(check(name)) for name, block in blocks]
    try:
        outputs(model, example_inputs)
    except Exception:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if found:
        return found[0]
    where = running[-1] if running else ""
    return (f"it fails inside {where or '<root>'!r}; a forward that branches on its inputs' Python types can be "
            "traced down the wrong branch: exclude that module (exclude=...) and please report the model")
