"""The ONNX graph view: op kinds and facts, constants, shape arithmetic, fused activations, names, SE blocks."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import seinject.onnx as so
from seinject.errors import SEInjectWarning
from seinject.onnx.names import Scope, readable_names, scope_of
from seinject.onnx.view import build_view
from tests.onnx_backend.graphs import Builder, max_diff, residual_net, tensor, text_model


def kinds(model) -> dict[str, tuple[str, dict]]:
    view = build_view(model).view
    return {view.node(n).name: (view.node(n).kind, view.node(n).attrs) for n in view.nodes()}


def test_op_kinds_and_facts():
    b = Builder()
    dw = b.conv("x", 8, 8, groups=8, name="dw", stride=2)
    six = b.op("Clip", [dw, b.const(0.0), b.const(6.0)], name="relu6")
    up = b.op("ConvTranspose", [six, b.const(np.zeros((8, 4, 2, 2)))], name="up", strides=[2, 2])
    pooled = b.op("ReduceMean", [up], name="mean", axes=[2, 3], keepdims=1)
    cat = b.op("Concat", [pooled, pooled], name="cat", axis=-3)
    flat = b.op("Flatten", [cat], name="flat")
    b.op("MatMul", [flat, b.const(np.zeros((8, 3)))], name="fc")
    got = kinds(b.model([tensor("x", ["N", 8, 16, 16])], [tensor("fc", None)], opset=13))
    assert got["dw"][0] == "conv" and got["dw"][1]["groups"] == 8 and got["dw"][1]["stride"] == (2, 2)
    assert got["relu6"] == ("act", {"op_type": "Clip", "fn": "relu6"})
    assert got["up"][1]["out_channels"] == 4 and got["up"][1]["transposed"]
    assert got["mean"][0] == "pool"
    assert got["cat"][1]["channel_concat"]
    assert got["flat"][0] == "reshape" and got["fc"][0] == "linear"
    view = build_view(b.model([tensor("x", ["N", 8, 16, 16])], [tensor("fc", None)], opset=13)).view
    assert view.node("dw").depthwise and view.node("cat").channels == 8


def test_weights_through_constant_and_identity_nodes():
    model = text_model('''
      g (float[N, 2, 4, 4] x) => (float[N, 3, 4, 4] y) <float[3, 2, 1, 1] w0 = {1, 2, 3, 4, 5, 6}> {
        w1 = Constant <value = float[2, 2, 1, 1] {1, 0, 0, 1}> ()
        a = Conv(x, w1)
        w2 = Identity(w0)
        y = Conv(a, w2)
      }''')
    view = build_view(model).view
    assert view.node("a").channels == 2 and view.node("y").channels == 3
    assert [view.node(n).kind for n in view.nodes()] == ["input", "conv", "conv"]


def test_shape_arithmetic_is_not_data():
    """x → relu feeds both a conv and a Shape/Gather/Concat/Reshape chain: still a single-use chain."""
    model = text_model('''
      g (float[N, 2, 4, 4] x) => (float[N, 32] y) <float[2, 2, 1, 1] w = {1, 0, 0, 1}, int64[1] minus = {-1}> {
        c = Conv(x, w)
        r = Relu(c)
        s = Shape(r)
        n = Gather <axis = 0> (s, zero)
        zero = Constant <value = int64 {0}> ()
        n1 = Unsqueeze(n, axes)
        axes = Constant <value = int64[1] {0}> ()
        shape = Concat <axis = 0> (n1, minus)
        y = Reshape(r, shape)
      }''')
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)  # nodes out of order on purpose: seinject sorts them
    view = build_view(model).view
    assert [view.node(n).kind for n in view.nodes()] == ["input", "conv", "act", "reshape"]
    assert [s.name for s in so.plan(model, "conv_block")] == ["r"]
    new = so.apply(model, "conv_block")
    onnx.checker.check_model(new, full_check=True)


@pytest.mark.parametrize("gate, fn", [("Sigmoid", "silu"), ("HardSigmoid", "hardswish")])
def test_x_times_gate_of_x_is_one_activation(gate, fn):
    b = Builder()
    c = b.conv("x", 4, 4, name="c")
    attrs = {"alpha": 1 / 6, "beta": 0.5} if gate == "HardSigmoid" else {}
    g = b.op(gate, [c], name="g", **attrs)
    y = b.op("Mul", [c, g], name="act")
    model = b.model([tensor("x", ["N", 4, 8, 8])], [tensor(y, None)])
    got = kinds(model)
    assert got["act"] == ("act", {"op_type": "Mul", "fn": fn}) and "g" not in got
    new = so.apply(model, "conv_block", min_channels=1)
    x = np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32)
    assert max_diff(model, new, x) == 0.0
    assert [n.name for n in new.graph.node][-1] == "seinject/act/scale"  # graph output keeps its name
    assert new.graph.output[0].name == "act"


def test_dynamo_and_legacy_scopes():
    legacy = helper.make_node("Relu", ["a"], ["b"], name="/layer2/layer2.0/downsample/downsample.0/Conv")
    assert scope_of(legacy).path == "layer2.0.downsample.0"
    dynamo = helper.make_node("Relu", ["a"], ["b"], name="node_relu_2")
    entry = dynamo.metadata_props.add()
    entry.key, entry.value = "pkg.torch.onnx.name_scopes", "['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_2']"
    assert scope_of(dynamo) == Scope("layer1.0.relu", "relu_2", "Relu", "node_relu_2")
    namespace = helper.make_node("Add", ["a", "b"], ["c"], name="node_add_7")
    entry = namespace.metadata_props.add()
    entry.key, entry.value = "namespace", ": m.Net/layer1: Seq/layer1.0: m.Block/add_7: aten.add.Tensor"
    assert scope_of(namespace).path == "layer1.0"
    names = readable_names([Scope("b.relu", "relu_1", "Relu", "r1"), Scope("b.conv", "conv", "Conv", "c"),
                            Scope("b.relu", "relu_2", "Relu", "r2"), Scope("b", "add_3", "Add", "a"),
                            Scope("", "cat", "Concat", "x")])
    assert names == ["b.relu", "b.conv", "b.relu_1", "b.add", "cat"]


def test_inserted_blocks_are_one_se_op_each():
    model = residual_net(blocks=3)
    new = so.apply(model, "residual_branch")
    view = build_view(new).view
    se = [n for n in view.nodes() if view.node(n).kind == "se"]
    assert [view.node(n).name for n in se] == [f"seinject/b{i}.convB" for i in range(3)]
    assert [view.inputs(n) for n in se] == [[f"b{i}.convB"] for i in range(3)]
    assert all(view.node(f"b{i}.add").residual for i in range(3))
    tagged = [n for n in new.graph.node if n.name.startswith("seinject/b0.convB/")]
    assert {p.key: p.value for p in tagged[0].metadata_props} == {
        "seinject.block": "seinject/b0.convB", "seinject.role": "squeeze"}
    initializers = sorted(t.name for t in new.graph.initializer if t.name.startswith("seinject/b0.convB/"))
    assert initializers == [f"seinject/b0.convB/{n}" for n in ("fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight",
                                                                 "finite.max", "finite.min", "finite.zero", "gain")]


def test_value_read_inside_a_subgraph_is_skipped():
    b = Builder()
    r = b.op("Relu", [b.conv("x", 4, 4, name="c")], name="r")
    then = helper.make_graph([helper.make_node("Identity", [r], ["t"])], "then", [], [tensor("t", None)])
    other = helper.make_graph([helper.make_node("Identity", [r], ["e"])], "else", [], [tensor("e", None)])
    cond = b.const(np.array(True), "cond", dtype=np.bool_)
    b.nodes.append(helper.make_node("If", [cond], ["y"], name="if", then_branch=then, else_branch=other))
    model = b.model([tensor("x", ["N", 4, 8, 8])], [tensor("y", None)])
    with pytest.warns(SEInjectWarning, match="inserted no SE block"):
        new, report = so.apply(model, "conv_block", return_report=True)
    assert not report.inserted
    assert [(s.name, s.reason) for s in report.skipped] == [
        ("r", "the value is read inside a control-flow subgraph (If/Loop/Scan)")]


def test_blocks_recognised_by_name_when_metadata_is_dropped():
    """onnx-graphsurgeon drops node metadata; the block names still identify the inserted nodes."""
    gs = pytest.importorskip("onnx_graphsurgeon")
    graph = so.apply(gs.import_onnx(residual_net()), "after_residual")
    model = gs.export_onnx(graph)
    assert not any(len(n.metadata_props) for n in model.graph.node)
    plan = so.plan(model, "after_residual")
    assert len(plan) == 0 and {s.reason for s in plan.skipped} == {"already has SE"}
