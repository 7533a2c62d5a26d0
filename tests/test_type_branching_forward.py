"""Forwards that branch on their input's Python type. timm's SelecSLS blocks say
`if not isinstance(x, list): x = [x]` and are called with lists: each is traced for the list
(its type and length) its caller passes, from the caller's graph or, below a forward that cannot
be traced, from example_inputs. A branch that no trace can tell (`isinstance(x, torch.Tensor)` is
False for fx's proxies) makes apply with example_inputs raise VerificationError instead of handing
back a model that fails, and the caller's model is untouched."""

from typing import List

import pytest
import torch
from torch import nn

import seinject


class ListBlock(nn.Module):
    def __init__(self, c: int, first: bool):
        super().__init__()
        self.first = first
        self.conv, self.bn, self.act = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        if not isinstance(x, list):
            x = [x]
        y = nn.functional.dropout(self.act(self.bn(self.conv(x[0]))), 0.0, self.training)  # traced per mode
        return [y, y] if self.first else [y, x[1]]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.blocks = nn.Sequential(ListBlock(8, True), ListBlock(8, False), ListBlock(8, True))

    def forward(self, x):
        return self.blocks([self.stem(x)])[0]


class Untraceable(nn.Module):
    """Calls the blocks from a forward fx cannot trace (control flow on a tensor's value)."""

    def __init__(self):
        super().__init__()
        self.net = Net()

    def forward(self, x):
        if x.sum() > -1e9:
            return self.net.blocks([self.net.stem(x)])[0]
        return x


def _trained(model: nn.Module) -> nn.Module:
    """BatchNorm statistics that are not the identity, so a wrong graph shows in the outputs."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 12, 12))
    return model.eval()


def test_blocks_called_with_lists_are_traced_for_them():
    torch.manual_seed(0)
    net, x = _trained(Net()), torch.randn(2, 3, 12, 12)
    expected = net(x)
    new = seinject.apply(net, "conv_block")
    assert [s.site.name for s in seinject.report(new)] == ["blocks.0.act", "blocks.1.act", "blocks.2.act"]
    assert not seinject.report(new).left_out
    assert torch.equal(new(x), expected)
    assert torch.equal(new.train()(x), net.train()(x))  # the train-mode trace is for the list too
    new.eval()
    for _, block in seinject.se_modules(new):
        with torch.no_grad():
            for p in block.parameters():
                p.add_(0.1)
    assert not torch.equal(new(x), expected)  # the blocks are in the forward path


def test_list_or_tuple_is_kept_apart():
    class TupleFirst(ListBlock):
        def forward(self, x):
            if isinstance(x, tuple):
                x = list(x)[::-1]
            return super().forward(x)

    net = Net()
    net.blocks[1] = TupleFirst(8, False)
    torch.manual_seed(0)
    net, x = _trained(net), torch.randn(2, 3, 12, 12)
    assert torch.equal(seinject.apply(net, "conv_block")(x), net(x))


def test_lists_below_an_untraceable_forward_come_from_example_inputs():
    torch.manual_seed(0)
    model, x = _trained(Untraceable()), torch.randn(2, 3, 12, 12)
    expected = model(x)
    new = seinject.apply(model, "conv_block", example_inputs=x)
    assert len(seinject.report(new)) == 3
    assert [s.name for s in seinject.report(new).left_out] == ["<root>"]
    assert torch.equal(new(x), expected)


class TensorCheck(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()

    def forward(self, x):
        if not isinstance(x, torch.Tensor):  # fx's Proxy is not a Tensor: the trace takes this branch
            x = x[0]
        return self.act(self.bn(self.conv(x)))


def test_a_rewrite_that_does_not_run_is_a_verification_error():
    torch.manual_seed(0)
    net, x = nn.Sequential(nn.Conv2d(3, 8, 3), TensorCheck(8)).eval(), torch.randn(1, 3, 12, 12)
    expected = net(x)
    with pytest.raises(seinject.VerificationError, match="rewritten model fails on example_inputs"):
        seinject.apply(net, "conv_block", example_inputs=x)
    with pytest.raises(seinject.VerificationError):
        seinject.apply(net, "conv_block", example_inputs=x, inplace=True)
    assert not seinject.se_modules(net) and torch.equal(net(x), expected)
    assert torch.equal(seinject.apply(net, "conv_block", exclude=["1"], example_inputs=x)(x), expected)


class OptionalSkip(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()

    def forward(self, x, skip=None):
        y = nn.functional.dropout(self.act(self.bn(self.conv(x))), 0.0, self.training)
        return y if skip is None else y + skip


def test_defaults_a_call_leaves_out_hold_in_both_training_modes():
    torch.manual_seed(0)
    net, x = _trained(nn.Sequential(nn.Conv2d(3, 8, 3), OptionalSkip(8))), torch.randn(2, 3, 12, 12)
    new = seinject.apply(net, "conv_block")
    assert len(seinject.report(new)) == 1
    assert torch.equal(new(x), net(x))
    assert torch.equal(new.train()(x), net.train()(x))
