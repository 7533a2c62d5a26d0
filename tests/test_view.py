"""GraphView facts on hand-built op graphs: residual joins, branch vs shortcut, layouts, channels."""

import pytest
import torch

from seinject.graph.view import GraphView, RawOp


def conv(id_, src, out=8, inp=8, stride=1, groups=1):
    return RawOp(id_, "conv", id_, [src], {"out_channels": out, "in_channels": inp, "groups": groups,
                                          "stride": (stride, stride), "kernel_size": (3, 3)})


def op(id_, kind, *inputs, **attrs):
    return RawOp(id_, kind, id_, list(inputs), attrs)


X = RawOp("x", "input", "x", [], shape=(1, 8, 16, 16))


def test_identity_shortcut():
    """x ─┬─ conv ─ bn ─(+)   the side with nothing on it is the shortcut"""
    view = GraphView([X, conv("c", "x"), op("b", "norm", "c"), op("a", "add", "b", "x")])
    a = view.node("a")
    assert (a.residual, a.join.branch, a.join.shortcut, a.join.split) == (True, "b", "x", "x")
    assert a.join.branch_nodes == {"c", "b"} and view.node("c").in_residual


def test_projection_shortcut_is_the_lighter_side_whatever_the_operand_order():
    """x ─┬─ conv─bn─relu─conv─bn ─┐
          └─ conv(1x1) ─ bn ──────(+)"""
    ops = [X, conv("c1", "x"), op("b1", "norm", "c1"), op("r", "act", "b1"), conv("c2", "r"),
           op("b2", "norm", "c2"), conv("d", "x"), op("db", "norm", "d")]
    for order in (("b2", "db"), ("db", "b2")):
        view = GraphView(ops + [op("a", "add", *order)])
        assert (view.node("a").join.branch, view.node("a").join.shortcut) == ("b2", "db")


@pytest.mark.parametrize("second", [["x", "x"], ["c"]])
def test_not_residual_without_two_distinct_inputs(second):
    view = GraphView([X, conv("c", "x"), op("a", "add", *second)])
    assert not view.node("a").residual


def test_not_residual_when_channels_differ_or_inputs_never_meet():
    y = RawOp("y", "input", "y", [], shape=(1, 8, 16, 16))
    view = GraphView([X, y, conv("c", "x", out=16), op("a", "add", "c", "x"), op("b", "add", "x", "y")])
    assert not view.node("a").residual and not view.node("b").residual


def test_the_split_is_the_latest_common_ancestor_across_chained_blocks():
    ops, prev = [X], "x"
    for i in range(5):
        ops += [conv(f"c{i}", prev), op(f"a{i}", "add", f"c{i}", prev)]
        prev = f"a{i}"
    view = GraphView(ops)
    assert [view.node(f"a{i}").join.split for i in range(5)] == ["x", "a0", "a1", "a2", "a3"]


def test_channels_flow_through_concat_and_channels_last_permutes():
    ops = [X, conv("c", "x", out=4), op("cat", "concat", "c", "x", channel_concat=True),
           op("p", "reshape", "cat", perm=(0, 2, 3, 1)), op("ln", "norm", "p"),
           RawOp("fc", "linear", "fc", ["ln"], {"out_features": 24}),
           op("back", "reshape", "fc", perm=(0, 3, 1, 2)), op("flat", "reshape", "back")]
    view = GraphView(ops)
    assert view.node("cat").channels == 12 and view.is_feature_map("cat")
    assert view.node("p").layout == "cl" and not view.is_feature_map("ln")
    assert view.node("back").channels == 24 and view.is_feature_map("back")
    assert not view.is_feature_map("flat")


def test_levels_count_downsampling_and_depthwise_is_recognised():
    """Each stride-2 step of a 2-D map quarters the positions: level += 2 (log2 of the stride's product)."""
    ops = [X, conv("c1", "x", stride=2), conv("dw", "c1", groups=8), op("p", "pool", "dw", stride=(2, 2))]
    view = GraphView(ops)
    assert [view.node(n).level for n in ("x", "c1", "dw", "p")] == [0, 2, 2, 4]
    assert {view.node(n).origin for n in ("x", "c1", "dw", "p")} == {"abs"}  # x's shape is known
    assert view.node("dw").depthwise and not view.node("c1").grouped


def test_upsample_takes_levels_off_and_an_opaque_op_starts_a_new_origin():
    """FPN/YOLO necks: an upsample by 2 brings a map back to the level of the one it is concatenated with;
    after a module seinject could not trace, levels count from that module (its effect is unknown)."""
    x = RawOp("x", "input", "x", [])
    ops = [x, conv("c1", "x", stride=2), conv("c2", "c1", stride=2), op("up", "other", "c2", resample=(2.0,)),
           op("cat", "concat", "up", "c1", channel_concat=True), op("box", "other", "cat", opaque=True),
           conv("c3", "box", stride=2)]
    view = GraphView(ops)
    assert view.node("cat").level == view.node("c1").level == 2 and view.node("cat").origin == "x"
    assert (view.node("c3").origin, view.node("c3").level) == ("box", 2)


def test_values_from_a_global_pool_are_squeezed_until_they_scale_a_map():
    """x · sigmoid(conv(pool(x))): the pooled branch is a vector, the product a feature map again."""
    ops = [X, op("p", "pool", "x", fn="adaptive_avg_pool", global_pool=True), conv("fc", "p"),
           op("g", "act", "fc", fn="sigmoid"), op("m", "mul", "x", "g")]
    view = GraphView(ops)
    assert [view.node(n).squeezed for n in ("x", "p", "fc", "g", "m")] == [False, True, True, True, False]


def test_channel_splits_keep_channel_counts():
    """ShuffleNetV2: x1, x2 = x.chunk(2, dim=1); cat((x1, branch(x2)), 1)"""
    ops = [X, op("x1", "split", "x", dim=1, parts=2, index=0), op("x2", "split", "x", dim=1, parts=2, index=1),
           conv("c", "x2", out=4, inp=4), op("cat", "concat", "x1", "c", channel_concat=True)]
    view = GraphView(ops)
    assert view.node("x1").channels == 4 and view.node("cat").channels == 8


@pytest.mark.parametrize("attrs, sizes", [
    ({"parts": 3}, [3, 3, 2]),            # torch.chunk(3) on 8 channels: ceil(8 / 3) = 3, last smaller
    ({"step": 5}, [5, 3, None]),          # torch.split(x, 5): 5, then the remaining 3; no third part
    ({"sizes": (2, 6)}, [2, 6, None]),    # torch.split(x, [2, 6]) / ONNX Split with sizes
])
def test_each_part_of_a_channel_split_has_its_own_size(attrs, sizes):
    ops = [X] + [op(f"p{k}", "split", "x", dim=1, index=k, **attrs) for k in range(3)]
    view = GraphView(ops)
    assert [view.node(f"p{k}").channels for k in range(3)] == sizes


def test_a_split_along_another_dim_is_not_a_known_feature_map():
    view = GraphView([X, op("p", "split", "x", dim=2, parts=2, index=0)])
    assert not view.is_feature_map("p")




def test_strided_slices_of_one_map_share_a_new_origin():
    """YOLOv5's Focus: four `x[..., a::2, b::2]` slices concatenated; their resolution is one, but unknown
    relative to the input (no shapes), so the convs after it count from there."""
    import torch.nn as nn

    from seinject.torch.view import build_view

    class Focus(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.down = nn.Conv2d(12, 8, 3, padding=1), nn.Conv2d(8, 8, 3, 2, 1)

        def forward(self, x):
            x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)
            return self.down(self.conv(x))

    view = build_view(Focus()).view
    by_name = {view.node(n).name: view.node(n) for n in view.nodes()}
    assert by_name["cat"].origin == by_name["conv"].origin != by_name["x"].origin
    assert by_name["down"].level - by_name["conv"].level == 2
