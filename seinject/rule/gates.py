"""The gate types seinject can insert, as backend-free facts: which settings each reads, where it
is defined (spatial ranks), its default activation and gate, and its parameter and MAC counts.

Both backends build the same block from these facts (seinject.torch.gates, seinject.onnx.gates),
and plans count costs with them without importing torch.

    se     GAP → FC C→h → act → FC h→C → gate → ×                (Hu et al., 2018)
    ese    GAP → FC C→C → hard-sigmoid → ×                        (Lee & Park, CenterMask/VoVNetV2, 2020)
    eca    GAP → 1-D conv of size k across channels → sigmoid → × (Wang et al., ECA-Net, 2020)
    cbam   channel MLP on avg and max pools → ×, then k×k conv on channel mean and max → BN → × (Woo et al., 2018)
    gc     softmax attention pooling → FC C→h → LayerNorm → ReLU → FC h→C → + (Cao et al., GCNet, 2019)
    coord  pools along H and along W → shared 1×1 C→h → BN → act → per-axis 1×1 h→C → gates → × (Hou et al., 2021)
    simam  energy per position from the channel's spatial mean and variance → sigmoid → × (Yang et al., 2021)

Example:
    >>> from seinject.rule.config import SEConfig
    >>> eca_kernel_size(256, SEConfig(block="eca"))
    5
    >>> SPECS["coord"].ranks
    (2,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .config import SEConfig

SE_SETTINGS = ("ratio", "divisor", "min_hidden", "act", "gate", "bias")


@dataclass(frozen=True)
class GateSpec:
    """One gate type: its settings (besides `block` and `init`), ranks, defaults and costs."""

    name: str
    title: str
    paper: str
    settings: tuple[str, ...]
    ranks: tuple[int, ...]
    act: str | None
    gate: str | None
    params: Callable[[int, "SEConfig", int], int]
    macs: Callable[[int, "SEConfig", tuple[int, ...] | None], int]
    identity: str

    def unsupported(self, spatial_rank: int | None) -> str | None:
        """Why this type cannot go on a map of that spatial rank, or None.

        Example:
            >>> SPECS["coord"].unsupported(1)
            'coord is defined on 2-D maps (it pools along H and W); this map has 1 spatial dim(s)'
        """
        if spatial_rank is None or spatial_rank in self.ranks:
            return None
        dims = ", ".join(f"{r}-D" for r in self.ranks)
        why = " (it pools along H and W)" if self.name == "coord" else ""
        return f"{self.name} is defined on {dims} maps{why}; this map has {spatial_rank} spatial dim(s)"


def eca_kernel_size(channels: int, config: "SEConfig") -> int:
    """ECA's 1-D kernel: `kernel_size` when set, else the paper's k = |log2(C) + b| / γ made odd, at least 3.

    Example:
        >>> from seinject.rule.config import SEConfig
        >>> eca_kernel_size(64, SEConfig(block="eca")), eca_kernel_size(64, SEConfig(block="eca", kernel_size=9))
        (3, 9)
    """
    if config.kernel_size is not None:
        return config.kernel_size
    t = int(abs(math.log2(channels) + config.beta) / config.gamma)
    return max(t if t % 2 else t + 1, 3)


def _spatial(shape: tuple[int, ...] | None) -> int:
    return math.prod(shape) if shape else 0


def _se_params(c: int, cfg: "SEConfig", rank: int) -> int:
    h = cfg.hidden_channels(c)
    return 2 * c * h + (h + c if cfg.bias else 0)


def _se_macs(c: int, cfg: "SEConfig", shape) -> int:
    return 2 * c * cfg.hidden_channels(c) + 2 * c * _spatial(shape)


def _cbam_params(c: int, cfg: "SEConfig", rank: int) -> int:
    h = cfg.hidden_channels(c)
    return 2 * c * h + 2 * cfg.spatial_kernel_size ** rank + 2


def _cbam_macs(c: int, cfg: "SEConfig", shape) -> int:
    s, rank = _spatial(shape), len(shape) if shape else 0
    # two MLP passes; avg+max pools, channel mean+max, two scales; the 2→1 spatial conv
    return 4 * c * cfg.hidden_channels(c) + 6 * c * s + 2 * cfg.spatial_kernel_size ** rank * s


def _gc_params(c: int, cfg: "SEConfig", rank: int) -> int:
    h = cfg.hidden_channels(c)
    mlp = c * h + h + 2 * h + h * c + c
    return (c + 1 if cfg.use_attn else 0) + mlp * (int(cfg.fuse_add) + int(cfg.fuse_scale))


def _gc_macs(c: int, cfg: "SEConfig", shape) -> int:
    s = _spatial(shape)
    mlps = int(cfg.fuse_add) + int(cfg.fuse_scale)
    return (2 * c * s if cfg.use_attn else c * s) + 2 * c * cfg.hidden_channels(c) * mlps + c * s * mlps


def _coord_params(c: int, cfg: "SEConfig", rank: int) -> int:
    h = cfg.hidden_channels(c)
    return c * h + h + 2 * h + 2 * (h * c + c)


def _coord_macs(c: int, cfg: "SEConfig", shape) -> int:
    lines = sum(shape) if shape else 0  # conv1 on H+W positions, conv_h on H, conv_w on W
    return 2 * c * cfg.hidden_channels(c) * lines + 4 * c * _spatial(shape)


SPECS: dict[str, GateSpec] = {
    "se": GateSpec(
        "se", "Squeeze-and-Excitation", "Hu et al., CVPR 2018", SE_SETTINGS, (1, 2, 3), "relu", "sigmoid",
        _se_params, _se_macs, "last FC zero, gate gain 2: 2·sigmoid(0) = 1"),
    "ese": GateSpec(
        "ese", "effective SE", "Lee & Park, CVPR 2020 (CenterMask, VoVNetV2)", ("gate", "bias"), (1, 2, 3),
        None, "hardsigmoid",
        lambda c, cfg, rank: c * c + (c if cfg.bias else 0),
        lambda c, cfg, shape: c * c + 2 * c * _spatial(shape),
        "FC zero, gate gain 2: 2·hardsigmoid(0) = 1"),
    "eca": GateSpec(
        "eca", "efficient channel attention", "Wang et al., CVPR 2020", ("kernel_size", "gamma", "beta", "gate"),
        (1, 2, 3), None, "sigmoid",
        lambda c, cfg, rank: eca_kernel_size(c, cfg),
        lambda c, cfg, shape: c * eca_kernel_size(c, cfg) + 2 * c * _spatial(shape),
        "conv zero, gate gain 2"),
    "cbam": GateSpec(
        "cbam", "convolutional block attention module", "Woo et al., ECCV 2018",
        ("ratio", "divisor", "min_hidden", "act", "gate", "spatial_kernel_size"), (1, 2, 3), "relu", "sigmoid",
        _cbam_params, _cbam_macs,
        "channel MLP's last layer zero and spatial BatchNorm weight zero, both gates with gain 2"),
    "gc": GateSpec(
        "gc", "global context block", "Cao et al., ICCV Workshops 2019 (GCNet)",
        ("ratio", "divisor", "min_hidden", "act", "gate", "use_attn", "fuse_add", "fuse_scale"), (1, 2, 3),
        "relu", "sigmoid", _gc_params, _gc_macs,
        "last layer of each transform zero: x + 0 (add fusion), 2·sigmoid(0) (scale fusion)"),
    "coord": GateSpec(
        "coord", "coordinate attention", "Hou et al., CVPR 2021",
        ("ratio", "divisor", "min_hidden", "act", "gate"), (2,), "hardswish", "sigmoid",
        _coord_params, _coord_macs, "both per-axis 1×1 convs zero, each gate with gain 2"),
    "simam": GateSpec(
        "simam", "simple parameter-free attention", "Yang et al., ICML 2021", ("e_lambda",), (1, 2, 3),
        None, "sigmoid",
        lambda c, cfg, rank: 1 if cfg.init == "identity" else 0,
        lambda c, cfg, shape: 6 * c * _spatial(shape),
        "a blend scalar α starting at 0: x·(1 + α·(sigmoid(E) − 1))"),
}
BLOCKS = tuple(SPECS)
