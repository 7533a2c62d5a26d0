"""A torch.compile'd submodule: planned and rewritten through its wrapper, never reported as left out,
and the shape pass of example_inputs runs it eagerly (inductor kernels crashed on fake tensors)."""

import torch
from torch import nn

import seinject


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.body = torch.compile(Block())

    def forward(self, x):
        return self.body(self.stem(x))


def test_compiled_child_is_rewritten_with_example_inputs():
    torch.manual_seed(0)
    net, x = Net().eval(), torch.randn(1, 3, 12, 12)
    expected = net(x)  # compiled once, before the rewrite
    compiled_forward = vars(net.body).get("forward")
    plan = seinject.plan(net, "conv_block", example_inputs=x)
    assert [s.name for s in plan] == ["body._orig_mod.act"] and plan.left_out == []
    new = seinject.apply(net, "conv_block", example_inputs=x)  # verifies exact equality itself
    assert [name for name, _ in seinject.se_modules(new)] == ["body._orig_mod.se"]
    assert torch.equal(new(x), expected)
    assert vars(net.body).get("forward") is compiled_forward  # the shape pass's eager forward is gone again
