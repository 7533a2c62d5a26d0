"""Shared test helpers: build fixtures, compare outputs of two models in train and eval mode."""

from __future__ import annotations

import warnings

import torch

from tests.models import ALL_FIXTURES

import seinject


def build(name: str):
    """A fresh fixture model and a random input for it (seeded)."""
    builder, shape = ALL_FIXTURES[name]
    torch.manual_seed(0)
    model = builder()
    return model, torch.randn(*shape)


def max_diff(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor, training: bool) -> float:
    """Max |a(x) - b(x)| with both models in the given mode (same RNG state for dropout)."""
    a.train(training)
    b.train(training)
    with torch.no_grad():
        torch.manual_seed(1)
        out_a = a(x)
        torch.manual_seed(1)
        out_b = b(x)
    return float((out_a - out_b).abs().max())


def apply_quiet(model, rule, **kwargs):
    """seinject.apply without the 'matched nothing' warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seinject.SEInjectWarning)
        return seinject.apply(model, rule=rule, **kwargs)
