"""Training and evaluation loops for the study: seeded batch order, AdamW with warm-up and cosine decay, test accuracy every K steps."""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import Split

EVAL_BATCH = 1000  # the whole MNIST-1D test set in one forward pass


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (the study also gives every loop its own torch.Generator)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(split: Split, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches (a fresh permutation each epoch, last partial batch dropped); the order depends only on seed.

    Example:
        >>> s = Split(torch.arange(10.0).reshape(10, 1, 1), torch.arange(10))
        >>> a, b = batches(s, 4, seed=3), batches(s, 4, seed=3)
        >>> all(torch.equal(next(a)[1], next(b)[1]) for _ in range(5))
        True
    """
    generator = torch.Generator().manual_seed(seed)
    size = min(batch_size, len(split))
    while True:
        order = torch.randperm(len(split), generator=generator)
        for start in range(0, len(split) - size + 1, size):
            index = order[start:start + size]
            yield split.x[index], split.y[index]


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int = EVAL_BATCH) -> float:
    """Top-1 accuracy in eval mode (the model's train/eval flags are restored afterwards).

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
        >>> 0.0 <= accuracy(net, Split(torch.randn(8, 1, 3), torch.zeros(8, dtype=torch.int64))) <= 1.0
        True
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        right = sum(int((model(split.x[i:i + batch_size]).argmax(1) == split.y[i:i + batch_size]).sum())
                    for i in range(0, len(split), batch_size))
    finally:
        for module, training in modes.items():
            module.training = training
    return right / len(split)


def schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup` steps from 10 % of the learning rate, then cosine decay to 0 at `steps`.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = schedule(opt, steps=10, warmup=2)
        >>> [round(s.lr_lambdas[0](k), 2) for k in (0, 2, 6, 10)]
        [0.1, 1.0, 0.5, 0.0]
    """
    def factor(step: int) -> float:
        if step < warmup:
            return 0.1 + 0.9 * step / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class Curve:
    """Test accuracy at steps (step 0: before any update), and seconds spent in training steps only."""

    steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    train_seconds: float = 0.0


def fit(model: nn.Module, train: Split, test: Split, *, steps: int, lr: float, seed: int,
        batch_size: int = 128, weight_decay: float = 1e-4, warmup: int = 0, eval_every: int = 0,
        eval_at: tuple[int, ...] = (), progress=None, task=None) -> Curve:
    """Train the parameters with requires_grad=True for `steps` AdamW steps on batches ordered by `seed`;
    evaluate on `test` at step 0, every `eval_every` steps, at the steps in `eval_at` and at the end.
    `progress`/`task`: a rich Progress and its task, advanced once per step.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> data = Split(torch.randn(64, 1, 4), torch.randint(0, 2, (64,)))
        >>> fit(net, data, data, steps=5, lr=1e-2, seed=0, batch_size=16, eval_every=2, eval_at=(1,)).steps
        [0, 1, 2, 4, 5]
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = schedule(optimizer, steps, warmup)
    curve = Curve()

    def evaluate(step: int) -> None:
        curve.steps.append(step)
        curve.accuracy.append(accuracy(model, test))

    evaluate(0)
    data = batches(train, batch_size, seed)
    model.train()
    for step in range(1, steps + 1):
        x, y = next(data)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        scheduler.step()
        curve.train_seconds += time.perf_counter() - start
        if progress is not None:
            progress.advance(task)
        if (eval_every and step % eval_every == 0) or step in eval_at or step == steps:
            evaluate(step)
    model.eval()
    return curve


def progress_bar(enabled: bool):
    """A rich Progress (bar, steps, elapsed, remaining) when enabled, else a context that yields None."""
    if not enabled:
        return nullcontext(None)
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn())
