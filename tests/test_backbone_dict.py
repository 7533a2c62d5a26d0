"""Backbones in torchvision's detection style: a ResNet body wrapped by an IntermediateLayerGetter
that returns an OrderedDict of stage outputs, read by an FPN-like head (built here, no torchvision).

seinject goes into the body alone (`model.body = seinject.apply(model.body, ...)`, as a user puts SE
into `detector.backbone.body`) or into body + FPN; every dict entry must stay exactly equal in eval
and train mode, training only the marked SE parameters must move the outputs, and save/load must
bring the trained blocks back. The FPN (like torchvision's) iterates its dict, so it is left out,
and a pooler caches a value on its first forward (like torchvision's MultiScaleRoIAlign.scales):
tracing must not leave torch.fx proxies in that cache.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import seinject
from tests.models.control_flow import ResidualBlock as BasicBlock  # torchvision's, out += identity

RULES = ["after_residual", "residual_branch"]
BLOCKS = 6  # 3 stages x 2 residual blocks
pytestmark = pytest.mark.usefixtures("one_thread")


class ResNet(nn.Module):
    def __init__(self, widths=(8, 16, 32)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, width, stride), BasicBlock(width, width)))
            cin = width
        self.fc = nn.Linear(cin, 10)  # dropped by the getter, as in torchvision


class IntermediateLayerGetter(nn.ModuleDict):
    """torchvision.models._utils.IntermediateLayerGetter: the children up to the last returned one,
    run in order; returns an OrderedDict {new name: output} of the chosen ones."""

    def __init__(self, model: nn.Module, return_layers: dict[str, str]):
        wanted = dict(return_layers)
        layers = OrderedDict()
        for name, module in model.named_children():
            layers[name] = module
            wanted.pop(name, None)
            if not wanted:
                break
        super().__init__(layers)
        self.return_layers = dict(return_layers)

    def forward(self, x):
        out = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class FPN(nn.Module):
    """torchvision's FeaturePyramidNetwork in small: lateral 1x1 convs, top-down nearest upsampling
    and adds, 3x3 output convs. Like torchvision's, it iterates its input dict (not fx-traceable)."""

    def __init__(self, in_channels: list[int], out_channels: int = 8):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.layer_blocks = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def forward(self, x: "OrderedDict[str, torch.Tensor]"):
        names = list(x.keys())
        feats = list(x.values())
        last = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last)]
        for idx in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[idx](feats[idx])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[idx](last))
        return OrderedDict(zip(names, results))


class BackboneWithFPN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = IntermediateLayerGetter(ResNet(), {"layer1": "0", "layer2": "1", "layer3": "2"})
        self.fpn = FPN([8, 16, 32])

    def forward(self, x):
        return self.fpn(self.body(x))


class Pooler(nn.Module):
    """Pools each level; caches per-level scales on its first forward, as MultiScaleRoIAlign does."""

    def __init__(self):
        super().__init__()
        self.scales = None

    def forward(self, features: "OrderedDict[str, torch.Tensor]", image: torch.Tensor):
        levels = [features[k] for k in ("0", "1", "2")]
        if self.scales is None:
            self.scales = [level.shape[-1] / image.shape[-1] for level in levels]
        return torch.cat([F.adaptive_avg_pool2d(level, 2).flatten(1) * scale
                          for level, scale in zip(levels, self.scales)], dim=1)


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = BackboneWithFPN()
        self.pooler = Pooler()
        self.head = nn.Linear(3 * 8 * 4, 5)

    def forward(self, image):
        return self.head(self.pooler(self.backbone(image), image))


def make_backbone() -> BackboneWithFPN:
    torch.manual_seed(0)
    model = BackboneWithFPN()
    for module in model.modules():  # non-trivial BatchNorm state, so that identity is not luck
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return model


X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def rewritten(model: BackboneWithFPN, rule: str, target: str) -> tuple[BackboneWithFPN, nn.Module]:
    """(the whole model with SE, the module apply rewrote); `model` is not changed."""
    new = copy.deepcopy(model)
    if target == "body":
        new.body = seinject.apply(new.body, rule=rule, example_inputs=(X,))
        return new, new.body
    new = seinject.apply(new, rule=rule, example_inputs=(X,))
    return new, new


def run(model: nn.Module, training: bool) -> "OrderedDict[str, torch.Tensor]":
    """Every dict entry of body and FPN outputs, in the given mode (the model's mode is restored)."""
    was = model.training
    model.train(training)
    with torch.no_grad():
        body = model.body(X)
        out = OrderedDict((f"body.{k}", v) for k, v in body.items())
        out.update((f"fpn.{k}", v) for k, v in model.fpn(body).items())
    model.train(was)
    return out


def assert_equal(a: "OrderedDict[str, torch.Tensor]", b: "OrderedDict[str, torch.Tensor]") -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key}: max |Δ| = {float((a[key] - b[key]).abs().max())}"


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("target", ["body", "backbone"])
def test_sites_and_exact_outputs_in_eval_and_train(rule, target):
    plain = make_backbone()
    new, module = rewritten(plain, rule, target)
    report = seinject.report(module)
    assert len(report.inserted) == BLOCKS
    prefix = "" if target == "body" else "body."
    assert all(block.module.startswith(tuple(f"{prefix}layer{i}." for i in (1, 2, 3))) for block in report.inserted)
    assert report.verified and report.max_abs_diff == 0.0
    assert isinstance(new.body, IntermediateLayerGetter) and isinstance(new, BackboneWithFPN)  # classes kept
    if target == "backbone":  # the FPN iterates its dict: left out, kept as it is, no block in it
        assert [part.name for part in report.left_out] == ["fpn"]
        assert not any(name.startswith("fpn") for name, _ in seinject.se_modules(new))
        assert type(new.fpn) is FPN
    assert_equal(run(plain, False), run(new, False))
    # train mode: batch statistics, and the running statistics move the same way in both
    assert_equal(run(plain, True), run(new, True))
    buffers = dict(new.named_buffers())
    assert all(torch.equal(t, buffers[k]) for k, t in plain.named_buffers())
    assert_equal(run(plain, False), run(new, False))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("target", ["body", "backbone"])
def test_training_only_the_marked_blocks_then_save_and_load(rule, target, tmp_path):
    plain = make_backbone()
    new, module = rewritten(plain, rule, target)
    summary = seinject.mark_trainable(new, freeze_norm_stats=True)
    se_params = [p for _, p in seinject.se_parameters(new)]
    assert summary.trainable == sum(p.numel() for p in se_params) > 0
    assert {id(p) for p in new.parameters() if p.requires_grad} == {id(p) for p in se_params}
    frozen = {k: v.clone() for k, v in new.state_dict().items() if ".se." not in k}
    optimizer = torch.optim.SGD([p for p in new.parameters() if p.requires_grad], lr=0.5)
    new.train()
    for _ in range(2):  # fc2 moves on the first step, fc1 from the second
        optimizer.zero_grad()
        out = new(X)
        sum(v.square().mean() for v in out.values()).backward()
        optimizer.step()
    assert all(block.fc2.weight.grad.abs().sum() > 0 for _, block in seinject.se_modules(new))
    assert not any(block.is_identity() for _, block in seinject.se_modules(new))
    state = new.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in frozen.items())  # weights and BatchNorm stats kept
    trained = run(new, False)
    assert any(not torch.equal(a, b) for a, b in zip(trained.values(), run(plain, False).values()))

    path = seinject.save(module, tmp_path / "se.safetensors")
    fresh = copy.deepcopy(plain)
    if target == "body":
        fresh.body = seinject.load(fresh.body, path)
    else:
        fresh = seinject.load(fresh, path)
    assert sorted(seinject.state_dict(fresh)) == sorted(seinject.state_dict(new))
    assert_equal(trained, run(fresh, False))


def test_lazily_cached_attributes_keep_real_values():
    """A module that caches on self in its first forward (MultiScaleRoIAlign.scales) is traced by
    plan and apply: the cache must not keep the tracer's proxies (or fake tensors from the shape pass)."""
    torch.manual_seed(0)
    detector = Detector().eval()
    reference = copy.deepcopy(detector)
    with torch.no_grad():
        expected = reference(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seinject.SEInjectWarning)
        seinject.plan(detector, rule="after_residual")                         # "changes nothing"
        seinject.plan(detector, rule="after_residual", example_inputs=(X,))  # nor does its shape pass
    assert detector.pooler.scales is None
    new = seinject.apply(detector, rule="after_residual")  # never run before: the cache is empty
    assert new.pooler.scales is None
    assert len(seinject.report(new)) == BLOCKS
    with torch.no_grad():
        got = new(X)
    assert isinstance(got, torch.Tensor) and torch.equal(got, expected)
    assert new.pooler.scales == reference.pooler.scales
