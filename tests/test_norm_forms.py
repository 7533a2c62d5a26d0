"""Norms written in other forms are still the norm of a conv → norm → act chain: a channels-last
LayerNorm between two permutes inside a norm-act module (timm's LayerNormAct2d), and a norm with its
activation in one module (timm's EvoNorm2d*, by class name)."""

import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import seinject
import seinject.onnx as so
from tests.onnx_backend.graphs import max_diff


class LayerNormAct2d(nn.LayerNorm):
    """timm's LayerNormAct2d as written there: permute to channels-last, layer_norm, permute back, act."""

    def __init__(self, c: int):
        super().__init__(c)
        self.drop, self.act = nn.Identity(), nn.ReLU()

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return self.act(self.drop(x.permute(0, 3, 1, 2)))


class EvoNorm2dS0(nn.Module):
    """timm's EvoNorm2dS0: x·sigmoid(v·x) over a group standard deviation, then the affine."""

    def __init__(self, c: int, groups: int = 2, apply_act: bool = True):
        super().__init__()
        self.groups, self.apply_act = groups, apply_act
        self.weight, self.bias = nn.Parameter(torch.rand(c) + 0.5), nn.Parameter(torch.randn(c))
        self.v = nn.Parameter(torch.rand(c) + 0.5) if apply_act else None

    def forward(self, x):
        shape = (1, -1, 1, 1)
        if self.v is not None:
            b, c, h, w = x.shape
            std = x.reshape(b, self.groups, -1).var(dim=-1, keepdim=True).add(1e-5).sqrt()
            std = std.expand(b, self.groups, c // self.groups * h * w).reshape(b, c, h, w)
            x = x * (x * self.v.view(shape)).sigmoid() / std
        return x * self.weight.view(shape) + self.bias.view(shape)


def _plain(norm) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), norm(8), nn.Conv2d(8, 8, 3), norm(8)).eval()


def _quiet_plan(model, rule: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return seinject.plan(model, rule)


def test_a_permute_wrapped_layer_norm_is_the_norm_of_a_conv_block():
    net, x = _plain(LayerNormAct2d), torch.randn(2, 3, 16, 16)
    assert [s.name for s in _quiet_plan(net, "conv_block")] == ["1.act", "3.act"]
    new = seinject.apply(net, "conv_block")
    assert torch.equal(new(x), net(x))


def test_the_same_sites_in_onnx(tmp_path):
    net, x = _plain(LayerNormAct2d), torch.randn(1, 3, 16, 16)
    path = tmp_path / "ln.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"])
    names = [s.name for s in _quiet_plan(net, "conv_block")]
    assert [s.name for s in so.plan(path, rule="conv_block")] == names
    original = onnx.load(path)
    new = so.apply(original, "conv_block")
    assert max_diff(original, new, x.numpy().astype(np.float32)) == 0.0


def test_a_fused_norm_act_module_ends_a_conv_block():
    net, x = _plain(EvoNorm2dS0), torch.randn(2, 3, 16, 16)
    assert [s.name for s in _quiet_plan(net, "conv_block")] == ["1.act", "3.act"]
    new = seinject.apply(net, "conv_block")
    assert torch.equal(new(x), net(x))
    for _, block in seinject.se_modules(new):
        with torch.no_grad():
            for p in block.parameters():
                p.add_(0.1)
    assert not torch.equal(new(x), net(x))  # the blocks sit in the forward path
    assert torch.equal(seinject.remove(new)(x), net(x))


def test_a_fused_norm_without_its_activation_is_only_a_norm():
    net = _plain(lambda c: EvoNorm2dS0(c, apply_act=False))
    assert not len(_quiet_plan(net, "conv_block"))


@pytest.mark.parametrize("rule", ["after_residual", "residual_branch"])
def test_fused_norm_in_residual_blocks(rule):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv2d(8, 8, 3, padding=1), EvoNorm2dS0(8)

        def forward(self, x):
            return x + self.norm(self.conv(x))

    torch.manual_seed(0)
    net, x = nn.Sequential(nn.Conv2d(3, 8, 3), Block(), Block()).eval(), torch.randn(2, 3, 16, 16)
    new = seinject.apply(net, rule)
    assert len(seinject.report(new)) == 2
    assert torch.equal(new(x), net(x))
