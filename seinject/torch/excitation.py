"""What seinject's SE blocks do on data: per-class mean gates, class specificity and saturation
(the SENet paper's excitation analysis, §6.4 and Fig. 6).

`record(model, data, labels)` runs the model (eval mode, no grad, training flags restored) and
keeps, per block and class, the count, sum and sum of squares of every channel's gate value
(float64), so memory does not grow with the data. Gates are the gate function's output in
[0, 1] (sigmoid or hard-sigmoid); the block scales a channel by gain·gate, so a block at
identity shows 0.5 everywhere.

Example:
    >>> import torch, torch.nn as nn, seinject
    >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), rule="conv_block")
    >>> ex = record(net, torch.randn(6, 3, 8, 8), labels=torch.tensor([0, 1, 0, 1, 0, 1]))
    >>> ex.blocks, ex.classes, tuple(ex.per_class()["1.se"].shape)
    (['1.se'], [0, 1], (2, 8))
    >>> float(ex.per_class()["1.se"].max())   # at identity every gate is 0.5
    0.5
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from ..errors import ConfigError, ModelError, UsageError
from ..safe_write import write_bytes
from ..suggest import short
from .training import se_modules

CHUNK = 256  # samples per forward pass when `data` is one tensor


@dataclass
class _Sums:
    """Per class: samples seen, and the sum and sum of squares of each channel's gate."""

    channels: int
    counts: dict[Any, int] = field(default_factory=dict)
    sums: dict[Any, torch.Tensor] = field(default_factory=dict)
    squares: dict[Any, torch.Tensor] = field(default_factory=dict)

    def add(self, gates: torch.Tensor, labels: list) -> None:
        gates = gates.detach().to(torch.float64).reshape(len(gates), -1)
        for label in sorted(set(labels), key=_order):
            rows = gates[[i for i, y in enumerate(labels) if y == label]]
            self.counts[label] = self.counts.get(label, 0) + len(rows)
            self.sums[label] = self.sums.get(label, 0) + rows.sum(0)
            self.squares[label] = self.squares.get(label, 0) + (rows * rows).sum(0)


class Excitations:
    """Gate statistics of every seinject block on some data; see seinject.excitations.

    Every method returns a dict keyed by block name, in the order the blocks ran (depth).
    """

    def __init__(self, sums: dict[str, _Sums], samples: int):
        self._sums = sums
        self.samples = samples
        self.blocks = list(sums)
        self.classes = sorted({c for s in sums.values() for c in s.counts}, key=_order)

    def per_class(self) -> dict[str, torch.Tensor]:
        """Per block, a classes × channels tensor of mean gate values (rows in `classes` order).

        Example:
            >>> import torch, torch.nn as nn, seinject
            >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), rule="conv_block")
            >>> seinject.excitations(net, torch.randn(5, 3, 2, 2)).per_class()["1.se"].shape
            torch.Size([1, 4])
        """
        return {name: torch.stack([s.sums[c] / s.counts[c] for c in self.classes if c in s.counts])
                for name, s in self._sums.items()}

    def mean(self) -> dict[str, torch.Tensor]:
        """Per block, the mean gate of each channel over all samples (what `fold` uses as the scale).

        Example:
            >>> import torch, torch.nn as nn, seinject
            >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), rule="conv_block")
            >>> seinject.excitations(net, torch.randn(5, 3, 2, 2)).mean()["1.se"].tolist()
            [0.5, 0.5, 0.5, 0.5]
        """
        return {name: _total(s.sums) / sum(s.counts.values()) for name, s in self._sums.items()}

    def specificity(self) -> dict[str, float]:
        """Per block, how much of its gates' variation the class explains: the correlation ratio
        η² = Σ_k n_k (μ_k − μ)² / Σ_i (g_i − μ)² of each channel (between-class over total sum of
        squares), averaged over the channels whose gate varies at all. 0: every class gets the same
        gates (the paper's early blocks); 1: the class alone sets them (its late blocks). 0.0 for a
        block whose gates never vary.

        Example:
            >>> import torch, torch.nn as nn, seinject
            >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), rule="conv_block")
            >>> seinject.excitations(net, torch.randn(4, 3, 2, 2), labels=[0, 0, 1, 1]).specificity()
            {'1.se': 0.0}
        """
        out = {}
        for name, s in self._sums.items():
            n = sum(s.counts.values())
            mu = _total(s.sums) / n
            total = _total(s.squares) - n * mu * mu
            between = sum(s.counts[c] * (s.sums[c] / s.counts[c] - mu) ** 2 for c in s.counts)
            varies = total > 1e-12 * n
            out[name] = float((between[varies] / total[varies]).clamp(0, 1).mean()) if bool(varies.any()) else 0.0
        return out

    def saturation(self) -> dict[str, float]:
        """Per block, how input-independent its gates are: 1 − mean over channels of the gate's
        standard deviation across samples, divided by 0.5 (the largest a value in [0, 1] can have).
        1.0: every sample gets the same gates, so the block is a fixed channel scale that
        `seinject.fold` can replace; a block at identity is 1.0.

        Example:
            >>> import torch, torch.nn as nn, seinject
            >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), rule="conv_block")
            >>> seinject.excitations(net, torch.randn(4, 3, 2, 2)).saturation()
            {'1.se': 1.0}
        """
        out = {}
        for name, s in self._sums.items():
            n = sum(s.counts.values())
            mu = _total(s.sums) / n
            std = (_total(s.squares) / n - mu * mu).clamp(min=0).sqrt()
            out[name] = float(1.0 - (std / 0.5).clamp(0, 1).mean())
        return out

    def table(self) -> str:
        """One row per block in depth order: channels, mean gate, specificity, saturation.

        Example:
            >>> import torch, torch.nn as nn, seinject
            >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), rule="conv_block")
            >>> print(seinject.excitations(net, torch.randn(4, 3, 2, 2)).table())
            #  block  channels  mean gate  specificity  saturation
            -  -----  --------  ---------  -----------  ----------
            0  1.se          4      0.500        0.000       1.000
        """
        from ..graph.table import format_table

        spec, sat, mean = self.specificity(), self.saturation(), self.mean()
        rows = [(str(i), name, str(self._sums[name].channels), f"{float(mean[name].mean()):.3f}",
                 f"{spec[name]:.3f}", f"{sat[name]:.3f}") for i, name in enumerate(self.blocks)]
        return format_table(("#", "block", "channels", "mean gate", "specificity", "saturation"), rows)

    def plot(self, path: "str | Path", blocks: "list[str] | None" = None, columns: int = 3) -> Path:
        """A figure like the paper's Fig. 6: per block (depth order), the mean gate of each channel,
        one line per class; written atomically as PNG (or the format `path` names). Needs matplotlib.

        Example:
            >>> import tempfile, torch, torch.nn as nn, seinject
            >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), rule="conv_block")
            >>> ex = seinject.excitations(net, torch.randn(4, 3, 2, 2), labels=[0, 1, 0, 1])
            >>> ex.plot(Path(tempfile.mkdtemp()) / "fig6.png").name
            'fig6.png'
        """
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise UsageError("Excitations.plot needs matplotlib: pip install 'seinject[study]'") from None
        names = blocks if blocks is not None else self.blocks
        unknown = [n for n in names if n not in self._sums]
        if unknown:
            raise ConfigError(f"no SE block {short(unknown[0])} in these excitations; blocks: "
                              f"{', '.join(self.blocks[:8])}{' ...' if len(self.blocks) > 8 else ''}")
        columns = max(1, min(columns, len(names)))
        rows = math.ceil(len(names) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
        means, spec = self.per_class(), self.specificity()
        colours = plt.get_cmap("tab10")
        for ax, name in zip(axes.flat, names):
            for row, label in enumerate(c for c in self.classes if c in self._sums[name].counts):
                ax.plot(means[name][row].numpy(), lw=0.9, color=colours(row % 10), label=str(label))
            ax.set_title(f"{name}  (specificity {spec[name]:.2f})", fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_xlabel("channel", fontsize=7)
            ax.set_ylabel("mean gate", fontsize=7)
            ax.tick_params(labelsize=6)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        if len(self.classes) > 1:
            axes.flat[0].legend(fontsize=6, ncol=2, title="class", title_fontsize=6)
        figure.tight_layout()
        buffer = io.BytesIO()
        suffix = Path(path).suffix.lstrip(".") or "png"
        figure.savefig(buffer, format=suffix, dpi=130)
        plt.close(figure)
        return write_bytes(path, buffer.getvalue())


def record(model: nn.Module, data: Any, labels: Any = None, max_batches: int | None = None) -> Excitations:
    """Run `model` on `data` and gather the gate statistics of every block seinject inserted.

    data: one input tensor (run in chunks of CHUNK), or an iterable of batches, each a tensor or a
    (inputs, labels, ...) tuple as a DataLoader yields. labels: a sequence or tensor for a tensor
    `data` (default: the batches' own labels, else one class "all").

    Example:
        >>> import torch, torch.nn as nn, seinject
        >>> net = seinject.apply(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), rule="conv_block")
        >>> batches = [(torch.randn(2, 3, 4, 4), torch.tensor([0, 1]))] * 3
        >>> record(net, batches, max_batches=2).samples
        4
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int)
                                    or max_batches < 1):
        raise ConfigError(f"max_batches must be an integer >= 1 or None, got {short(max_batches)}", key="max_batches")
    blocks = se_modules(model)
    if not blocks:
        raise ModelError(f"{type(model).__name__} has no SE block inserted by seinject")
    sums: dict[str, _Sums] = {}
    current: list = []
    handles = [block.register_forward_hook(_recorder(name, block, sums, current)) for name, block in blocks]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    samples = 0
    try:
        with torch.no_grad():
            for count, (inputs, batch_labels) in enumerate(batches(data, labels)):
                if max_batches is not None and count >= max_batches:
                    break
                current[:] = batch_labels
                model(*inputs)
                samples += len(batch_labels)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    if not sums:
        raise ModelError("no SE block ran on this data (is `data` empty, or are the blocks on a path the "
                         "forward does not take?)")
    return Excitations(sums, samples)


def _recorder(name: str, block: nn.Module, sums: dict[str, _Sums], current: list):
    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        gates = module.gate_values(inputs[0])
        if gates is None:  # a block without one gate per channel (gc adding only, coord, simam)
            return
        rows, n = len(gates), len(current)
        if n == 0 or rows % n:
            raise ModelError(f"SE block {name!r} saw {rows} samples for a batch of {n} labels")
        labels = [y for y in current for _ in range(rows // n)]  # (batch × time) folded into rows
        sums.setdefault(name, _Sums(gates.shape[1])).add(gates, labels)
    return hook


def batches(data: Any, labels: Any) -> Iterator[tuple[tuple, list]]:
    """(forward arguments, labels as a list) for every batch of `data` (see record).

    Example:
        >>> [(x[0].shape[0], y) for x, y in batches(torch.zeros(3, 2), labels=[1, 2, 1])]
        [(3, [1, 2, 1])]
    """
    if isinstance(data, torch.Tensor):
        given = _as_list(labels, len(data)) if labels is not None else ["all"] * len(data)
        for start in range(0, len(data), CHUNK):
            yield (data[start:start + CHUNK],), given[start:start + CHUNK]
        return
    if labels is not None:
        raise ConfigError("labels= goes with one input tensor; batches carry their own labels as (inputs, labels)",
                          key="labels")
    if not isinstance(data, Iterable):
        raise ConfigError(f"data must be a tensor or an iterable of batches, got {type(data).__name__}", key="data")
    for batch in data:
        if isinstance(batch, torch.Tensor):
            yield (batch,), ["all"] * len(batch)
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
            yield (batch[0],), (_as_list(batch[1], len(batch[0])) if len(batch) > 1 else ["all"] * len(batch[0]))
        else:
            raise ConfigError(f"a batch must be a tensor or an (inputs, labels) tuple, got {type(batch).__name__}",
                              key="data")


def _as_list(labels: Any, n: int) -> list:
    values = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    if len(values) != n:
        raise ConfigError(f"{len(values)} labels for {n} samples", key="labels")
    return values


def _total(parts: dict[Any, torch.Tensor]) -> torch.Tensor:
    return sum(parts.values())


def _order(label: Any) -> tuple:
    """Numbers before strings, each in their natural order."""
    return (0, label, "") if isinstance(label, (int, float)) else (1, 0, str(label))
