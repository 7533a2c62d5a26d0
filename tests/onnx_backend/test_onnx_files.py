"""Files: the input is never modified, outputs appear only after verification, external data is safe,
and bad inputs are clear errors. Also the model types apply accepts and returns."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

import seinject.onnx as so
from seinject.errors import (ModelError, NoSitesError, RuleNotFoundError, SEInjectWarning, UnsafeModelError,
                             UsageError, VerificationError)
from tests.onnx_backend.graphs import max_diff, residual_net


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "in.onnx"
    onnx.save(residual_net(), path)
    return path


def external_model(folder: Path, location: str = "weights.bin") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "in.onnx"
    onnx.save_model(residual_net(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def test_input_untouched_output_verified_no_temp_files(model_file):
    before = digest(model_file.parent)
    report = so.apply_file(model_file, model_file.parent / "out.onnx", "residual_branch")
    assert report.verified and report.max_abs_diff == 0.0 and len(report.inserted) == 2
    after = digest(model_file.parent)
    assert {k: v for k, v in after.items() if k != "out.onnx"} == before
    assert sorted(after) == ["in.onnx", "out.onnx"]
    assert report.seconds.keys() >= {"load", "view", "match", "splice", "save", "verify"}


def test_out_equal_to_in_needs_overwrite(model_file):
    with pytest.raises(UsageError, match="is the input file; pass --overwrite"):
        so.apply_file(model_file, model_file)
    with pytest.raises(UsageError):
        so.apply_file(model_file, model_file.parent / "." / "in.onnx")
    so.apply_file(model_file, model_file, overwrite=True)
    assert sum(n.name.startswith("seinject/") for n in onnx.load(model_file).graph.node) == 2 * 10  # 10 nodes per block
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["in.onnx"]


def test_failed_verification_leaves_nothing(model_file, monkeypatch):
    """A (simulated) bug that makes the block not the identity: exit with VerificationError, no output."""
    import seinject.onnx.gates as onnx_gates
    import seinject.onnx.splice as splice

    out = model_file.parent / "out.onnx"
    out.write_bytes(b"previous output")
    real = onnx_gates.build_gate
    monkeypatch.setattr(splice, "build_gate", lambda *a, **k: real(*a[:4], a[4].with_overrides(init="random"),
                                                                   *a[5:], **k))
    with pytest.raises(VerificationError, match="outputs differ"):
        so.apply_file(model_file, out)
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["in.onnx", "out.onnx"]
    assert out.read_bytes() == b"previous output"


def test_external_data_is_written_to_a_new_file(tmp_path):
    src = external_model(tmp_path / "a")
    before = digest(src.parent)
    out = tmp_path / "a" / "out.onnx"
    (tmp_path / "a" / "out.onnx.data").write_bytes(b"junk" * 1000)  # an old output's data: replaced, not appended
    report = so.apply_file(src, out)
    assert report.verified and report.max_abs_diff == 0.0
    assert {k: v for k, v in digest(src.parent).items() if k in before} == before
    assert sorted(p.name for p in src.parent.iterdir()) == ["in.onnx", "out.onnx", "out.onnx.data", "weights.bin"]
    header = onnx.load(out, load_external_data=False)
    locations = {e.value for t in header.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"out.onnx.data"}
    lengths = sum(int(e.value) for t in header.graph.initializer for e in t.external_data if e.key == "length")
    assert (tmp_path / "a" / "out.onnx.data").stat().st_size < lengths + 4096  # no junk kept before the new data
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert max_diff(src, out, x) == 0.0


def test_an_output_data_file_that_is_the_inputs_weights_is_refused(tmp_path):
    src = external_model(tmp_path, location="out.onnx.data")  # the name the output would take
    before = digest(tmp_path)
    with pytest.raises(UsageError, match="output data file .*out.onnx.data' is the input or one of its"):
        so.apply_file(src, tmp_path / "out.onnx")
    assert digest(tmp_path) == before


def test_moving_an_external_data_model_to_another_folder(tmp_path):
    src = external_model(tmp_path / "a")
    (tmp_path / "b").mkdir()
    so.apply_file(src, tmp_path / "b" / "model.onnx")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["model.onnx", "model.onnx.data"]
    onnx.checker.check_model(str(tmp_path / "b" / "model.onnx"), full_check=True)


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_external_data_outside_the_folder_is_refused(tmp_path, where):
    outside = external_model(tmp_path / "outside")
    secret = outside.parent / "weights.bin"
    folder = tmp_path / "model"
    folder.mkdir()
    model = onnx.load(outside, load_external_data=False)
    location = {"parent": "../outside/weights.bin", "absolute": str(secret), "symlink": "link.bin"}[where]
    if where == "symlink":
        os.symlink(secret, folder / "link.bin")
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path = folder / "m.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsafeModelError, match="outside the model's folder; refused"):
        so.apply_file(path, folder / "out.onnx")
    with pytest.raises(UnsafeModelError):
        so.plan(path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["m.onnx"] + (["link.bin"] if where == "symlink" else []))


@pytest.mark.parametrize("content, message", [
    (b"this is not an onnx model\n", "not an ONNX model"),
    (b"", "not an ONNX model (no ir_version or no graph)"),
    (None, "not an ONNX model (protobuf parse failed"),
])
def test_not_an_onnx_file(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    if content is None:  # a truncated (corrupt) protobuf
        content = residual_net().SerializeToString()[:-7]
    path.write_bytes(content)
    with pytest.raises(ModelError, match=re.escape(message)):
        so.apply_file(path, tmp_path / "out.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        so.plan(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="not a file"):
        so.plan(tmp_path)


@pytest.mark.parametrize("opset, message", [(10, "unsupported opset 10: seinject needs opset >= 11"),
                                            (99, "unsupported opset 99")])
def test_unsupported_opset(tmp_path, opset, message):
    model = residual_net()
    model.opset_import[0].version = opset
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=re.escape(message)):
        so.apply_file(tmp_path / "m.onnx", tmp_path / "out.onnx")


def test_unknown_rule_suggests_closest(model_file):
    with pytest.raises(RuleNotFoundError, match="did you mean 'residual_branch'"):
        so.apply_file(model_file, model_file.parent / "out.onnx", "residual_brnch")


def test_no_site_warns_and_writes_nothing_strict_raises(model_file):
    out = model_file.parent / "out.onnx"
    with pytest.warns(SEInjectWarning, match="inserted no SE block"):
        report = so.apply_file(model_file, out, "after_concat")
    assert report.output is None and not out.exists()
    with pytest.raises(NoSitesError):
        so.apply_file(model_file, out, "after_concat", strict=True)
    assert not out.exists()


def test_second_run_inserts_nothing(model_file):
    out = model_file.parent / "out.onnx"
    so.apply_file(model_file, out, "before_residual")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = so.apply_file(out, model_file.parent / "again.onnx", "before_residual")
    assert not again.inserted and {s.reason for s in again.skipped} == {"already has SE"}
    assert not (model_file.parent / "again.onnx").exists()
    other = so.apply_file(out, model_file.parent / "both.onnx", "after_residual")  # another rule still applies
    assert len(other.inserted) == 2 and other.verified


def test_model_types_in_and_out():
    gs = pytest.importorskip("onnx_graphsurgeon")
    onnx_ir = pytest.importorskip("onnx_ir")

    model = residual_net()
    copy = model.SerializeToString()
    out = so.apply(model)
    assert isinstance(out, onnx.ModelProto) and model.SerializeToString() == copy  # not changed in place
    assert isinstance(so.apply(copy), bytes)
    graph = so.apply(gs.import_onnx(model))
    assert isinstance(graph, gs.Graph) and sum(n.op == "GlobalAveragePool" for n in graph.nodes) == 3
    ir_model = so.apply(onnx_ir.serde.deserialize_model(model))
    assert isinstance(ir_model, onnx_ir.Model)
    assert so.apply(model, inplace=True) is model
    assert len(model.graph.node) > len(onnx.load_from_string(copy).graph.node)
    with pytest.raises(ModelError, match="expected an ONNX model"):
        so.apply(42)


def test_apply_with_verify_and_report():
    new, report = so.apply(residual_net(), "residual_branch", verify=True, return_report=True, ratio=4)
    assert report.verified and report.max_abs_diff == 0.0
    assert report.added_params == 2 * (2 * 8 * 2 + 2 + 8)
    assert report.to_dict()["sites"][0]["module"] == "seinject/b0.convB"
    assert "SE params: 84" in str(report)
    assert "added MACs per sample: 64 + pool and scale at 2 site(s) with a symbolic spatial size" in str(report)
    assert "added MACs per sample: 576" in str(so.apply(residual_net(), "residual_branch", ratio=4,
                                                         input_shapes={"x": (1, 3, 4, 4)}, return_report=True)[1])


def test_plans_and_reports_have_one_shape_in_both_backends(model_file):
    """The same keys from torch and ONNX; a report's keys are its plan's plus the outcome; MACs only from ONNX."""
    import torch.nn as nn

    import seinject

    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    torch_plan, onnx_plan = seinject.plan(net, "conv_block"), so.plan(model_file, "residual_branch")
    torch_report = seinject.report(seinject.apply(net, "conv_block"))
    onnx_report = so.apply_file(model_file, model_file.parent / "out.onnx", "residual_branch")
    assert torch_plan.to_dict().keys() == onnx_plan.to_dict().keys() < onnx_report.to_dict().keys()
    assert torch_report.to_dict().keys() == onnx_report.to_dict().keys()
    assert torch_report.to_dict()["sites"][0].keys() == onnx_report.to_dict()["sites"][0].keys()
    assert torch_report.added_macs is None and "MACs" not in str(torch_report)
    assert onnx_plan.input == onnx_report.input == str(model_file)
    assert onnx_report.added_macs == sum(block.site.macs for block in onnx_report) > 0
    assert str(onnx_report).splitlines()[1].split()[-1] == "MACs"


@pytest.mark.skipif(not os.environ.get("SEINJECT_LARGE_TESTS"), reason="writes 2.2 GB; set SEINJECT_LARGE_TESTS=1")
def test_model_over_2gb(tmp_path):
    """A 2.24 GB embedding table (external data) read by a Gather: loads, rewrites, verifies, saves."""
    from onnx import TensorProto

    from tests.onnx_backend.graphs import Builder, tensor

    count = 560_000_000
    with open(tmp_path / "big.data", "wb") as f:  # zeros, written in chunks
        chunk = np.zeros(10_000_000, dtype=np.float32).tobytes()
        for _ in range(count // 10_000_000):
            f.write(chunk)
    table = TensorProto(name="table", data_type=TensorProto.FLOAT, dims=[count],
                        data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "big.data"), ("offset", "0"), ("length", str(4 * count))):
        entry = table.external_data.add()
        entry.key, entry.value = key, value
    b = Builder()
    b.inits.append(table)
    picked = b.op("Gather", ["table", b.const(np.arange(8), dtype=np.int64)], name="pick")
    bias = b.op("Reshape", [picked, b.const(np.array([1, 8, 1, 1]), dtype=np.int64)], name="bias")
    h = b.op("Relu", [b.op("Add", [b.conv("x", 8, 8, name="conv_a"), bias], name="addbias")], name="r")
    y = b.op("Relu", [b.op("Add", [b.conv(h, 8, 8, name="conv_b"), h], name="join")], name="out")
    onnx.save(b.model([tensor("x", ["N", 8, 16, 16])], [tensor(y, None)]), tmp_path / "big.onnx")
    report = so.apply_file(tmp_path / "big.onnx", tmp_path / "out.onnx")
    assert report.verified and report.max_abs_diff == 0.0 and len(report.inserted) == 1
    assert (tmp_path / "out.onnx.data").stat().st_size > 2**31
    assert (tmp_path / "big.data").stat().st_size == 4 * count
