"""apply(verify=...): the torch backend checks its own identity promise on example inputs."""

import copy

import pytest
import torch
from torch import nn

import seinject
from seinject.errors import ConfigError, UsageError, VerificationError
from seinject.torch.block import SqueezeExcite
from tests.helpers import build

X = torch.randn(2, 3, 32, 32)


def test_verified_by_default_when_example_inputs_are_given():
    net = build("resnet_tiny")[0]
    new = seinject.apply(net, "after_residual", example_inputs=X)
    report = seinject.report(new)
    assert report.verified is True and report.max_abs_diff == 0.0
    assert "verified: max |new - old| = 0" in report.verification_line()
    assert seinject.report(seinject.apply(net, "after_residual")).verified is None  # nothing to run on


def test_verify_true_needs_inputs_and_false_skips():
    net = build("resnet_tiny")[0]
    with pytest.raises(UsageError, match="give example_inputs="):
        seinject.apply(net, "after_residual", verify=True)
    with pytest.raises(ConfigError, match="verify must be True, False or None"):
        seinject.apply(net, "after_residual", verify="yes", example_inputs=X)
    assert seinject.report(seinject.apply(net, "after_residual", verify=False, example_inputs=X)).verified is None


def test_training_flags_are_kept_by_verification():
    net = build("resnet_tiny")[0].train()
    new = seinject.apply(net, "after_residual", example_inputs=X)
    assert net.training and new.training and all(m.training for m in new.modules())


@pytest.mark.parametrize("inplace", [False, True])
def test_a_block_that_is_not_identity_is_caught_and_an_inplace_model_restored(monkeypatch, inplace):
    net = build("resnet_tiny")[0].eval()
    keys, before = list(net.state_dict()), net(X)
    monkeypatch.setattr(SqueezeExcite, "forward", lambda self, x: x * 1.5)
    with pytest.raises(VerificationError, match=r"output 0 differs .*max \|new - old\| = "):
        seinject.apply(net, "after_residual", example_inputs=X, inplace=inplace)
    assert list(net.state_dict()) == keys and seinject.se_modules(net) == []
    assert torch.equal(net(X), before)


def test_random_init_is_run_but_not_required_to_match():
    new = seinject.apply(build("resnet_tiny")[0], "after_residual", init="random", example_inputs=X)
    report = seinject.report(new)
    assert report.verified is True and report.max_abs_diff > 0 and "differ by design" in report.verify_note


def test_outputs_in_nested_structures_are_all_compared(monkeypatch):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())

        def forward(self, x):
            y = self.body(x)
            return {"features": [y], "pooled": y.mean((2, 3))}

    new = seinject.apply(TwoHeads(), "conv_block", example_inputs=X)
    assert seinject.report(new).verified
    monkeypatch.setattr(SqueezeExcite, "forward", lambda self, x: x + 1)
    with pytest.raises(VerificationError, match="output 0 differs"):
        seinject.apply(TwoHeads(), "conv_block", example_inputs=X)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_near_the_largest_value_passes_exact_verification(dtype):
    """The squeezed map overflows inside the block; verification demands exact equality anyway."""
    largest = torch.finfo(dtype).max
    conv = nn.Conv2d(3, 8, 3, padding=1)
    nn.init.constant_(conv.weight, largest / 30)
    nn.init.zeros_(conv.bias)
    net = nn.Sequential(conv, nn.BatchNorm2d(8), nn.ReLU()).to(dtype).eval()
    x = torch.ones(2, 3, 8, 8, dtype=dtype)
    assert net(x).max() > largest / 2
    new = seinject.apply(copy.deepcopy(net), "conv_block", ratio=2, example_inputs=x)
    assert seinject.report(new).verified and seinject.report(new).max_abs_diff == 0.0
