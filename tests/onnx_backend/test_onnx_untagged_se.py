"""SE blocks without seinject's tags count as "already has SE" in ONNX, as their modules do in torch:
a seinject-rewritten model after torch.onnx.export, torchvision- and timm-style SE modules; and look-alikes
that are not SE (x·sigmoid(x), a gate without a global pool) do not."""

import contextlib
import io
import warnings

import onnx
import pytest
import torch
from torch import nn

import seinject
import seinject.onnx as so
from tests.helpers import build


def to_onnx(model: nn.Module, x: torch.Tensor, exporter: str) -> onnx.ModelProto:
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            return torch.onnx.export(model.eval(), (x,), dynamo=True).model_proto
        buffer = io.BytesIO()
        torch.onnx.export(model.eval(), (x,), buffer, dynamo=False, opset_version=17)
        return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("rule", ["after_residual", "residual_branch", "conv_block"])
def test_an_exported_rewritten_model_gets_no_second_set_of_blocks(rule, exporter):
    net, x = build("resnet_tiny")
    new = seinject.apply(net.eval(), rule)
    plan = so.plan(to_onnx(new, x, exporter), rule)
    assert len(plan) == 0
    assert [s.reason for s in plan.skipped] == ["already has SE"] * len(seinject.report(new))


class SqueezeExcitation(nn.Module):  # the class name torch-side recognition knows
    """torchvision.ops.SqueezeExcitation: pool → 1×1 conv → ReLU → 1×1 conv → hard-sigmoid or sigmoid → scale."""

    def __init__(self, channels, hidden, gate):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(channels, hidden, 1), nn.Conv2d(hidden, channels, 1)
        self.activation, self.scale_activation = nn.ReLU(), gate

    def forward(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class EffectiveSEModule(nn.Module):
    """timm's EffectiveSEModule: x · hard_sigmoid(conv(mean(x)))."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * nn.functional.hardsigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class SpatialGate(nn.Module):
    """Not SE: the gate has no global pool (a spatial attention map)."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, 1, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x))


class Net(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU()
        self.attention = attention

    def forward(self, x):
        return self.attention(self.act(self.bn(self.conv(x))))


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("attention,is_se", [
    (SqueezeExcitation(8, 2, nn.Hardsigmoid()), True), (SqueezeExcitation(8, 2, nn.Sigmoid()), True),
    (EffectiveSEModule(8), True), (SpatialGate(8), False), (nn.Identity(), False),
], ids=["torchvision-hardsigmoid", "torchvision-sigmoid", "timm-effective", "spatial-gate", "none"])
def test_foreign_se_modules_count_as_se_in_both_backends(attention, is_se, exporter):
    net, x = Net(attention).eval(), torch.randn(2, 3, 8, 8)
    model = to_onnx(net, x, exporter)
    onnx_plan = so.plan(model, "conv_block")
    torch_plan = seinject.plan(net, "conv_block")
    expected = ["already has SE"] if is_se else []
    assert [s.reason for s in onnx_plan.skipped] == expected, onnx_plan.skipped
    # SiLU written as x·sigmoid(x) is an activation, not an SE gate: without SE its output is a site
    assert ("act" in [s.name for s in onnx_plan]) != is_se
    if not isinstance(attention, SpatialGate):  # torch sees only modules it knows by class
        assert [s.reason for s in torch_plan.skipped] == [s.reason for s in onnx_plan.skipped]
