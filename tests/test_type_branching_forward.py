"""A forward that branches on its input's Python type (timm's SelecSLS: `if not isinstance(x, list): x = [x]`)
is traced down the tensor branch while it is called with a list. Without example_inputs nothing can tell;
with them, apply runs the rewritten model and raises VerificationError instead of handing back a model
that fails, and the caller's model is untouched."""

from typing import List

import pytest
import torch
from torch import nn

import seinject


class ListBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        if not isinstance(x, list):
            x = [x]
        return [self.act(self.bn(self.conv(x[0]))), x[-1]]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.blocks = nn.Sequential(ListBlock(8), ListBlock(8))

    def forward(self, x):
        return self.blocks([self.stem(x)])[0]


def test_a_rewrite_that_does_not_run_is_a_verification_error():
    torch.manual_seed(0)
    net, x = Net().eval(), torch.randn(1, 3, 12, 12)
    expected = net(x)
    with pytest.raises(seinject.VerificationError, match="rewritten model fails on example_inputs"):
        seinject.apply(net, "conv_block", example_inputs=x)
    with pytest.raises(seinject.VerificationError):
        seinject.apply(net, "conv_block", example_inputs=x, inplace=True)
    assert not seinject.se_modules(net) and torch.equal(net(x), expected)
    assert torch.equal(seinject.apply(net, "conv_block", exclude=["blocks"], example_inputs=x)(x), expected)
