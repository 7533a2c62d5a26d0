"""At init="identity" the rewritten model computes what the original did (onnxruntime), for every fixture,
both exporters, dynamic shapes, opsets 11+, 1d/2d/3d; the ONNX SE block equals the torch SqueezeExcite."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import seinject.onnx as so
from seinject.torch.block import SqueezeExcite
from seinject.rule.config import SEConfig
from tests.onnx_backend.expected import EXPECTED, RULES
from tests.onnx_backend.graphs import max_diff, residual_net, run

TOL = 1e-6


def _input(name: str, batch: int = 2) -> np.ndarray:
    from tests.models import ALL_FIXTURES

    shape = ALL_FIXTURES[name][1]
    return np.random.default_rng(0).standard_normal((batch,) + shape[1:]).astype(np.float32)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_identity_every_rule_every_fixture(exported, name, exporter):
    path = exported(name, exporter)
    original = onnx.load(path)
    x = _input(name)
    reference = run(original, x)
    for rule, count in zip(RULES, EXPECTED[name]):
        if not count:
            continue
        new, report = so.apply(original, rule, return_report=True)
        assert len(report.inserted) >= 1
        onnx.checker.check_model(new, full_check=True)
        diff = max(float(np.abs(p - q).max()) for p, q in zip(reference, run(new, x)))
        assert diff <= TOL, rule


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_dynamic_batch_and_spatial(exported, exporter):
    original = onnx.load(exported("resnet_tiny", exporter, dynamic=True))
    new = so.apply(original, "residual_branch")
    for shape in [(1, 3, 32, 32), (3, 3, 48, 40), (5, 3, 17, 23)]:
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        assert max_diff(original, new, x) <= TOL


def test_identity_also_at_full_ort_optimization(exported):
    """At ORT_ENABLE_ALL onnxruntime fuses kernels differently around the new Mul: rounding only."""
    original = onnx.load(exported("resnet18", "legacy"))
    new = so.apply(original, "residual_branch")
    x = _input("resnet18")
    full = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    old_out, new_out = run(original, x, full)[0], run(new, x, full)[0]
    np.testing.assert_allclose(new_out, old_out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [11, 13, 14, 17, 20, 21])
@pytest.mark.parametrize("act", ["relu", "relu6", "silu", "gelu", "hardswish"])
def test_opsets_and_activations(opset, act):
    original = residual_net(opset=opset)
    new = so.apply(original, "residual_branch", act=act, gate="hard_sigmoid" if act == "relu6" else "sigmoid")
    onnx.checker.check_model(new, full_check=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 7)).astype(np.float32)
    assert max_diff(original, new, x) == 0.0
    ops = {n.op_type for n in new.graph.node if n.name.startswith("seinject/")}
    assert "GlobalAveragePool" in ops and "ReduceMean" not in ops
    if act == "gelu":
        assert ("Gelu" in ops) == (opset >= 20)
    if act == "hardswish":
        assert ("HardSwish" in ops) == (opset >= 14)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_1d_2d_3d(rank):
    original = residual_net(rank=rank, spatial=6)
    new, report = so.apply(original, "after_residual", return_report=True)
    assert [block.site.name for block in report.inserted] == ["b0.act", "b1.act"]
    weight = next(t for t in new.graph.initializer if t.name == "seinject/b0.act/fc1.weight")
    assert list(weight.dims) == [1, 8] + [1] * rank
    x = np.random.default_rng(0).standard_normal((2, 3) + (6,) * rank).astype(np.float32)
    assert max_diff(original, new, x) == 0.0


@pytest.mark.parametrize("act, gate", [("relu", "sigmoid"), ("silu", "hardsigmoid"), ("gelu", "sigmoid"),
                                       ("relu6", "sigmoid"), ("hardswish", "hardsigmoid"),
                                       ("hard_swish", "hard_sigmoid")])  # the old spellings, as aliases
@pytest.mark.parametrize("init", ["identity", "random"])
def test_onnx_block_equals_torch_block(act, gate, init):
    """Copy the ONNX block's weights into seinject.torch.block.SqueezeExcite: same outputs."""
    from onnx import numpy_helper

    from seinject.onnx.block import build_se

    config = SEConfig(ratio=4, act=act, gate=gate, init=init)
    block = build_se("se", "x", 16, 2, config, opset=17, seed=3)
    graph = onnx.helper.make_graph(block.nodes, "g", [onnx.helper.make_tensor_value_info("x", 1, ["N", 16, "H", "W"])],
                                   [onnx.helper.make_tensor_value_info(block.output, 1, None)],
                                   initializer=block.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    weights = {t.name.split("/")[-1]: numpy_helper.to_array(t) for t in block.initializers}
    torch_block = SqueezeExcite(16, config).eval()
    with torch.no_grad():
        torch_block.fc1.weight.copy_(torch.from_numpy(weights["fc1.weight"].reshape(4, 16).copy()))
        torch_block.fc1.bias.copy_(torch.from_numpy(weights["fc1.bias"].copy()))
        torch_block.fc2.weight.copy_(torch.from_numpy(weights["fc2.weight"].reshape(16, 4).copy()))
        torch_block.fc2.bias.copy_(torch.from_numpy(weights["fc2.bias"].copy()))
    x = np.random.default_rng(0).standard_normal((2, 16, 5, 5)).astype(np.float32)
    expected = torch_block(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(run(model, x)[0], expected, rtol=1e-5, atol=1e-6)
    if init == "identity":
        assert np.array_equal(run(model, x)[0], x)
    else:
        assert not np.allclose(run(model, x)[0], x)


def test_random_init_is_seeded_and_changes_outputs():
    original = residual_net()
    a = so.apply(original, "after_residual", init="random", seed=1)
    b = so.apply(original, "after_residual", init="random", seed=1)
    c = so.apply(original, "after_residual", init="random", seed=2)
    assert a.SerializeToString() == b.SerializeToString() != c.SerializeToString()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert max_diff(original, a, x) > 1e-3
    assert not any(n.op_type == "Mul" and n.name.endswith("/gain") for n in a.graph.node)
