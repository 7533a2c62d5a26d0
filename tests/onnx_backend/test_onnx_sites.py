"""Per built-in rule, the sites in ONNX exports of the fixture models (both exporters) equal the torch backend's."""

from __future__ import annotations

import warnings

import pytest

import seinject
import seinject.onnx as so
from tests.models import ALL_FIXTURES
from tests.onnx_backend.expected import DYNAMO_DIFFERS, EXPECTED, RULES

def _counts(path) -> tuple[int, ...]:
    return tuple(len(so.plan(path, rule)) for rule in RULES)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sites_per_rule_match_expected(exported, name, exporter):
    expected = list(EXPECTED[name])
    for (fixture, rule), count in DYNAMO_DIFFERS.items():
        if exporter == "dynamo" and fixture == name:
            expected[RULES.index(rule)] = count
    assert _counts(exported(name, exporter)) == tuple(expected)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name, count", [("resnet18", 8), ("resnet50", 16)])
def test_after_residual_same_sites_as_torch_module(exported, name, exporter, count):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_sites = [s.name for s in seinject.plan(ALL_FIXTURES[name][0](), rule="after_residual")]
    onnx_sites = [s.name for s in so.plan(exported(name, exporter), rule="after_residual")]
    assert len(onnx_sites) == count
    assert onnx_sites == torch_sites  # module paths recovered from both exporters' names


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_module_paths_recovered_for_include_filters(exported, exporter):
    path = exported("resnet18", exporter)
    names = [s.name for s in so.plan(path, "residual_branch", include="layer3")]
    # both exporters fold bn2 into conv2 in eval mode; the site takes the conv's name in both
    assert names == ["layer3.0.conv2", "layer3.1.conv2"]
    assert [s.name for s in so.plan(path, "after_residual", stages=[4])] == ["layer4.0.relu_1", "layer4.1.relu_1"]
    assert len(so.plan(path, "after_residual", exclude=["layer1", "layer2"])) == 4


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_inverted_residual_names_and_channels(exported, exporter):
    plan = so.plan(exported("efficientnet_tiny", exporter), "inverted_residual")
    assert [(s.name, s.channels, s.hidden) for s in plan] == [
        ("features.1.depthwise.2", 16, 4), ("features.2.depthwise.2", 48, 12),
        ("features.3.depthwise.2", 72, 18), ("features.4.depthwise.2", 72, 18),
        ("features.5.depthwise.2", 96, 24)]


def test_resnet50_paper_parameter_count(exported):
    """residual_branch with r=16, divisor 8 on ResNet-50: the SENet paper's +2,530,992 parameters."""
    plan = so.plan(exported("resnet50", "dynamo"), "residual_branch", ratio=16, divisor=8)
    assert plan.added_params == 28_088_024 - 25_557_032


def test_opset11_legacy_export(exported):
    path = exported("resnet_tiny", "legacy", opset=11)
    assert [s.name for s in so.plan(path)] == [f"layer{i}.0.relu_1" for i in range(1, 5)]
