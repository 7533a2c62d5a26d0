"""A residual join on channels-last values (Swin-style blocks: N×H×W×C) whose branch ends in an op
seinject cannot see into: the opaque side takes the join's layout, so no block is put on dim 1 (H)."""

import pytest
import torch
import torch.fx
from torch import nn

import seinject
from tests.helpers import apply_quiet


def window_attention(x):
    """Stands for an attention function that tracing keeps whole (torch.fx.wrap)."""
    return x * 0.5


torch.fx.wrap("window_attention")


class ChannelsLastBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):  # x: N×H×W×C
        return x + window_attention(self.norm(x))


class SwinLike(nn.Module):
    def __init__(self, channels=8):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(ChannelsLastBlock(channels), ChannelsLastBlock(channels))

    def forward(self, x):
        x = self.stem(x).permute(0, 2, 3, 1)
        return self.blocks(x).permute(0, 3, 1, 2)


@pytest.mark.parametrize("rule", seinject.list_rules())
def test_no_block_on_the_wrong_dim_of_a_channels_last_join(rule):
    net, x = SwinLike().eval(), torch.randn(2, 3, 6, 6)  # H = 6 ≠ C = 8: a block on dim 1 would crash
    new = apply_quiet(net, rule)
    assert torch.equal(new(x), net(x))
    assert all(site.channels == 8 for site in seinject.plan(net, rule))
