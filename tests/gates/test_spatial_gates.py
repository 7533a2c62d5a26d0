"""The cbam, coord and simam gates: exact identity at init (torch and onnxruntime), no dead gate,
parameter counts, equivalence with reference blocks written from the papers / timm, ONNX builders
equal to the torch modules, torch.fx tracing."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.fx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from seinject.errors import ConfigError
from seinject.onnx.gates import build_gate as build_onnx
from seinject.rule.config import SEConfig
from seinject.torch.gates import build_gate
from tests.gates.reference_spatial import CbamRef, CoordAttRef, SimAMRef

CASES = [("cbam", 1), ("cbam", 2), ("cbam", 3), ("coord", 2), ("simam", 1), ("simam", 2), ("simam", 3)]
SPATIAL = {1: (9,), 2: (5, 6), 3: (3, 4, 5)}
CHANNELS = 16
CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
IR_FOR = {11: 6, 13: 7, 18: 8}
ELEM = {torch.float32: TensorProto.FLOAT, torch.float64: TensorProto.DOUBLE}


def config(block: str, **kw) -> SEConfig:
    if block != "simam":
        kw.setdefault("ratio", 4)
    return SEConfig(block=block, **kw)


def sample(rank: int, channels: int = CHANNELS, batch: int = 2, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *SPATIAL[rank], generator=gen, dtype=dtype)


def gate(block: str, rank: int, dtype=torch.float32, **kw):
    torch.manual_seed(0)
    return build_gate(CHANNELS, rank, config(block, **kw), dtype=dtype)


def ids(case):
    return f"{case[0]}-{case[1]}d"


# ----------------------------------------------------------------------------------------- torch


@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_identity_exact(case, dtype, training):
    block, rank = case
    module = gate(block, rank, dtype=dtype).train(training)
    assert module.is_identity() and all(p.dtype == dtype for p in module.parameters())
    big = torch.finfo(dtype).max
    hostile = sample(rank, dtype=dtype)
    hostile[0, 0] = big / 2
    hostile[1, 1] = -big
    hostile[1, 2] = 1e-30
    for x in (sample(rank, dtype=dtype), sample(rank, dtype=dtype, batch=1) * 100, hostile,
              torch.zeros(1, CHANNELS, *SPATIAL[rank], dtype=dtype)):
        with torch.no_grad():
            assert torch.equal(module(x), x)


@pytest.mark.parametrize("block,kw", [("cbam", {"gate": "hardsigmoid", "act": "silu"}),
                                      ("cbam", {"act": "gelu", "spatial_kernel_size": 3}),
                                      ("coord", {"gate": "hardsigmoid", "act": "relu"}),
                                      ("simam", {"e_lambda": 1e-2})])
def test_identity_other_settings(block, kw):
    module = gate(block, 2, **kw)
    x = sample(2)
    for training in (False, True):
        assert torch.equal(module.train(training)(x), x)


def test_one_by_one_maps():
    """A single position: SimAM's n is 1 (not 0), CBAM/coord in eval mode are fine."""
    x = torch.randn(3, CHANNELS, 1, 1)
    for block in ("cbam", "coord", "simam"):
        module = gate(block, 2).eval()
        assert torch.equal(module(x), x)
        random = gate(block, 2, init="random").eval()
        assert torch.isfinite(random(x)).all()
    assert torch.equal(gate("simam", 2, init="random")(x), x * torch.sigmoid(torch.tensor(0.5)))


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_one_step_leaves_identity(case):
    block, rank = case
    module = gate(block, rank).train()
    x = sample(rank)
    r = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    (module(x) * r).sum().backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert any(bool(g.abs().sum() > 0) for g in grads)
    with torch.no_grad():   # torch.optim.SGD(lr=0.1).step(), written out: its first call imports torch._dynamo (s)
        for p in module.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    assert not module.is_identity()
    with torch.no_grad():
        assert not torch.equal(module(x), x)


@pytest.mark.parametrize("block", ["cbam", "coord", "simam"])
@pytest.mark.parametrize("init", ["identity", "random"])
@pytest.mark.parametrize("channels,kw", [(16, {}), (24, {"ratio": 16}), (64, {"ratio": 8, "divisor": 8}),
                                         (40, {"min_hidden": 8, "spatial_kernel_size": 3})])
def test_param_count(block, init, channels, kw):
    if block == "simam":
        kw = {}
    elif block == "coord":
        kw = {k: v for k, v in kw.items() if k != "spatial_kernel_size"}
    cfg = SEConfig(block=block, init=init, **kw)
    for rank in ((2,) if block == "coord" else (1, 2, 3)):
        module = build_gate(channels, rank, cfg)
        assert module.hidden == cfg.hidden_channels(channels)
        assert sum(p.numel() for p in module.parameters()) == cfg.added_parameters(channels, rank)


def test_coord_other_ranks_refused():
    for rank in (1, 3):
        with pytest.raises(ConfigError, match=f"has {rank} spatial dim"):
            build_gate(8, rank, SEConfig(block="coord"))
        with pytest.raises(ConfigError, match=f"has {rank} spatial dim"):
            build_onnx("g", "x", 8, rank, SEConfig(block="coord"), opset=13)


def test_gate_values_and_repr():
    x = sample(2)
    cbam = gate("cbam", 2, init="random")
    values = cbam.gate_values(x)
    assert values.shape == (2, CHANNELS) and bool(((values >= 0) & (values <= 1)).all())
    assert gate("coord", 2).gate_values(x) is None and gate("simam", 2).gate_values(x) is None
    assert "kernel_size=7" in repr(cbam) and "e_lambda=0.0001" in repr(gate("simam", 2))
    assert repr(gate("cbam", 2)) == repr(gate("cbam", 2)) != repr(gate("cbam", 2, spatial_kernel_size=3))


# ------------------------------------------------------------------------------ reference blocks


def _randomise_bn(*norms):
    """Non-trivial affine and running stats, so eval mode checks the BatchNorm wiring too."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for bn in norms:
            for name in ("weight", "bias", "running_mean"):
                getattr(bn, name).copy_(torch.randn(bn.num_features, generator=gen) * 0.5)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)


def _compare(mine, ref, x):
    for training in (True, False):   # train first: both update their running stats alike
        mine.train(training), ref.train(training)
        with torch.no_grad():
            a, b = mine(x), ref(x)
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), float((a - b).abs().max())


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_cbam_matches_timm_formula(rank):
    torch.manual_seed(0)
    channels, k = 32, 5
    mine = build_gate(channels, rank, SEConfig(block="cbam", init="random", spatial_kernel_size=k))
    ref = CbamRef(channels, mine.hidden, kernel_size=k, rank=rank)
    _randomise_bn(mine.bn)
    state = {name: value.reshape(ref.state_dict()[name].shape) for name, value in mine.state_dict().items()}
    ref.load_state_dict(state)
    _compare(mine, ref, sample(rank, channels=channels) + 0.3)


def test_coord_matches_official():
    torch.manual_seed(0)
    channels = 64
    cfg = SEConfig(block="coord", init="random", ratio=32, min_hidden=8)   # the paper's mip = max(8, C // 32)
    mine = build_gate(channels, 2, cfg)
    assert mine.hidden == max(8, channels // 32)
    ref = CoordAttRef(channels, channels, mine.hidden)
    _randomise_bn(mine.bn1)
    ref.load_state_dict(mine.state_dict())
    _compare(mine, ref, torch.randn(2, channels, 6, 9))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_simam_matches_official(rank):
    mine = build_gate(CHANNELS, rank, SEConfig(block="simam", init="random", e_lambda=1e-3))
    _compare(mine, SimAMRef(1e-3), sample(rank) * 2 + 1)


# ---------------------------------------------------------------------------------------- ONNX


def onnx_run(block: str, rank: int, cfg: SEConfig, opset: int, x: np.ndarray, elem=TensorProto.FLOAT):
    built = build_onnx("blk", "x", CHANNELS, rank, cfg, opset=opset, elem_type=elem, seed=5, output="y")
    names = [n.name for n in built.nodes]
    assert len(set(names)) == len(names) and all(n.startswith("blk/") for n in names)
    assert names[-1] == "blk/scale" and list(built.nodes[-1].output) == ["y"]
    known = {"x"} | {t.name for t in built.initializers}
    for node in built.nodes:      # topological, reads only x and its own initializers
        assert all(i in known for i in node.input if i), node.name
        known.update(node.output)
    dims = ["N", CHANNELS] + [f"S{i}" for i in range(rank)]
    graph = helper.make_graph(built.nodes, "g", [helper.make_tensor_value_info("x", elem, dims)],
                              [helper.make_tensor_value_info("y", elem, dims)], initializer=built.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_FOR[opset]
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0], built


def load_onnx_weights(module: nn.Module, built) -> None:
    state = module.state_dict()
    prefix = built.name + "/"
    loaded = set()
    for tensor in built.initializers:
        key = tensor.name[len(prefix):]
        if key in state:
            value = torch.from_numpy(numpy_helper.to_array(tensor).copy())
            state[key] = value.reshape(state[key].shape).to(state[key].dtype)
            loaded.add(key)
    assert loaded == {k for k in state if "num_batches" not in k}, set(state) - loaded
    module.load_state_dict(state)


@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("opset", [11, 13, 18])
def test_onnx_identity_and_random(case, opset):
    block, rank = case
    x = sample(rank, seed=1).numpy() * 3
    y, built = onnx_run(block, rank, config(block), opset, x)
    assert np.array_equal(y, x)
    assert built.params == config(block).added_parameters(CHANNELS, rank)

    cfg = config(block, init="random")
    y, built = onnx_run(block, rank, cfg, opset, x)
    assert built.params == cfg.added_parameters(CHANNELS, rank)
    module = build_gate(CHANNELS, rank, cfg).eval()
    load_onnx_weights(module, built)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)
    assert not np.allclose(y, x)


@pytest.mark.parametrize("case", [("cbam", 2), ("coord", 2), ("simam", 3)], ids=ids)
def test_onnx_identity_other_types_and_settings(case):
    block, rank = case
    if block == "simam":   # onnxruntime's CPU Conv and GlobalAveragePool have no double kernels
        x = sample(rank, seed=2, dtype=torch.float64).numpy()
        x[0, 0] = np.finfo(np.float64).max / 2
        y, _ = onnx_run(block, rank, config(block), 13, x, elem=TensorProto.DOUBLE)
        assert np.array_equal(y, x)
    x16 = (sample(rank, seed=2) * 10).numpy().astype(np.float16)
    y, _ = onnx_run(block, rank, config(block), 18, x16, elem=TensorProto.FLOAT16)
    assert np.array_equal(y, x16)
    if block != "simam":
        cfg = config(block, gate="hardsigmoid", act="hardswish")
        for opset in (11, 18):
            x = sample(rank, seed=3).numpy()
            y, _ = onnx_run(block, rank, cfg, opset, x)
            assert np.array_equal(y, x)
            cfg_r = config(block, gate="hardsigmoid", act="hardswish", init="random")
            y, built = onnx_run(block, rank, cfg_r, opset, x)
            module = build_gate(CHANNELS, rank, cfg_r).eval()
            load_onnx_weights(module, built)
            with torch.no_grad():
                np.testing.assert_allclose(y, module(torch.from_numpy(x)).numpy(), atol=1e-5, rtol=1e-5)


def test_onnx_simam_single_position():
    x = np.random.default_rng(0).standard_normal((2, CHANNELS, 1, 1)).astype(np.float32)
    y, _ = onnx_run("simam", 2, config("simam", init="random"), 11, x)
    with torch.no_grad():
        expected = build_gate(CHANNELS, 2, config("simam", init="random"))(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, expected, atol=1e-6)


# --------------------------------------------------------------------------------------- torch.fx


@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("init", ["identity", "random"])
def test_fx_trace(case, init):
    block, rank = case
    torch.manual_seed(0)
    model = nn.Sequential(CONVS[rank](3, CHANNELS, 3, padding=1), build_gate(CHANNELS, rank, config(block, init=init)))
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, *SPATIAL[rank])
    with torch.no_grad():
        assert torch.equal(traced(x), model(x))
        other = torch.randn(1, 3, *(s + 2 for s in SPATIAL[rank]))   # traced code is not shape-specialised
        assert torch.equal(traced(other), model(other))
