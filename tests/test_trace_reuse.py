"""Modules built alike share one trace and one rewritten class; modules that differ do not.

Reuse must never change what a rewrite finds or computes: every test here compares
sites and outputs with what a per-instance trace gives.
"""

from __future__ import annotations

import torch
import torch.nn as nn

import seinject
from seinject.torch.structure import StructureKeys
from seinject.torch.trace import _ShallowTracer
from seinject.torch.view import _Builder, build_view
from tests.helpers import max_diff


class _ConvBnRelu(nn.Module):
    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()


class FlagBlock(_ConvBnRelu):
    """conv → bn → (+ x when self.residual) → relu: the flag changes the traced graph."""

    def __init__(self, channels: int, residual: bool) -> None:
        super().__init__(channels)
        self.residual = residual

    def forward(self, x):
        out = self.bn(self.conv(x))
        if self.residual:
            out = out + x
        return self.relu(out)


class StrideBlock(_ConvBnRelu):
    """Adds the shortcut only when its conv keeps the size: reads a child's attribute."""

    def forward(self, x):
        out = self.bn(self.conv(x))
        if self.conv.stride == (1, 1):
            out = out + x
        return self.relu(out)


class ScaledBlock(_ConvBnRelu):
    """Scales its branch by a plain tensor attribute (not a buffer), which fx bakes in."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__(channels)
        self.scale = torch.full((1, channels, 1, 1), scale)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)) * self.scale + x)


def _net(*blocks: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *blocks)


def _owners(model: nn.Module) -> list[str]:
    return sorted(block.module.rpartition(".")[0] for block in seinject.report(model).inserted)


def test_keys_equal_for_modules_built_alike():
    keys = StructureKeys()
    assert keys.key(FlagBlock(8, True)) == keys.key(FlagBlock(8, True))


def test_keys_differ_on_own_attribute_child_attribute_and_parameters():
    keys = StructureKeys()
    assert keys.key(FlagBlock(8, True)) != keys.key(FlagBlock(8, False))
    assert keys.key(StrideBlock(8, 1)) != keys.key(StrideBlock(8, 2))
    assert keys.key(nn.Conv2d(8, 8, 3, bias=False)) != keys.key(nn.Conv2d(8, 8, 3))
    assert keys.key(nn.Sequential(nn.ReLU())) != keys.key(nn.Sequential(nn.ReLU(), nn.ReLU()))
    assert keys.key(nn.Sequential(nn.ReLU())) != keys.key(nn.Sequential(nn.GELU()))


def test_no_key_for_plain_tensors_or_hidden_modules():
    keys = StructureKeys()
    assert keys.key(ScaledBlock(8, 1.0)) is None
    hidden = nn.ReLU()
    hidden.others = [nn.ReLU()]
    assert keys.key(hidden) is None
    assert keys.key(nn.Sequential(ScaledBlock(8, 1.0))) is None  # a child without a key


def test_blocks_that_differ_by_a_flag_are_traced_apart():
    net = _net(FlagBlock(8, True), FlagBlock(8, False), FlagBlock(8, True))
    new = seinject.apply(net, rule="after_residual")
    assert _owners(new) == ["1", "3"]
    x = torch.randn(2, 3, 8, 8)
    assert max_diff(net, new, x, training=False) == 0.0
    assert type(new[1]) is type(new[3]) and type(new[2]) is FlagBlock


def test_blocks_that_differ_by_a_child_attribute_are_traced_apart():
    net = _net(StrideBlock(8, 1), StrideBlock(8, 2), StrideBlock(8, 1))
    new = seinject.apply(net, rule="after_residual")
    assert _owners(new) == ["1", "3"]
    assert max_diff(net, new, torch.randn(2, 3, 8, 8), training=True) == 0.0


def test_blocks_with_baked_in_tensors_keep_their_own_values():
    net = _net(ScaledBlock(8, 0.5), ScaledBlock(8, 2.0))
    new = seinject.apply(net, rule="after_residual")
    assert _owners(new) == ["1", "2"]
    x = torch.randn(2, 3, 8, 8)
    assert max_diff(net, new, x, training=False) == 0.0
    new[2].scale.fill_(3.0)  # each block still reads its own tensor
    assert max_diff(net, new, x, training=False) > 0.0


def test_identical_blocks_share_one_rewritten_class_and_each_its_own_se():
    net = _net(*(FlagBlock(8, True) for _ in range(6)))
    new = seinject.apply(net, rule="residual_branch")
    blocks = list(new)[1:]
    assert len({type(b) for b in blocks}) == 1
    assert len({id(b.se) for b in blocks}) == 6
    assert max_diff(net, new, torch.randn(2, 3, 8, 8), training=True) == 0.0
    assert all(type(b) is FlagBlock for b in seinject.remove(new)[1:])


def test_untraceable_blocks_built_alike_are_each_reported():
    class Untraceable(FlagBlock):
        def forward(self, x):
            out = self.bn(self.conv(x))
            if out.sum() > 0:  # data-dependent control flow
                out = out + x
            return self.relu(out)

    traced = build_view(_net(Untraceable(8, True), Untraceable(8, True)))
    assert [s.name for s in traced.left_out] == ["1", "2"]
    assert all("not traceable" in s.reason for s in traced.left_out)


def test_sequential_graph_matches_what_fx_traces():
    from collections import OrderedDict

    seq = nn.Sequential(OrderedDict([("conv", nn.Conv2d(3, 3, 1)), ("0", nn.ReLU()),
                                     ("a-b", nn.ReLU()), ("input", nn.ReLU())]))
    built = _Builder(seq, {}).sequential_graph(seq)
    traced = _ShallowTracer().trace(seq)
    assert built.python_code("self").src == traced.python_code("self").src


def test_sequential_with_a_shared_child_goes_through_the_tracer():
    relu = nn.ReLU()
    seq = nn.Sequential(nn.Conv2d(3, 8, 3), relu, nn.Conv2d(8, 8, 3), relu)
    assert _Builder(seq, {}).sequential_graph(seq) is None
    new = seinject.apply(seq, rule="conv_block")
    assert max_diff(seq, new, torch.randn(1, 3, 12, 12), training=False) == 0.0


class WarmupBlock(_ConvBnRelu):
    """Adds its shortcut only once a buffer flag is set: fx evaluates the flag while tracing."""

    def __init__(self, channels: int, ready: bool) -> None:
        super().__init__(channels)
        self.register_buffer("ready", torch.tensor(ready))

    def forward(self, x):
        out = self.bn(self.conv(x))
        if self.ready:
            out = out + x
        return self.relu(out)


def test_blocks_that_differ_by_a_small_buffer_value_are_traced_apart():
    keys = StructureKeys()
    assert keys.key(WarmupBlock(8, True)) != keys.key(WarmupBlock(8, False))
    net = _net(WarmupBlock(8, True), WarmupBlock(8, False), WarmupBlock(8, True))
    new = seinject.apply(net, rule="after_residual")
    assert _owners(new) == ["1", "3"]
    assert max_diff(net, new, torch.randn(2, 3, 8, 8), training=False) == 0.0


def test_buffer_shapes_enter_the_key():
    keys = StructureKeys()
    a, b = nn.Module(), nn.Module()
    a.register_buffer("table", torch.zeros(16))
    b.register_buffer("table", torch.zeros(32))
    assert keys.key(a) != keys.key(b)
