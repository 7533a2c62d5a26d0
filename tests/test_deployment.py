"""What users do with a rewritten model after apply: fx, quantization, compile, export, ONNX, mixed precision.

Each test compares outputs of the rewritten model (blocks at identity) with the original.
"""

import copy
import io
import warnings

import pytest
import torch
import torch.nn as nn

import seinject
from seinject.errors import ModelError
from tests.models import resnet_tiny

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def pair():
    """(original, rewritten) tiny ResNet in eval mode, SE on every residual branch."""
    torch.manual_seed(0)
    original = resnet_tiny().eval()
    return original, seinject.apply(original, rule="residual_branch").eval()


def conv_bn_relu(scale: float = 1.0) -> nn.Sequential:
    """conv(3→8) ─ bn ─ relu, with conv weights chosen so that a ones input gives 27·scale."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    nn.init.constant_(net[0].weight, scale)
    return net.eval()


def test_symbolic_trace_of_the_rewritten_model_computes_the_same(pair):
    original, rewritten = pair
    traced = torch.fx.symbolic_trace(rewritten)
    assert torch.equal(traced(X), rewritten(X)) and torch.equal(traced(X), original(X))
    called = {str(n.target) for n in traced.graph.nodes if n.op == "call_module"}
    assert {"layer1.0.se.fc1", "layer1.0.se.fc2"} <= called  # the blocks are in the traced graph


def test_fx_quantization_prepares_and_converts(pair):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    _, rewritten = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(rewritten), get_default_qconfig_mapping("x86"), (X,))
        prepared(X)
        quantized = convert_fx(prepared)
    out = quantized(X)
    reference = rewritten(X)
    assert out.shape == reference.shape and torch.isfinite(out).all()
    assert (out - reference).abs().max() < 0.1 * reference.abs().max()


def test_torch_compile_fullgraph_has_no_graph_break(pair):
    import torch._dynamo as dynamo

    original, rewritten = pair
    dynamo.reset()
    explanation = dynamo.explain(rewritten)(X)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(rewritten, fullgraph=True, backend="eager")
    assert torch.equal(compiled(X), original(X))


def test_torch_export_with_a_dynamic_batch_dim(pair):
    original, rewritten = pair
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(rewritten, (X,), dynamic_shapes={"x": {0: batch}}).module()
    for n in (1, 5):
        x = torch.randn(n, 3, 32, 32)
        assert torch.equal(exported(x), original(x))


def test_onnx_export_of_the_rewritten_model_runs_in_onnxruntime(pair):
    ort = pytest.importorskip("onnxruntime")
    original, rewritten = pair

    def run(model):
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (X,), buffer, dynamo=False, input_names=["x"], opset_version=17)
        options = ort.SessionOptions()  # "basic": at "all", ORT fuses differently around any new Mul
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"x": X.numpy()})[0])

    new = run(rewritten)
    assert torch.equal(new, run(original))
    assert torch.allclose(new, rewritten(X), atol=1e-5)


def test_bf16_autocast_keeps_identity(pair):
    original, rewritten = pair
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(rewritten(X), original(X))


def test_channels_last_keeps_identity_and_the_memory_format():
    net = conv_bn_relu().to(memory_format=torch.channels_last)
    new = seinject.apply(net, rule="conv_block", ratio=2)
    x = X.to(memory_format=torch.channels_last)
    out = new(x)
    assert torch.equal(out, net(x)) and out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_identity_in_half_precision_with_activations_near_the_largest_value(dtype):
    """fc1 of the squeezed map overflows to inf here; the block must still return its input."""
    largest = torch.finfo(dtype).max
    net = conv_bn_relu(scale=largest / 30).to(dtype)
    new = seinject.apply(net, rule="conv_block", ratio=2)
    x = torch.ones(2, 3, 8, 8, dtype=dtype)
    reference = net(x)
    assert reference.max() > largest / 2  # activations really are near the limit
    torch.testing.assert_close(new(x), reference, rtol=0, atol=0, equal_nan=True)
    assert not torch.isnan(new(x)).any()


def test_apply_on_a_torchscript_module_is_a_typed_error():
    with pytest.raises(ModelError, match="TorchScript"):
        seinject.apply(torch.jit.script(conv_bn_relu()), rule="conv_block")


def test_apply_on_torch_compile_rewrites_the_wrapped_model():
    net = conv_bn_relu()
    compiled = torch.compile(net, backend="eager")
    new = seinject.apply(compiled, rule="conv_block", ratio=2)
    report = seinject.report(new)
    assert len(report) == 1 and not report.left_out and isinstance(new, nn.Sequential)
    assert seinject.apply(compiled, rule="conv_block", ratio=2, inplace=True) is compiled
    assert hasattr(compiled._orig_mod[2], "se") and torch.equal(compiled(X), net(X))


@pytest.mark.parametrize("wrap, words", [
    (lambda m: torch.jit.trace(m, X), "TorchScript"),
    (lambda m: torch.compile(m, backend="eager"), "torch.compile"),
    (lambda m: torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8), "se"),
])
def test_remove_refuses_what_it_cannot_restore_and_names_it(wrap, words):
    new = seinject.apply(conv_bn_relu(), rule="conv_block", ratio=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = wrap(new)
    with pytest.raises(ModelError, match=words):
        seinject.remove(wrapped)
