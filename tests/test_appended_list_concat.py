"""torch.cat over a list a forward receives and appends to (timm's VoVNet SequentialAppendList):
the graph does not say which tensors the list holds, so the cat is opaque, never an after_concat
site with a wrong channel count (the rewritten model crashed), while the convs feeding it keep theirs."""

from typing import List

import torch
from torch import nn

import seinject


class SequentialAppendList(nn.Sequential):
    def forward(self, x: torch.Tensor, concat_list: List[torch.Tensor]) -> torch.Tensor:
        for i, module in enumerate(self):
            concat_list.append(module(x if i == 0 else concat_list[-1]))
        return torch.cat(concat_list, dim=1)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class OsaBlock(nn.Module):
    def __init__(self, cin: int = 8, mid: int = 4, cout: int = 8):
        super().__init__()
        self.conv_mid = SequentialAppendList(conv_bn_relu(cin, mid), conv_bn_relu(mid, mid))
        self.conv_concat = nn.Sequential(nn.Conv2d(cin + 2 * mid, cout, 1), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        output = [x]
        return self.conv_concat(self.conv_mid(x, output))


def test_cat_of_an_appended_list_is_no_site_and_the_rewrite_runs():
    torch.manual_seed(0)
    net, x = nn.Sequential(OsaBlock(), OsaBlock()).eval(), torch.randn(2, 8, 12, 12)
    assert len(seinject.plan(net, "after_concat")) == 0
    sites = seinject.plan(net, "conv_block")
    assert {s.name: s.channels for s in sites}["0.conv_mid.0.2"] == 4
    for training in (False, True):
        new = seinject.apply(net, "conv_block", example_inputs=x).train(training)
        net.train(training)
        torch.manual_seed(1)
        expected = net(x)
        torch.manual_seed(1)
        assert torch.equal(new(x), expected)
