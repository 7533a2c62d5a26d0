"""`seinject rules list | show | check`: output and exit codes (no ONNX needed)."""

from __future__ import annotations

import json

import pytest

from seinject import list_rules
from seinject.cli import main


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, err = cli(capsys, "rules", "list")
    assert code == 0 and err == ""
    assert out.splitlines()[0].split() == ["rule", "position", "ratio", "description"]
    assert [line.split()[0] for line in out.splitlines()[2:2 + len(list_rules())]] == list_rules()
    code, out, _ = cli(capsys, "rules", "list", "--json")
    data = json.loads(out)
    assert [r["name"] for r in data] == list_rules() == [
        "after_concat", "after_residual", "before_residual", "conv_block", "identity_branch",
        "inverted_residual", "residual_branch"]
    assert {r["name"]: r["position"] for r in data}["residual_branch"] == "branch_end"


def test_show(capsys):
    code, out, _ = cli(capsys, "rules", "show", "residual_branch")
    assert code == 0 and "name: residual_branch" in out and "position: branch_end" in out
    code, out, _ = cli(capsys, "rules", "show", "inverted_residual", "--json")
    data = json.loads(out)
    assert data["name"] == "inverted_residual" and data["se"]["ratio"] == 4
    assert [p["kinds"] for p in data["pattern"]] == [["conv"], ["norm"], ["act"], ["conv"]]


def test_show_unknown_suggests(capsys):
    code, out, err = cli(capsys, "rules", "show", "residual_brnch")
    assert code == 2 and out == ""
    assert "unknown rule 'residual_brnch' (did you mean 'residual_branch'?)" in err


def test_check(capsys, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: good\npattern:\n  - {kind: add, residual: true, id: join}\n"
                    "  - {kind: act, optional: true, id: act}\ninsert: {position: after, node: act}\n")
    code, out, err = cli(capsys, "rules", "check", good)
    assert code == 0 and out.strip() == f"{good}: ok: rule 'good': add → act?; insert after act"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\npattern:\n  - {kind: conv}\n  - {kind: actt}\n")
    code, out, err = cli(capsys, "rules", "check", good, bad)
    assert code == 2 and f"{bad}:4: unknown kind 'actt' (did you mean 'act'?)" in err
    code, out, err = cli(capsys, "rules", "check", tmp_path / "missing.yaml")
    assert code == 2 and "no such file" in err


@pytest.mark.parametrize("argv", [["rules"], ["rules", "frobnicate"], ["rules", "check"]])
def test_usage_errors(capsys, argv):
    assert cli(capsys, *argv)[0] == 2
