"""`seinject onnx`: output, --json, --dry-run, and every exit code (0, 1, 2, 3), in-process and as a command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import onnx
import pytest

from seinject.cli import _overrides, build_parser, main
from seinject.rule.config import SEConfig
from seinject.rule.schema import Filters
from tests.onnx_backend.graphs import Builder, residual_net, tensor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "in.onnx"
    onnx.save(residual_net(), path)
    return path


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_success_prints_only_the_report(capsys, model_file):
    out_file = model_file.parent / "out.onnx"
    code, out, err = cli(capsys, "onnx", model_file, out_file)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "rule after_residual: inserted 2 SE block(s)"
    assert lines[1].split() == ["block", "site", "stage", "channels", "hidden", "params", "MACs"]
    assert lines[3].split()[:2] == ["seinject/b0.act", "after"]
    assert "verified: max |new - old| = 0 (onnx.checker full_check + onnxruntime on x=2x3x64x64)" in out
    assert out.rstrip().endswith(f"wrote {out_file}")
    assert out_file.is_file()


def test_json_report(capsys, model_file):
    code, out, err = cli(capsys, "onnx", model_file, model_file.parent / "out.onnx", "--json",
                         "--rule", "residual_branch", "--ratio", "4", "--divisor", "8")
    assert code == 0
    data = json.loads(out)
    assert data["rule"] == "residual_branch" and data["verified"] is True and data["max_abs_diff"] == 0.0
    assert [(s["name"], s["channels"], s["hidden"], s["params"]) for s in data["sites"]] == [
        ("b0.convB", 8, 8, 144), ("b1.convB", 8, 8, 144)]
    assert data["added_params"] == 288 and data["added_macs"] == 2 * (2 * 8 * 8 + 2 * 8 * 64 * 64)
    assert data["input_shapes"] == {"x": [2, 3, 64, 64]}


def test_dry_run_writes_nothing(capsys, model_file):
    code, out, err = cli(capsys, "onnx", model_file, "--dry-run", "--rule", "before_residual")
    assert code == 0 and out.startswith("rule before_residual: 2 site(s), +50 params")
    assert "before b0.convA (branch start)" in out and "added MACs per sample: 131,104" in out
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["in.onnx"]
    code, out, _ = cli(capsys, "onnx", model_file, model_file.parent / "o.onnx", "--dry-run", "--json")
    assert code == 0 and len(json.loads(out)["sites"]) == 2 and not (model_file.parent / "o.onnx").exists()


def test_rule_from_a_yaml_file_and_filters(capsys, model_file, tmp_path):
    rule = tmp_path / "late.yaml"
    rule.write_text("name: late\npattern:\n  - {kind: add, residual: true, id: join}\n"
                    "insert: {position: branch_end, node: join}\nfilters: {last: 1}\nse: {ratio: 2}\n")
    code, out, _ = cli(capsys, "onnx", model_file, tmp_path / "out.onnx", "--rule", rule, "--json")
    assert code == 0 and [(s["name"], s["hidden"]) for s in json.loads(out)["sites"]] == [("b1.convB", 4)]
    code, out, _ = cli(capsys, "onnx", model_file, tmp_path / "o2.onnx", "--include", "b0", "--json",
                       "--act", "silu", "--gate", "hard_sigmoid")
    assert code == 0 and [s["name"] for s in json.loads(out)["sites"]] == ["b0.act"]


@pytest.mark.parametrize("case, message", [
    ("unknown_rule", "unknown rule 'after_residul' (did you mean 'after_residual'?)"),
    ("not_onnx", "not an ONNX model"),
    ("corrupt", "not an ONNX model (protobuf parse failed"),
    ("opset", "unsupported opset 9"),
    ("missing", "no such file"),
    ("same_file", "is the input file; pass --overwrite"),
    ("outside", "outside the model's folder; refused"),
    ("bad_rule_file", "bad.yaml:2: unknown key 'patern'"),
    ("no_out", "give OUT"),
    ("unknown_input", "input shape given for unknown input(s) y"),
])
def test_usage_rule_and_input_errors_exit_2(capsys, model_file, case, message):
    folder = model_file.parent
    src, args = model_file, []
    if case == "unknown_rule":
        args = ["--rule", "after_residul"]
    elif case == "not_onnx":
        src = folder / "notes.onnx"
        src.write_text("hello")
    elif case == "corrupt":
        src = folder / "corrupt.onnx"
        src.write_bytes(model_file.read_bytes()[:-11])
    elif case == "opset":
        model = residual_net()
        model.opset_import[0].version = 9
        src = folder / "old.onnx"
        onnx.save(model, src)
    elif case == "missing":
        src = folder / "missing.onnx"
    elif case == "outside":
        model = residual_net()
        onnx.save_model(model, folder / "ext.onnx", save_as_external_data=True, location="w.bin", size_threshold=0)
        proto = onnx.load(folder / "ext.onnx", load_external_data=False)
        for t in proto.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = "../../etc/w.bin"
        src = folder / "evil.onnx"
        onnx.save(proto, src)
    elif case == "bad_rule_file":
        (folder / "bad.yaml").write_text("name: bad\npatern: []\n")
        args = ["--rule", folder / "bad.yaml"]
    elif case == "unknown_input":
        args = ["--input-shape", "y:1,3,8,8"]
    out_file = src if case == "same_file" else folder / "out.onnx"
    argv = ["onnx", src] + ([] if case == "no_out" else [out_file]) + args
    before = sorted(p.name for p in folder.iterdir())
    code, out, err = cli(capsys, *argv)
    assert code == 2, err
    assert out == "" and message in err and err.startswith("seinject: error: ")
    assert sorted(p.name for p in folder.iterdir()) == before


def test_argparse_usage_errors_exit_2(capsys, model_file):
    assert cli(capsys, "onnx", model_file, "o.onnx", "--input-shape", "x:1,a")[0] == 2
    assert cli(capsys, "onnx", model_file, "o.onnx", "--gate", "tanh")[0] == 2
    assert cli(capsys, "onnx")[0] == 2
    assert cli(capsys)[0] == 2


def test_se_and_filter_options_are_the_config_fields_with_their_help(capsys):
    code, out, _ = cli(capsys, "onnx", "--help")
    text = "".join(out.split())  # help lines wrap anywhere
    options = [f for f in [*fields(SEConfig), *fields(Filters)] if f.metadata.get("cli", True)]
    assert code == 0 and len(options) == 25
    for f in options:
        assert f"--{f.name.replace('_', '-')}" in text and "".join(f.metadata["help"].split()) in text
    assert "--outside-residual" not in text


def test_options_reach_the_rule_as_keyword_overrides():
    args = build_parser().parse_args(["onnx", "a.onnx", "--stages", "3,4", "--stages", "1", "--include", "A",
                                      "--include", "B", "--ratio", "8", "--min-channels", "16", "--act", "silu"])
    assert _overrides(args) == {"ratio": 8, "act": "silu", "include": ["A", "B"], "min_channels": 16,
                                "stages": [3, 4, 1]}


def test_channel_bounds_are_reported_as_skips(capsys, model_file):
    code, out, _ = cli(capsys, "onnx", model_file, "--dry-run", "--max-channels", "4")
    assert code == 0 and "skipped b0.act: 8 channels > max_channels 4" in out
    code, out, _ = cli(capsys, "onnx", model_file, "--dry-run", "--min-channels", "16", "--json")
    assert json.loads(out)["skipped"] == [{"name": "b0.act", "reason": "8 channels < min_channels 16"},
                                          {"name": "b1.act", "reason": "8 channels < min_channels 16"}]
    code, _, err = cli(capsys, "onnx", model_file, "--dry-run", "--gate", "tanh")
    assert code == 2 and "SE setting 'gate'" in err


def test_overwrite_replaces_the_input_after_verification(capsys, model_file):
    code, out, _ = cli(capsys, "onnx", model_file, model_file, "--overwrite", "-q")
    assert code == 0 and "verified" in out
    assert sum(n.op_type == "GlobalAveragePool" and n.name.startswith("seinject/")
               for n in onnx.load(model_file).graph.node) == 2


def test_no_site_is_a_warning_or_exit_3_with_strict(capsys, model_file):
    out_file = model_file.parent / "out.onnx"
    code, out, err = cli(capsys, "onnx", model_file, out_file, "--rule", "after_concat")
    assert code == 0 and "seinject: warning: rule 'after_concat' inserted no SE block" in err
    assert not out_file.exists()
    code, out, err = cli(capsys, "onnx", model_file, out_file, "--rule", "after_concat", "-q")
    assert code == 0 and err == ""
    code, out, err = cli(capsys, "onnx", model_file, out_file, "--rule", "after_concat", "--strict")
    assert code == 3 and "inserted no SE block" in err and not out_file.exists()
    code, out, err = cli(capsys, "onnx", model_file, "--dry-run", "--rule", "after_concat", "--strict")
    assert code == 3


def test_second_run_inserts_nothing(capsys, model_file):
    out_file = model_file.parent / "out.onnx"
    assert cli(capsys, "onnx", model_file, out_file)[0] == 0
    code, out, err = cli(capsys, "onnx", out_file, model_file.parent / "again.onnx", "--strict")
    assert code == 3 and "already has SE" in err
    code, out, err = cli(capsys, "onnx", out_file, "--dry-run")
    assert "skipped b0.act: already has SE" in out


def test_verification_failure_exits_1_and_writes_nothing(capsys, model_file, monkeypatch):
    import seinject.onnx.gates as onnx_gates
    import seinject.onnx.splice as splice

    real = onnx_gates.build_gate
    monkeypatch.setattr(splice, "build_gate", lambda *a, **k: real(*a[:4], a[4].with_overrides(init="random"),
                                                                   *a[5:], **k))
    code, out, err = cli(capsys, "onnx", model_file, model_file.parent / "out.onnx")
    assert code == 1 and "outputs differ: max |new - old|" in err and out == ""
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["in.onnx"]


def test_runtime_failure_exits_1_and_input_shape_fixes_it(capsys, tmp_path):
    """Symbolic spatial dims but a Reshape that needs 8×8: the default 64×64 cannot run."""
    b = Builder()
    h = b.op("Relu", [b.op("Add", [b.conv("x", 4, 4, name="conv"), "x"], name="join")], name="act")
    b.op("Reshape", [h, b.const(np.array([0, 256]), dtype=np.int64)], name="flat")
    path = tmp_path / "fixed.onnx"
    onnx.save(b.model([tensor("x", ["N", 4, "H", "W"])], [tensor("flat", ["N", 256])]), path)
    code, out, err = cli(capsys, "onnx", path, tmp_path / "out.onnx")
    assert code == 1 and "onnxruntime failed to run the original model" in err and "--input-shape" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.onnx"]
    code, out, err = cli(capsys, "onnx", path, tmp_path / "out.onnx", "--input-shape", "x:3,4,8,8")
    assert code == 0 and "on x=3x4x8x8" in out
    code, out, err = cli(capsys, "onnx", path, tmp_path / "out2.onnx", "--input-shape", "1,4,8,8", "--json")
    assert code == 0 and json.loads(out)["input_shapes"] == {"x": [1, 4, 8, 8]}


def test_no_verify_and_verbose(capsys, model_file):
    code, out, err = cli(capsys, "onnx", model_file, model_file.parent / "out.onnx", "--no-verify", "-v")
    assert code == 0 and "not verified (--no-verify)" in out
    assert "seinject: seconds: load" in err


@pytest.mark.parametrize("argv", [["--help"], ["onnx", "--help"], ["rules", "--help"], ["rules", "list", "--help"],
                                  ["rules", "show", "--help"], ["rules", "check", "--help"]])
def test_help_everywhere_with_examples(capsys, argv):
    code, out, _ = cli(capsys, *argv)
    assert code == 0 and "example" in out and "seinject" in out


def test_as_a_command(tmp_path):
    """The real process: exit codes through sys.exit, the report alone on stdout."""
    src = tmp_path / "in.onnx"
    onnx.save(residual_net(), src)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "seinject", "onnx", str(src), str(tmp_path / "out.onnx"), "--json"],
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verified"] is True
    bad = subprocess.run([sys.executable, "-m", "seinject", "onnx", str(tmp_path / "nope.onnx"), "o.onnx"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == "" and "no such file" in bad.stderr


def test_bundled_example(capsys, tmp_path):
    example = ROOT / "examples" / "tiny_resnet.onnx"
    assert example.stat().st_size < 1_000_000
    code, out, _ = cli(capsys, "onnx", example, tmp_path / "tiny_se.onnx", "--json")
    data = json.loads(out)
    assert code == 0 and data["max_abs_diff"] == 0.0
    assert [s["name"] for s in data["sites"]] == [f"layer{i}.0.relu_1" for i in range(1, 5)]


def test_imports_stay_light():
    """`import seinject` imports neither onnx nor torch; the ONNX backend and the CLI do not import torch."""
    code = ("import sys, seinject; assert 'onnx' not in sys.modules and 'torch' not in sys.modules; "
            "import seinject.cli, seinject.onnx.api; assert 'torch' not in sys.modules, 'torch'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
