"""A block in an nn.Sequential lives on the leaf child it follows (or precedes), so slicing,
iterating and re-wrapping the Sequential keep it; where it cannot, nothing drops it silently."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import seinject
from seinject.torch.block import SqueezeExcite
from tests.helpers import apply_quiet, build, max_diff


def se_blocks(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, SqueezeExcite)}


def off_identity(model: nn.Module) -> nn.Module:
    """Move every block off identity, so a path without it computes something else."""
    torch.manual_seed(3)
    with torch.no_grad():
        for block in se_blocks(model).values():
            block.fc2.weight.normal_()
            block.fc2.bias.normal_()
    return model.eval()


def run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


def test_vgg_blocks_sit_on_the_relus_and_survive_slicing_iteration_and_rewrapping():
    model, x = build("vgg_tiny")
    new = off_identity(seinject.apply(model, rule="conv_block"))
    names = [f"features.{i}.se" for i in (2, 6, 10, 13)]
    assert [b.module for b in seinject.report(new).inserted] == names
    assert sorted(se_blocks(new)) == sorted(names)
    assert {f"{n}.fc2.weight" for n in names} <= set(new.state_dict())
    seq, plain = new.features, model.eval().features
    want = run(seq, x)
    assert not torch.equal(want, run(plain, x))  # the blocks act on this path
    assert len(seq) == len(plain) and all(isinstance(a, type(b)) for a, b in zip(seq, plain))
    assert isinstance(seq[2], nn.ReLU) and isinstance(seq[2].se, SqueezeExcite)
    for rewrapped in (seq[:], nn.Sequential(*seq), nn.Sequential(*list(seq)), copy.deepcopy(seq)):
        assert torch.equal(run(rewrapped, x), want)
        assert len(se_blocks(rewrapped)) == 4
    assert torch.equal(run(seq[1:], run(seq[0], x)), want)
    by_index = x
    for i in range(len(seq)):
        by_index = run(seq[i], by_index)
    assert torch.equal(by_index, want)


def test_a_block_before_child_0_sits_on_that_child():
    model, x = build("mobilenetv2_tiny")
    new = off_identity(seinject.apply(model, rule="before_residual"))
    assert [b.module for b in seinject.report(new).inserted] == ["features.3.conv.0.0.se", "features.5.conv.0.0.se"]
    branch = new.features[3].conv  # nn.Sequential(ConvBNAct, ConvBNAct, Conv2d, BatchNorm2d)
    h = run(new.features[:3], x)
    want = run(branch, h)
    assert not torch.equal(want, run(model.eval().features[3].conv, h))
    assert torch.equal(run(branch[:], h), want) and torch.equal(run(nn.Sequential(*branch), h), want)
    first = branch[0]  # the ConvBNAct whose conv runs the block on its input
    assert torch.equal(run(nn.Sequential(*first), h), run(first, h))
    conv, plain_conv = first[0], model.features[3].conv[0][0]
    assert isinstance(conv, nn.Conv2d) and isinstance(conv.se, SqueezeExcite)
    assert torch.equal(run(conv, h), run(plain_conv, run(conv.se, h)))
    assert not torch.equal(run(conv, h), run(plain_conv, h))
    assert torch.equal(run(branch[1:], run(branch[0], h)), want)


def test_second_apply_inserts_nothing_and_remove_restores_keys_and_classes():
    for fixture, rule in (("vgg_tiny", "conv_block"), ("mobilenetv2_tiny", "before_residual"),
                          ("mobilenetv2_tiny", "inverted_residual")):
        model, x = build(fixture)
        once = seinject.apply(model, rule=rule)
        with pytest.warns(seinject.SEInjectWarning, match="inserted no SE block"):
            twice = seinject.apply(once, rule=rule)
        assert set(twice.state_dict()) == set(once.state_dict())
        assert seinject.report(twice).skipped and all(s.reason == "already has SE" for s in seinject.report(twice).skipped)
        restored = seinject.remove(twice)
        assert list(restored.state_dict()) == list(model.state_dict())
        assert [type(m) for m in restored.modules()] == [type(m) for m in model.modules()]
        assert max_diff(model, restored, x, training=False) == 0.0


def test_a_shared_child_keeps_the_block_in_the_sequential_and_refuses_slicing():
    relu = nn.ReLU()
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 8, 3), relu, nn.Conv2d(8, 8, 3), relu)
    x = torch.randn(1, 3, 12, 12)
    new = apply_quiet(seq, "conv_block")
    inserted = [b.module for b in seinject.report(new).inserted]
    assert len(inserted) == 2 and all("." not in name for name in inserted)  # the Sequential's own children
    assert max_diff(seq, new, x, training=False) == 0.0
    assert len(new) == 4 and [type(m) for m in new] == [type(m) for m in seq]
    with pytest.raises(seinject.ModelError, match="a slice would drop"):
        new[1:]
    assert not se_blocks(seinject.remove(new))


def test_a_child_called_twice_keeps_the_block_in_the_sequential():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.seq = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())

        def forward(self, x):
            return self.seq[1](self.seq(x) - 1.0)

    torch.manual_seed(0)
    model, x = Twice(), torch.randn(1, 3, 12, 12)
    new = off_identity(seinject.apply(model, rule="conv_block"))
    assert [b.module for b in seinject.report(new).inserted] == ["seq.se"]
    assert not hasattr(new.seq[1], "se")  # its second call must not run the block
    with torch.no_grad():
        expected = torch.relu(new.seq.se(torch.relu(new.seq[0](x))) - 1.0)
    assert torch.equal(run(new, x), expected)


class InPlaceEntryBlock(nn.Module):
    """x ─┬─ [relu(inplace) ─ conv ─ bn] ─┐   the in-place ReLU also changes what the shortcut reads
          └──────────────────────────────(+)"""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.branch = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, padding=1),
                                    nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.branch(x)


def test_no_block_goes_before_an_in_place_first_op_of_a_branch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), InPlaceEntryBlock(), InPlaceEntryBlock()).eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(seinject.SEInjectWarning):
        new = seinject.apply(model, rule="before_residual")
    report = seinject.report(new)
    assert len(report) == 0 and all("in-place" in skip.reason for skip in report.skipped)
    assert torch.equal(new(x), model(x))
    other = seinject.apply(model, rule="residual_branch")  # the branch's end is fine
    assert len(seinject.report(other)) == 2 and torch.equal(other(x), model(x))
