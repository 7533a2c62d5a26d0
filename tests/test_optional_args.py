"""A forward with an optional argument that a call leaves out (`shortcut=None`, as in timm's DLA): the
trace must take the default's branch, or the rewritten model crashes or computes something else."""

import pytest
import torch
from torch import nn

import seinject
from tests.helpers import apply_quiet


class Basic(nn.Module):
    def __init__(self, channels=8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x, shortcut=None, scale: float = 1.0):
        if shortcut is None:
            shortcut = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) * scale
        out += shortcut
        return self.relu(out)


class Tree(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.project = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.tree1, self.tree2, self.tree3 = Basic(), Basic(), Basic()

    def forward(self, x):
        x = self.stem(x)
        x1 = self.tree1(x, self.project(x))   # shortcut passed
        x2 = self.tree2(x1)                   # shortcut left out: the block's own input
        return self.tree3(x2, scale=0.5)      # a keyword, shortcut left out


@pytest.mark.parametrize("rule", seinject.list_rules())
def test_calls_that_leave_out_an_optional_argument(rule):
    net, x = Tree().eval(), torch.randn(2, 3, 8, 8)
    new = apply_quiet(net, rule)
    assert torch.equal(new(x), net(x))
    new.train(), net.train()
    assert torch.equal(new(x), net(x))


def test_each_call_site_keeps_its_residual():
    sites = [s.name for s in seinject.plan(Tree(), "after_residual")]
    assert sites == ["tree1.relu_1", "tree2.relu_1", "tree3.relu_1"]
