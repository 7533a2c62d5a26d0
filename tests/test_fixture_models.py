"""Sanity tests for the fixture model zoo in tests/models (builds, forward passes, fx-traceability expectations)."""

import sys
from pathlib import Path

import pytest
import torch
import torch.fx
import torch.nn as nn

_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.models import (  # noqa: E402
    ALL_FIXTURES,
    UNTRACEABLE_FIXTURES,
    DataDependentNet,
    GatedResidualBlock,
    ResidualBlock,
    UntraceableBlockNet,
    functional_resnet,
    resnet50,
    resnet_deep,
    resnet_tiny,
)
from tests.models.resnet import BasicBlock, Bottleneck  # noqa: E402


def _check_output(out: torch.Tensor, batch: int) -> None:
    assert isinstance(out, torch.Tensor)
    assert out.shape[0] == batch
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(ALL_FIXTURES))
def test_fixture_forward_eval_and_train(name):
    builder, shape = ALL_FIXTURES[name]
    torch.manual_seed(0)
    model = builder()
    x = torch.randn(*shape)

    model.eval()
    with torch.no_grad():
        _check_output(model(x), shape[0])

    model.train()
    out = model(x)
    _check_output(out, shape[0])
    out.sum().backward()


@pytest.mark.parametrize("name", sorted(set(ALL_FIXTURES) - set(UNTRACEABLE_FIXTURES)))
def test_traceable_fixtures_trace_and_match(name):
    builder, shape = ALL_FIXTURES[name]
    torch.manual_seed(0)
    model = builder().eval()
    gm = torch.fx.symbolic_trace(model)
    x = torch.randn(*shape)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))


def test_resnet50_parameter_count():
    model = resnet50()
    assert sum(p.numel() for p in model.parameters()) == 25_557_032


def test_resnet_torchvision_layout_and_extras():
    model = resnet_tiny("bottleneck").eval()
    assert model.custom_tag == "resnet"
    blk = model.layer2[0]
    assert isinstance(blk, Bottleneck)
    assert blk.conv2.stride == (2, 2) and blk.conv1.stride == (1, 1)  # v1.5
    assert isinstance(blk.downsample, nn.Sequential) and len(blk.downsample) == 2
    assert isinstance(blk.relu, nn.ReLU) and blk.relu.inplace
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
    assert feats.shape == (2, 8 * 8 * 4, 1, 1)
    basic = resnet_tiny("basic")
    assert isinstance(basic.layer1[0], BasicBlock) and basic.layer1[0].downsample is None


def test_resnet_deep_builds_1000_blocks():
    model = resnet_deep(1000)
    assert len(model.blocks) == 1000
    assert all(isinstance(b, BasicBlock) and b.downsample is None for b in model.blocks)
    model.eval()
    with torch.no_grad():
        _check_output(model(torch.randn(1, 3, 4, 4)), 1)


@pytest.mark.parametrize("cls", [DataDependentNet, UntraceableBlockNet])
def test_control_flow_models_untraceable_but_blocks_traceable(cls):
    torch.manual_seed(0)
    model = cls().eval()
    with pytest.raises(Exception):
        torch.fx.symbolic_trace(model)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) >= 2
    for blk in blocks:
        gm = torch.fx.symbolic_trace(blk)
        x = torch.randn(2, blk.conv1.in_channels, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(gm(x), blk(x))


def test_gated_block_untraceable_and_leaf_tracing_works():
    model = UntraceableBlockNet().eval()
    with pytest.raises(Exception):
        torch.fx.symbolic_trace(model.gated)

    class _Leaf(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, GatedResidualBlock) or super().is_leaf_module(m, qualname)

    graph = _Leaf().trace(model)
    gm = torch.fx.GraphModule(model, graph)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))


def test_data_dependent_net_takes_both_branches():
    model = DataDependentNet().eval()
    x = torch.randn(2, 3, 32, 32).abs()
    calls = []
    hooks = [
        model.block_a.register_forward_hook(lambda *a: calls.append("a")),
        model.block_b.register_forward_hook(lambda *a: calls.append("b")),
    ]
    with torch.no_grad():
        model(x)
        model(-x)
    for h in hooks:
        h.remove()
    assert calls == ["a", "b"]


def test_functional_resnet_shapes():
    model = functional_resnet()
    assert isinstance(model.b2_conv1_weight, nn.Parameter)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 1
    gm = torch.fx.symbolic_trace(model)
    act_calls = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == "act"]
    assert len(act_calls) == 5
