"""ONNX parity with the torch backend on models built here and exported with both exporters: the same
sites (count and names) as the nn.Module, and identity in onnxruntime.

Each test pins one fix (benchmarks/onnx_parity.py measures the same on torchvision models):
- ConvNeXt blocks (channels-last MLP between permutes, layer scale): Transpose carries its perm, so
  the branch stays a feature map and its residual join is seen (0 sites before, with either exporter).
- LayerNorm2d (permute → layer_norm → permute in one module) is one norm op named after the module.
- A BatchNorm folded into its conv is named after the conv with either exporter (the dynamo export
  used to name it after the BatchNorm, the legacy export after the conv).
- Legacy exports name a functional permute "permute", as fx and the dynamo exporter do.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import seinject
import seinject.onnx as so
from seinject.onnx.kinds import classify
from seinject.onnx.names import _folded_conv_path, scope_of
from seinject.onnx.view import build_view
from tests.onnx_backend.graphs import max_diff, text_model

EXPORTERS = ["legacy", "dynamo"]
RESIDUAL_RULES = ("after_residual", "residual_branch", "before_residual", "identity_branch")


# -- models ---------------------------------------------------------------------------------------
class LayerNorm2d(nn.LayerNorm):
    """torchvision's LayerNorm2d: a LayerNorm over channels of an N×C×H×W map."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return torch.permute(x, self.dims)


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block: dwconv, permute, LayerNorm, MLP, permute back, layer scale, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim), Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 0.5))

    def forward(self, x):
        result = self.layer_scale * self.block(x)
        result += x
        return result


class TinyConvNeXt(nn.Module):
    def __init__(self, dims=(8, 16)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        self.stage1 = nn.Sequential(CNBlock(dims[0]), CNBlock(dims[0]))
        self.down = nn.Sequential(LayerNorm2d(dims[0], eps=1e-6), nn.Conv2d(dims[0], dims[1], kernel_size=2, stride=2))
        self.stage2 = nn.Sequential(CNBlock(dims[1]))
        self.head = nn.Linear(dims[1], 5)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(x.mean((2, 3)))


class NormFirstBlock(nn.Module):
    """x + conv(LayerNorm2d(x)): the residual branch starts inside a LayerNorm2d."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x):
        return x + self.conv(self.norm(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2))

    def forward(self, x):
        return self.layer1(self.stem(x)).mean((2, 3))


def _randomize(model: nn.Module) -> nn.Module:
    """Random BatchNorm statistics and affine parameters, so folding changes the weights."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def _export(model: nn.Module, shape: tuple, exporter: str, folder: Path) -> Path:
    if exporter == "dynamo":
        pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    path = folder / f"{type(model).__name__}-{exporter}.onnx"
    x = torch.randn(*shape)
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                              input_names=["x"], output_names=["y"])
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=True)
    return path


def _torch_names(model: nn.Module, rule: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [s.name for s in seinject.plan(model, rule=rule)]


def _onnx_names(path: Path, rule: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [s.name for s in so.plan(path, rule=rule)]


def _values(n: int) -> str:
    """n float literals for an initializer in ONNX text: "{0.5, 0.5, ...}"."""
    return "{" + ", ".join(["0.5"] * n) + "}"


def _x(shape) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


# -- ConvNeXt: Transpose perm, LayerNorm2d, layer scale -------------------------------------------
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_convnext_blocks_same_sites_and_names_as_torch(tmp_path, exporter):
    model = TinyConvNeXt().eval()
    path = _export(model, (1, 3, 32, 32), exporter, tmp_path)
    for rule in RESIDUAL_RULES:
        expected = _torch_names(model, rule)
        assert len(expected) == 3, rule
        assert _onnx_names(path, rule) == expected, rule
    assert _onnx_names(path, "after_residual") == ["stage1.0.add", "stage1.1.add", "stage2.0.add"]
    assert _onnx_names(path, "identity_branch")[0] == "stem.1"  # the LayerNorm2d, one op as in torch


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_convnext_blocks_identity_in_onnxruntime(tmp_path, exporter):
    path = _export(TinyConvNeXt().eval(), (1, 3, 32, 32), exporter, tmp_path)
    original = onnx.load(path)
    for rule in RESIDUAL_RULES:
        new, report = so.apply(original, rule, return_report=True)
        assert len(report.inserted) == 3
        onnx.checker.check_model(new, full_check=True)
        assert max_diff(original, new, _x((1, 3, 32, 32))) == 0.0


def test_transpose_carries_its_perm():
    """Without perm, ONNX Transpose reverses the dims."""
    explicit = onnx.helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])
    default = onnx.helper.make_node("Transpose", ["x"], ["y"])
    shapes = {"x": ((1, 4, 8, 8), 1)}
    assert classify(explicit, {}, shapes) == ("reshape", {"op_type": "Transpose", "perm": (0, 2, 3, 1)})
    assert classify(default, {}, shapes)[1]["perm"] == (3, 2, 1, 0)
    assert "perm" not in classify(default, {}, {})[1]  # rank unknown


def test_channels_last_branch_is_a_residual_join():
    """conv → permute → linear → permute back → ×scale, added to the input: a residual join."""
    w, m, s = _values(36), _values(16), _values(4)
    model = text_model(f'''
      g (float[1, 4, 8, 8] x) => (float[1, 4, 8, 8] y)
        <float[4, 1, 3, 3] w = {w}, float[4, 4] m = {m}, float[4, 1, 1] s = {s}> {{
        c = Conv<group = 4, pads = [1, 1, 1, 1]>(x, w)
        t = Transpose<perm = [0, 2, 3, 1]>(c)
        l = MatMul(t, m)
        b = Transpose<perm = [0, 3, 1, 2]>(l)
        k = Mul(s, b)
        y = Add(k, x)
      }}''')
    view = build_view(model).view
    assert view.node("t").layout == "cl" and view.node("b").layout == "nc" and view.node("k").channels == 4
    assert view.node("y").residual
    assert [s.name for s in so.plan(model, "after_residual")] == ["y"]


# -- LayerNorm2d: one norm op ----------------------------------------------------------------------
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_layernorm2d_is_one_norm_op(tmp_path, exporter):
    path = _export(TinyConvNeXt().eval(), (1, 3, 32, 32), exporter, tmp_path)
    view = build_view(onnx.load(path)).view
    norms = {view.node(n).name: view.node(n) for n in view.nodes() if view.node(n).kind == "norm"}
    for name in ("stem.1", "down.0"):
        node = norms[name]
        assert (node.layout, node.channels, node.attrs["fn"]) == ("nc", 8, "layer_norm")
    assert not any(view.node(n).name.startswith("stem.1.") for n in view.nodes())


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_branch_starting_in_a_layernorm2d(tmp_path, exporter):
    """before_residual puts the block before the LayerNorm2d's first permute; the shortcut keeps x."""
    model = NormFirstBlock().eval()
    path = _export(model, (1, 8, 8, 8), exporter, tmp_path)
    assert _onnx_names(path, "before_residual") == _torch_names(model, "before_residual") == ["norm"]
    original = onnx.load(path)
    new = so.apply(original, "before_residual")
    scale = next(n for n in new.graph.node if n.name.endswith("/scale"))
    readers = [n for n in new.graph.node if scale.output[0] in n.input]
    assert [n.op_type for n in readers] == ["Transpose"]
    assert max_diff(original, new, _x((1, 8, 8, 8))) == 0.0


def test_wrapped_norm_needs_one_scope_and_matching_perms():
    """Transposes and a norm in three modules, or perms that are not to and from channels-last,
    stay three ops, as torch sees three modules."""
    body = '''
      g (float[1, 4, 8, 8] x) => (float[1, 4, 8, 8] y) <float[4] s = {s}, float[4] b = {s}> {{
        t = Transpose<perm = [0, 2, 3, 1]>(x)
        n = LayerNormalization<axis = -1>(t, s, b)
        y = Transpose<perm = {back}>(n)
      }}'''
    body = body.replace("{s}", _values(4).replace("{", "{{").replace("}", "}}"))
    merged = build_view(text_model(body.format(back="[0, 3, 1, 2]"))).view
    assert [merged.node(n).kind for n in merged.nodes()] == ["input", "norm"]
    other = build_view(text_model(body.format(back="[0, 3, 2, 1]"))).view
    assert [other.node(n).kind for n in other.nodes()] == ["input", "reshape", "norm", "reshape"]
    scoped = text_model(body.format(back="[0, 3, 1, 2]"))
    for node, scope in zip(scoped.graph.node, ("/a/Transpose", "/b/LayerNormalization", "/c/Transpose")):
        node.name = scope
    three = build_view(scoped).view
    assert [three.node(n).name for n in three.nodes()] == ["x", "a", "b", "c"]


# -- folded BatchNorm: the conv's name in both exports ----------------------------------------------
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_folded_batchnorm_named_after_its_conv(tmp_path, exporter):
    model = _randomize(TinyResNet())
    path = _export(model, (1, 3, 16, 16), exporter, tmp_path)
    assert not any(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node)  # folded
    assert _onnx_names(path, "residual_branch") == ["layer1.0.conv2", "layer1.1.conv2"]
    assert _onnx_names(path, "before_residual") == ["layer1.0.conv1", "layer1.1.conv1"]
    assert _onnx_names(path, "identity_branch") == ["stem.2", "layer1.1.downsample.0"]
    assert _onnx_names(path, "after_residual") == _torch_names(model, "after_residual") == [
        "layer1.0.relu_1", "layer1.1.relu_1"]
    # the torch module names the same sites after the BatchNorm the export folded
    assert _torch_names(model, "residual_branch") == ["layer1.0.bn2", "layer1.1.bn2"]
    original = onnx.load(path)
    new = so.apply(original, "residual_branch")
    assert max_diff(original, new, _x((1, 3, 16, 16))) == 0.0


def test_folded_conv_path_needs_the_fold_and_a_parameter_name():
    conv = onnx.helper.make_node("Conv", ["x", "layer1.0.conv2.weight"], ["y"])
    fused = {"pkg.onnxscript.rewriter.rule_name": "RemoveOptionalBiasFromConv, FuseBatchNormIntoConv"}
    assert _folded_conv_path(conv, fused, "_native_batch_norm_legit_no_training_2") == "layer1.0.conv2"
    assert _folded_conv_path(conv, {}, "_native_batch_norm_legit_no_training_2") == "layer1.0.conv2"
    assert _folded_conv_path(conv, {}, "conv2d_3") is None  # an ordinary conv keeps its scope
    computed = onnx.helper.make_node("Conv", ["x", "val_12"], ["y"])
    assert _folded_conv_path(computed, fused, "_native_batch_norm_legit_no_training") is None
    odd = onnx.helper.make_node("Conv", ["x", "onnx::Conv_5.weight"], ["y"])
    assert _folded_conv_path(odd, fused, "_native_batch_norm_legit_no_training") is None
    node = onnx.helper.make_node("Conv", ["x", "features.0.0.weight"], ["y"])
    scopes = "['', 'features', 'features.0', 'features.0.1', '_native_batch_norm_legit_no_training']"
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=scopes)
    node.metadata_props.add(key="pkg.onnxscript.rewriter.rule_name", value="FuseBatchNormIntoConv")
    assert scope_of(node).path == "features.0.0"


# -- legacy local names ------------------------------------------------------------------------------
def test_legacy_transpose_named_as_torch_names_the_call():
    """x.permute(0, 2, 3, 1) is "permute" in fx and in dynamo exports; a legacy export says "Transpose"."""
    node = onnx.helper.make_node("Transpose", ["x"], ["y"], name="/stages/stages.0/Transpose_1", perm=[0, 2, 3, 1])
    assert (scope_of(node).path, scope_of(node).local) == ("stages.0", "permute_1")
    swap = onnx.helper.make_node("Transpose", ["x"], ["y"], name="/stage2/stage2.0/Transpose", perm=[0, 2, 1, 3, 4])
    assert scope_of(swap).local == "transpose"  # x.transpose(1, 2), as in ShuffleNet's channel shuffle
    other = onnx.helper.make_node("Add", ["x", "z"], ["y"], name="/stages/stages.0/Add")
    assert scope_of(other).local == "Add"
