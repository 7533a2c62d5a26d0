"""A FrozenBatchNorm2d (torchvision's, detectron2's: a plain nn.Module, not a BatchNorm subclass) is a norm op."""

import torch
from torch import nn

import seinject


class FrozenBatchNorm2d(nn.Module):
    """torchvision.ops.FrozenBatchNorm2d as torchvision writes it (fixed statistics and affine)."""

    def __init__(self, n: int):
        super().__init__()
        for name, value in (("weight", torch.rand(n) + 0.5), ("bias", torch.randn(n)),
                            ("running_mean", torch.randn(n)), ("running_var", torch.rand(n) + 0.5)):
            self.register_buffer(name, value)

    def forward(self, x):
        scale = self.weight * (self.running_var + 1e-5).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


class Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), FrozenBatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), FrozenBatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


def test_frozen_batchnorm_is_a_norm_and_sites_take_its_name():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), FrozenBatchNorm2d(8), nn.ReLU(), Block(8), Block(8)).eval()
    assert [s.name for s in seinject.plan(net, "residual_branch")] == ["3.bn2", "4.bn2"]
    assert [s.name for s in seinject.plan(net, "conv_block")] == ["2"]
    x = torch.randn(2, 3, 16, 16)
    new = seinject.apply(net, "residual_branch", example_inputs=x)
    assert torch.equal(new(x), net(x))
