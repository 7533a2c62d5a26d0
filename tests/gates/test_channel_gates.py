"""The channel gates ese, eca and gc: exact identity at init (torch and ONNX), live gradients,
parameter counts, the published block at random init (against tests/gates/reference_channel.py),
the ONNX builders against the torch modules, torch.fx tracing."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import nn

from seinject.onnx.gates import build_gate as build_onnx
from seinject.rule.config import SEConfig
from seinject.torch.gates import build_gate
from tests.gates.reference_channel import RefEca, RefEffectiveSE, RefGlobalContext

# (id, SEConfig fields): the configurations every check runs on
CONFIGS = {
    "ese": dict(block="ese"),
    "ese-sigmoid-nobias": dict(block="ese", gate="sigmoid", bias=False),
    "eca": dict(block="eca"),
    "eca-k5-hardsigmoid": dict(block="eca", kernel_size=5, gate="hardsigmoid"),
    "gc-add": dict(block="gc", ratio=4),
    "gc-scale": dict(block="gc", ratio=4, fuse_add=False, fuse_scale=True),
    "gc-both-mean-silu": dict(block="gc", ratio=4, use_attn=False, fuse_scale=True, act="silu"),
    "gc-both-gelu-hardsigmoid": dict(block="gc", ratio=8, fuse_scale=True, act="gelu", gate="hardsigmoid"),
}
C = 32
SHAPES = {1: (3, C, 11), 2: (3, C, 6, 5), 3: (2, C, 3, 4, 5)}


def config(name, **changes):
    return SEConfig(**{**CONFIGS[name], **changes})


@pytest.mark.parametrize("rank, dtype", [(1, torch.float32), (2, torch.float32), (3, torch.float32),
                                         (2, torch.float64)])
@pytest.mark.parametrize("name", CONFIGS)
def test_identity_is_exact_in_eval_and_train(name, rank, dtype):
    torch.manual_seed(rank)
    gate = build_gate(C, rank, config(name), dtype=dtype)
    assert gate.is_identity() and gate.init_mode == "identity"
    assert all(p.dtype == dtype for p in gate.parameters())
    x = torch.randn(*SHAPES[rank], dtype=dtype) * 10
    for training in (True, False):
        gate.train(training)
        with torch.no_grad():
            assert torch.equal(gate(x), x)


@pytest.mark.parametrize("name", CONFIGS)
def test_identity_survives_inputs_near_the_dtype_limit(name):
    gate = build_gate(C, 2, config(name))
    big = torch.finfo(torch.float32).max
    x = torch.randn(2, C, 4, 4)
    x[0, :, :2] = big  # the squeeze and the attention logits overflow to inf here
    x[1, 3] = -big
    with torch.no_grad():
        assert torch.equal(gate(x), x)


@pytest.mark.parametrize("name", CONFIGS)
def test_one_sgd_step_leaves_identity(name):
    torch.manual_seed(0)
    gate = build_gate(C, 2, config(name))
    x, r = torch.randn(4, C, 5, 5), torch.randn(4, C, 5, 5)
    (gate(x) * r).sum().backward()
    grads = {k: p.grad.abs().sum().item() for k, p in gate.named_parameters() if p.grad is not None}
    assert any(v > 0 for v in grads.values()), grads
    for prefix in ("mlp_add.fc2", "mlp_scale.fc2"):  # gc: the zero last layers do get gradient
        for k in (f"{prefix}.weight", f"{prefix}.bias"):
            if k in dict(gate.named_parameters()):
                assert grads[k] > 0, k
    with torch.no_grad():  # one plain SGD step, lr 0.1 (torch.optim's first use costs seconds of imports)
        for p in gate.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    with torch.no_grad():
        assert not torch.equal(gate(x), x)
    assert not gate.is_identity()


@pytest.mark.parametrize("name", CONFIGS)
def test_parameter_count_matches_the_spec(name):
    for init, rank, channels in [("identity", 1, 8), ("identity", 2, 48), ("random", 3, 256), ("random", 2, 100)]:
        cfg = config(name, init=init)
        gate = build_gate(channels, rank, cfg)
        assert sum(p.numel() for p in gate.parameters()) == cfg.added_parameters(channels, rank)
        assert build_onnx("b", "x", channels, rank, cfg, opset=13).params == cfg.added_parameters(channels, rank)


def test_widths_and_reprs():
    assert build_gate(48, 2, SEConfig(block="ese")).hidden == 48
    eca = build_gate(256, 2, SEConfig(block="eca"))
    assert eca.hidden == 0 and eca.kernel_size == 5 and eca.conv.weight.shape == (1, 1, 5)
    gc = build_gate(48, 2, SEConfig(block="gc", ratio=8, divisor=4))
    assert gc.hidden == 8 and gc.mlp_add.fc1.out_features == 8 and gc.mlp_scale is None
    assert repr(build_gate(8, 2, SEConfig(block="ese", bias=False))) == (
        "EffectiveSE(\n  channels=8, gate=hardsigmoid, gain=2, bias=False\n"
        "  (fc): Linear(in_features=8, out_features=8, bias=False)\n)")
    assert "kernel_size=3, gate=sigmoid, gain=1" in repr(build_gate(8, 2, SEConfig(block="eca", init="random")))
    assert "act=relu, gate=sigmoid, use_attn=True, fuse_add=True, fuse_scale=False, gain=2" in repr(gc)


def test_gate_values():
    x = torch.randn(2, C, 4, 4)
    for name in CONFIGS:
        gate = build_gate(C, 2, config(name, init="random"))
        values = gate.gate_values(x)
        if name == "gc-add":
            assert values is None
            continue
        assert values.shape == (2, C) and values.min() >= 0 and values.max() <= 1
        if name.startswith(("ese", "eca", "gc-scale")):  # the block is x times the gate
            assert torch.allclose(gate(x), x * values[:, :, None, None])


# --- the published block at random init --------------------------------------------------------

def reference(name, channels):
    cfg = config(name, init="random")
    if cfg.block == "ese":
        return RefEffectiveSE(channels, gate=cfg.gate, bias=cfg.bias)
    if cfg.block == "eca":
        return RefEca(channels, gamma=cfg.gamma, beta=cfg.beta, kernel_size=cfg.kernel_size, gate=cfg.gate)
    acts = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}
    return RefGlobalContext(channels, cfg.hidden_channels(channels), cfg.use_attn, cfg.fuse_add, cfg.fuse_scale,
                            act=acts[cfg.act], gate=cfg.gate)


def load_into(module, weights):
    """Copy weights (name → tensor/array) into module's parameters of the same name, reshaped."""
    state = module.state_dict()
    assert set(state) <= set(weights), set(state) - set(weights)
    def tensor(w):
        return w.detach().clone() if isinstance(w, torch.Tensor) else torch.from_numpy(np.array(w))

    module.load_state_dict({k: tensor(weights[k]).reshape(v.shape).to(v.dtype) for k, v in state.items()})


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("channels", [16, 256])
def test_random_init_is_the_published_block(name, channels):
    torch.manual_seed(channels)
    ref = reference(name, channels)
    with torch.no_grad():  # LayerNorm's affine parameters start at 1 and 0: make them count
        for key, p in ref.named_parameters():
            if ".norm." in key:
                p.add_(torch.randn_like(p) * 0.1)
    gate = build_gate(channels, 2, config(name, init="random"))
    assert gate.gain == 1.0 and not gate.is_identity() and gate.init_mode == "random"
    load_into(gate, {k: v.detach() for k, v in ref.state_dict().items()})
    x = torch.randn(3, channels, 7, 6)
    with torch.no_grad():
        expected, got = ref(x), gate(x)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(got, x)


# --- ONNX ---------------------------------------------------------------------------------------

def onnx_model(block, rank, opset, elem_type=TensorProto.FLOAT):
    dims = ["N", C] + [f"s{i}" for i in range(rank)]
    graph = helper.make_graph(block.nodes, "g", [helper.make_tensor_value_info("x", elem_type, dims)],
                              [helper.make_tensor_value_info(block.output, elem_type, dims)],
                              initializer=block.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset >= 13 else 7
    onnx.checker.check_model(model, full_check=True)
    return model


def run(model, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("rank, opset", [(1, 11), (2, 13), (3, 18)])  # gc's LayerNorm: decomposed before 17
@pytest.mark.parametrize("name", CONFIGS)
def test_onnx_identity_and_random_equal_torch(name, rank, opset):
    x = (np.random.default_rng(rank).standard_normal(SHAPES[rank]) * 5).astype(np.float32)
    block = build_onnx("seinject/b", "x", C, rank, config(name), opset=opset, output="y")
    assert block.output == "y" and block.nodes[-1].name == "seinject/b/scale"
    assert len({n.name for n in block.nodes}) == len(block.nodes)
    model = onnx_model(block, rank, opset)
    assert np.array_equal(run(model, x), x)
    big = x.copy()
    big[0, :, :2] = np.finfo(np.float32).max  # the squeeze and the attention logits overflow
    assert np.array_equal(run(model, big), big)

    cfg = config(name, init="random")
    block = build_onnx("seinject/b", "x", C, rank, cfg, opset=opset, seed=opset)
    assert not any(n.name.endswith("/gain") for n in block.nodes)
    gate = build_gate(C, rank, cfg).eval()
    load_into(gate, {t.name.split("/", 2)[-1]: numpy_helper.to_array(t) for t in block.initializers})
    with torch.no_grad():
        expected = gate(torch.from_numpy(x)).numpy()
    got = run(onnx_model(block, rank, opset), x)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert not np.allclose(got, x)


@pytest.mark.parametrize("elem_type, opset", [(TensorProto.FLOAT16, 13), (TensorProto.DOUBLE, 18)])
@pytest.mark.parametrize("name", ["ese", "eca", "gc-scale", "gc-both-mean-silu", "gc-both-gelu-hardsigmoid"])
def test_onnx_identity_in_other_dtypes(name, elem_type, opset):
    dtype = {TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}[elem_type]
    x = np.random.default_rng(0).standard_normal(SHAPES[2]).astype(dtype)
    x[0, :, :2] = np.finfo(dtype).max  # the squeeze overflows: still exact
    block = build_onnx("b", "x", C, 2, config(name), opset=opset, elem_type=elem_type)
    assert all(t.data_type in (elem_type, TensorProto.INT64) for t in block.initializers)
    model = onnx_model(block, 2, opset, elem_type)  # the checker infers and checks every type
    # onnxruntime's CPU provider has no float16 or double Conv and GlobalAveragePool: onnx's own
    # reference evaluator runs them
    with np.errstate(over="ignore", invalid="ignore"):
        got = ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert got.dtype == dtype and np.array_equal(got, x)


def test_onnx_random_init_is_seeded():
    cfg = config("gc-both-gelu-hardsigmoid", init="random")
    a, b, c = (build_onnx("b", "x", C, 2, cfg, opset=17, seed=s) for s in (1, 1, 2))
    weights = [[numpy_helper.to_array(t) for t in blk.initializers] for blk in (a, b, c)]
    assert all(np.array_equal(p, q) for p, q in zip(weights[0], weights[1]))
    assert not all(np.array_equal(p, q) for p, q in zip(weights[0], weights[2]))


# --- torch.fx -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_fx_trace_gives_the_same_output(name):
    torch.manual_seed(0)
    for rank, conv in ((1, nn.Conv1d), (2, nn.Conv2d), (3, nn.Conv3d)):
        net = nn.Sequential(conv(3, C, 3, padding=1), build_gate(C, rank, config(name, init="random"))).eval()
        traced = torch.fx.symbolic_trace(net)
        x = torch.randn(2, 3, *SHAPES[rank][2:])
        with torch.no_grad():
            torch.testing.assert_close(traced(x), net(x), atol=0, rtol=0)
        # the blocks' shape-dependent helpers stay leaf calls
        targets = {getattr(n.target, "__name__", "") for n in traced.graph.nodes if n.op == "call_function"}
        assert targets & {"scale_channels", "shift_channels"}
