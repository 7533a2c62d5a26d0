"""Op classes from other libraries: an instance of a known op class (conv, norm, act, ...) without
children is one op of that kind whatever its forward does; only modules that are called and cannot be
traced are reported as left out."""

import torch
from torch import nn

import seinject
from tests.helpers import apply_quiet


class StdConv2d(nn.Conv2d):
    """Weight-standardised conv in the style of timm's: its forward branches on a tensor value."""

    def forward(self, x):
        w = self.weight
        if w.std() > 0:  # data-dependent: torch.fx cannot trace this
            w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


class BatchNormAct2d(nn.BatchNorm2d):
    """A norm-act layer in the style of timm's: a BatchNorm2d subclass with an activation child."""

    def __init__(self, channels):
        super().__init__(channels)
        self.act = nn.ReLU()

    def forward(self, x):  # as timm writes it: the functional norm, then its activation child
        x = nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                     self.training, self.momentum, self.eps)
        return self.act(x)


class Block(nn.Module):
    def __init__(self, channels=8):
        super().__init__()
        self.conv1, self.bn1 = StdConv2d(channels, channels, 3, padding=1), BatchNormAct2d(channels)
        self.conv2, self.bn2 = StdConv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.bn2(self.conv2(self.bn1(self.conv1(x)))))


class NFNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = StdConv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(Block(), Block())

    def forward(self, x):
        return self.blocks(self.stem(x))


def test_a_conv_subclass_with_an_untraceable_forward_is_a_conv():
    net, x = NFNetLike().eval(), torch.randn(2, 3, 16, 16)
    plan = seinject.plan(net, "residual_branch")
    assert [(s.name, s.channels) for s in plan] == [("blocks.0.bn2", 8), ("blocks.1.bn2", 8)]
    assert plan.left_out == []
    new = seinject.apply(net, "after_residual", example_inputs=x)
    assert len(seinject.report(new)) == 2 and seinject.report(new).verified
    assert torch.equal(new(x), net(x))


def test_a_norm_subclass_with_children_is_traced_so_its_activation_counts():
    net = NFNetLike().eval()
    sites = [s.name for s in seinject.plan(net, "conv_block", outside_residual=False)]
    assert sites == ["blocks.0.bn1.act", "blocks.1.bn1.act"]  # conv → norm → act inside BatchNormAct2d


class Untraceable(nn.Module):
    """An untraceable forward over a ModuleList (a container with no forward of its own)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()) for _ in range(2)])
        self.unused = nn.ModuleDict({"a": Block()})

    def forward(self, x):
        for layer in self.layers:
            if x.sum() > 0:  # data-dependent
                x = layer(x)
        return x


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = Untraceable()
        self.spare = nn.Sequential(Untraceable())  # never called

    def forward(self, x):
        return self.body(self.stem(x))


def test_left_out_lists_only_called_modules_that_cannot_be_traced():
    net, x = Model().eval(), torch.randn(2, 3, 8, 8)
    without = [p.name for p in seinject.plan(net, "conv_block").left_out]
    assert "body" in without and not any(n.endswith(("layers", "unused")) for n in without), without
    with_inputs = [p.name for p in seinject.plan(net, "conv_block", example_inputs=x).left_out]
    assert with_inputs == ["body"]  # spare.0 is never called; ModuleList/ModuleDict have no forward
    new = apply_quiet(net, "conv_block", example_inputs=x)
    assert torch.equal(new(x), net(x))
