"""Random weights fast: parameter initialisation reads draws from a small bank instead of the RNG.

Building a large timm model spends most of its time drawing random numbers for weights it then
overwrites (torch's default init, then the model's own). Inside `cheap_init()`, `Tensor.normal_`,
`Tensor.uniform_` and the truncated-normal initialisers (torch's and timm's, wherever imported)
copy from a bank of 2**21 standard draws, scaled to the mean and spread asked for: the weights keep
each initialiser's scale, they are random-looking, not independent. Used by benchmarks/catalogue.py,
where a model only needs finite, non-trivial weights to check that a rewrite keeps its outputs.

Example:
    >>> import torch
    >>> with cheap_init():
    ...     w = torch.empty(64, 64).normal_(0.0, 0.02)
    >>> 0.015 < float(w.std()) < 0.025
    True
"""

from __future__ import annotations

import contextlib
import sys

import torch

_BANK = 1 << 21
_CHUNK = 1 << 20


class _Banks:
    normal: torch.Tensor | None = None
    uniform: torch.Tensor | None = None


def _fill(tensor: torch.Tensor, bank: torch.Tensor, scale: float, shift: float) -> bool:
    """Copy bank draws (from a random offset) into a contiguous floating tensor; False if it is not one."""
    if not tensor.is_floating_point() or not tensor.is_contiguous() or tensor.device.type != "cpu":
        return False
    flat = tensor.view(-1)
    with torch.no_grad():
        for start in range(0, flat.numel(), _CHUNK):
            part = flat[start:start + _CHUNK]
            offset = int(torch.randint(0, _BANK - _CHUNK, ()))
            part.copy_(bank[offset:offset + part.numel()]).mul_(scale).add_(shift)
    return True


@contextlib.contextmanager
def cheap_init():
    """Within the block, random initialisers draw from a bank (see the module docstring)."""
    if _Banks.normal is None:
        generator = torch.Generator().manual_seed(0)
        _Banks.normal = torch.randn(_BANK, generator=generator)
        _Banks.uniform = torch.rand(_BANK, generator=generator)
    normal, uniform = torch.Tensor.normal_, torch.Tensor.uniform_

    def fast_normal(self, mean=0.0, std=1.0, *, generator=None):
        if generator is None and _fill(self, _Banks.normal, std, mean):
            return self
        return normal(self, mean, std, generator=generator)

    def fast_uniform(self, low=0.0, high=1.0, *, generator=None):
        if generator is None and _fill(self, _Banks.uniform, high - low, low):
            return self
        return uniform(self, low, high, generator=generator)

    def trunc_normal(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
        with torch.no_grad():
            return fast_normal(tensor, mean, std).clamp_(a, b)

    def trunc_normal_tf(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
        with torch.no_grad():
            return fast_normal(tensor).clamp_(a, b).mul_(std).add_(mean)

    replaced = _replace_everywhere({"trunc_normal_": trunc_normal, "trunc_normal_tf_": trunc_normal_tf})
    torch.Tensor.normal_, torch.Tensor.uniform_ = fast_normal, fast_uniform
    try:
        yield
    finally:
        torch.Tensor.normal_, torch.Tensor.uniform_ = normal, uniform
        for module, name, original in replaced:
            setattr(module, name, original)


def _replace_everywhere(fast: dict) -> list:
    """Replace torch's and timm's truncated-normal initialisers in every loaded module that imported
    them by name; returns (module, name, original) to put back."""
    originals = {torch.nn.init.trunc_normal_: fast["trunc_normal_"]}
    try:
        from timm.layers import weight_init

        originals[weight_init.trunc_normal_] = fast["trunc_normal_"]
        originals[weight_init.trunc_normal_tf_] = fast["trunc_normal_tf_"]
    except ImportError:
        pass
    replaced = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or not getattr(module, "__name__", "").startswith(("timm", "torch")):
            continue
        for name in ("trunc_normal_", "trunc_normal_tf_", "_trunc_normal_"):
            original = namespace.get(name)
            if original is not None and original in originals:
                replaced.append((module, name, original))
                namespace[name] = originals[original]
    return replaced
