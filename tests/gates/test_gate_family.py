"""Every gate type through the whole tool: apply at identity, train, re-apply, remove, save, ONNX.

One table over types × fixtures (1-D, 2-D, 3-D residual nets and an inverted-residual net) ×
backends (torch modules, and their legacy ONNX exports run in onnxruntime).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import seinject
from seinject.errors import ConfigError, NoSitesError
from seinject.rule.gates import BLOCKS, SPECS
from seinject.torch.gates import Gate
from tests.helpers import build

FIXTURES = {"resnet_tiny": 2, "resnet1d_tiny": 1, "resnet3d_tiny": 3, "mobilenetv2_tiny": 2}
RULES = {"resnet_tiny": "residual_branch", "resnet1d_tiny": "residual_branch",
         "resnet3d_tiny": "residual_branch", "mobilenetv2_tiny": "inverted_residual"}
CASES = [(block, fixture) for block in BLOCKS for fixture in FIXTURES]


def _outputs(model, x, training):
    model.train(training)
    torch.manual_seed(1)
    with torch.no_grad():
        return model(x)


def _gates(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Gate)]


@pytest.mark.parametrize("block,fixture", CASES)
def test_identity_training_reapply_remove_and_save(block, fixture, tmp_path):
    model, x = build(fixture)
    rank, rule = FIXTURES[fixture], RULES[fixture]
    if SPECS[block].unsupported(rank):
        with pytest.raises(NoSitesError, match="defined on 2-D maps"):
            seinject.apply(model, rule=rule, block=block, strict=True)
        return
    new = seinject.apply(model, rule=rule, block=block, example_inputs=x)
    gates = _gates(new)
    assert gates and all(g.block_type == block and g.is_identity() for _, g in gates)
    planned = seinject.plan(model, rule=rule, block=block)
    assert sum(s.params for s in planned) == sum(p.numel() for _, g in gates for p in g.parameters())
    for training in (False, True):
        assert torch.equal(_outputs(model, x, training), _outputs(new, x, training))

    # re-apply: every site already has a gate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seinject.SEInjectWarning)
        again = seinject.plan(new, rule=rule, block=block)
    assert len(again) == 0 and any(s.reason == "already has SE" for s in again.skipped)

    # save at identity, one step of training moves every block off identity, load restores the weights
    path = seinject.save(new, tmp_path / "gates.safetensors")
    new.eval()  # the model's own BatchNorm statistics stay as they are (a checkpoint holds the gates only)
    params = [p for _, p in seinject.se_parameters(new)]
    optimizer = torch.optim.SGD(params, lr=0.1)
    out = new(x)
    (out * torch.randn_like(out)).sum().backward()
    optimizer.step()
    assert all(not g.is_identity() for _, g in gates), "a gate with no gradient stays at identity"
    assert not torch.equal(_outputs(model, x, False), _outputs(new, x, False))
    trained = seinject.save(new, tmp_path / "trained.safetensors")
    reloaded = seinject.load(model, trained)
    assert torch.equal(_outputs(reloaded, x, False), _outputs(new, x, False))
    assert [type(g) for _, g in _gates(reloaded)] == [type(g) for _, g in gates]
    fresh = seinject.load(model, path)
    assert torch.equal(_outputs(fresh, x, False), _outputs(model, x, False))

    # remove gives back the plain forward
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seinject.SEInjectWarning)
        plain = seinject.remove(new)
    assert not _gates(plain)
    assert torch.equal(_outputs(plain, x, False), _outputs(model, x, False))


ONNX_CASES = [(block, fixture) for block in BLOCKS for fixture in ("resnet_tiny", "resnet1d_tiny")]


@pytest.mark.parametrize("block,fixture", ONNX_CASES)
def test_onnx_identity_and_reapply(block, fixture, exported):
    pytest.importorskip("onnxruntime")
    import onnx
    import onnxruntime as ort

    src = onnx.load(str(exported(fixture)))
    rank, rule = FIXTURES[fixture], RULES[fixture]
    if SPECS[block].unsupported(rank):
        with pytest.raises(NoSitesError, match="defined on 2-D maps"):
            seinject.onnx.apply(src, rule=rule, block=block, strict=True)
        return
    new, report = seinject.onnx.apply(src, rule=rule, block=block, verify=True, return_report=True)
    assert report.inserted and report.verified and report.max_abs_diff == 0
    assert {m.value for n in new.graph.node for m in n.metadata_props if m.key == "seinject.block"}
    _, shape = __import__("tests.models", fromlist=["ALL_FIXTURES"]).ALL_FIXTURES[fixture]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    options = ort.SessionOptions()  # as seinject's verification: fusions would differ around the blocks
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    run = [ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
           for m in (src, new)]
    name = run[0].get_inputs()[0].name
    old_out, new_out = (r.run(None, {name: x})[0] for r in run)
    assert np.array_equal(old_out, new_out)
    again = seinject.onnx.plan(new, rule=rule, block=block)
    assert len(again) == 0 and sum(s.reason == "already has SE" for s in again.skipped) == len(report.inserted)


def test_misspelt_block_type_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'cbam'"):
        seinject.plan(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()), "conv_block", block="cbma")


def test_a_setting_of_another_type_is_refused():
    with pytest.raises(ConfigError, match="'kernel_size' is a setting of eca, not of block 'se'"):
        seinject.plan(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()), "conv_block", kernel_size=5)


def test_block_in_a_rule_file(tmp_path):
    rule = tmp_path / "eca_rule.yaml"
    rule.write_text("name: eca_everywhere\npattern:\n  - {kind: add, residual: true, id: join}\n"
                    "insert: {position: branch_end, node: join}\nse:\n  block: eca\n  kernel_size: 5\n")
    model, x = build("resnet_tiny")
    new = seinject.apply(model, rule=str(rule), example_inputs=x)
    gates = _gates(new)
    assert gates and all(g.block_type == "eca" and g.conv.kernel_size == (5,) for _, g in gates)
    bad = tmp_path / "bad.yaml"
    bad.write_text(rule.read_text().replace("block: eca", "block: ecaa"))
    with pytest.raises(seinject.RuleError, match=r"bad.yaml:6.*did you mean 'eca'"):
        seinject.plan(model, rule=str(bad))


def test_block_on_the_command_line(tmp_path, capsys):
    from seinject.cli import main
    from tests.onnx_backend.graphs import residual_net
    import onnx

    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(residual_net(), src)
    assert main(["onnx", str(src), str(out), "--block", "cbam", "--json"]) == 0
    report = __import__("json").loads(capsys.readouterr().out)
    assert report["sites"] and {n.op_type for n in onnx.load(out).graph.node} >= {"GlobalMaxPool", "Concat"}
    assert main(["onnx", str(src), str(tmp_path / "x.onnx"), "--block", "cbma"]) == 2
    assert "did you mean 'cbam'" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("init", ["identity", "random"])
def test_se_without_biases_in_both_backends(init, exported):
    """bias: false, the original Keras SE: no bias in either FC layer, in torch and in ONNX."""
    import onnx

    model, x = build("resnet_tiny")
    new = seinject.apply(model, rule="residual_branch", bias=False, init=init, example_inputs=x)
    gates = [g for _, g in _gates(new)]
    assert gates and all(g.fc1.bias is None and g.fc2.bias is None for g in gates)
    assert sum(p.numel() for g in gates for p in g.parameters()) == sum(
        2 * g.channels * g.hidden for g in gates)
    if init == "identity":
        assert torch.equal(_outputs(new, x, True), _outputs(model, x, True))
    onnx_new, report = seinject.onnx.apply(onnx.load(str(exported("resnet_tiny"))), rule="residual_branch",
                                           bias=False, init=init, verify=True, return_report=True)
    names = {t.name for t in onnx_new.graph.initializer}
    assert report.inserted and not any(n.endswith(("fc1.bias", "fc2.bias")) for n in names)
    assert (report.max_abs_diff == 0) == (init == "identity")
