"""The neutral `split` kind: torch chunk/split and ONNX Split give the same parts and channel counts.

    x ─ conv(3→8) ─┬─ chunk(2)[0] ──────────────┐
                   ├─ chunk(2)[1] ─ conv(4→4) ──┴─ cat ─▶ y0
                   ├─ split([3, 5])[0] ─────────────────▶ y1
                   └─ split([3, 5])[1] ─────────────────▶ y2
"""

import pytest
import torch
import torch.nn as nn

import seinject
from seinject.blocks import SqueezeExcite
from seinject.rule import parse_rule
from seinject.torch.view import build_view

AFTER_SPLIT = parse_rule("name: after_split\npattern: [{kind: split}]\n")


class SplitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.branch = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        a, b = x.chunk(2, dim=1)
        c, d = torch.split(x, [3, 5], 1)
        return torch.cat([a, self.branch(b)], 1), c, d


def _part_channels(view):
    return sorted(view.node(n).channels for n in view.nodes() if view.node(n).kind == "split")


def test_torch_parts_are_split_ops_with_their_own_channel_counts():
    view = build_view(SplitNet()).view
    assert _part_channels(view) == [3, 4, 4, 5]


def test_onnx_split_nodes_give_the_same_parts(tmp_path):
    """The dynamo exporter writes chunk and split as ONNX Split (the legacy one as Slices)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import contextlib, io, warnings

    import onnx

    from seinject.onnx.view import build_view as build_onnx_view

    path = tmp_path / "split.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(SplitNet().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=True)
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node].count("Split") == 2
    assert _part_channels(build_onnx_view(model).view) == [3, 4, 4, 5]


def test_se_after_each_part_starts_at_identity_and_is_on_the_data_path():
    torch.manual_seed(0)
    net = SplitNet()
    new = seinject.apply(net, rule=AFTER_SPLIT, ratio=2)
    assert len(seinject.report(new).inserted) == 4
    x = torch.randn(2, 3, 8, 8)
    for got, want in zip(new(x), net(x)):
        assert torch.equal(got, want)
    sum(y.sum() for y in new(x)).backward()
    se = [m for m in new.modules() if isinstance(m, SqueezeExcite)]
    assert len(se) == 4 and all(m.fc2.weight.grad is not None and m.fc2.weight.grad.abs().sum() > 0 for m in se)


class WholeSplit(nn.Module):
    """The parts are used as a whole (passed on as a tuple): no part can take a block of its own."""

    def forward(self, x):
        return torch.cat(x.chunk(2, dim=1), 1)


def test_a_split_used_as_a_whole_is_one_opaque_op():
    view = build_view(nn.Sequential(nn.Conv2d(3, 8, 1), WholeSplit())).view
    kinds = [view.node(n).kind for n in view.nodes()]
    assert "split" not in kinds and "other" in kinds
