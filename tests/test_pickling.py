"""Rewritten models pickle whole: pickle, torch.save in a fresh process, deepcopy and spawn keep their blocks."""

from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import seinject
from seinject.torch.block import SqueezeExcite
from tests.helpers import build
from tests.models.control_flow import TrainEvalBlock

ROOT = Path(__file__).resolve().parents[1]

# (fixture, rule): blocks in graph-rewritten modules, on the root, attached to Sequential
# children (after a leaf, and before child 0), beside untraceable parts
CASES = [
    ("resnet_tiny", "after_residual"),
    ("resnet_deep", "residual_branch"),
    ("mobilenetv2_tiny", "before_residual"),
    ("vgg_tiny", "conv_block"),
    ("functional_resnet", "after_residual"),
    ("data_dependent_net", "residual_branch"),
    ("untraceable_block_net", "after_residual"),
]


def mode_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), TrainEvalBlock())


def trained(model: torch.nn.Module, rule: str) -> torch.nn.Module:
    """The model rewritten, with every block moved off identity (so it visibly acts)."""
    new = seinject.apply(model, rule=rule)
    torch.manual_seed(2)
    with torch.no_grad():
        for block in se_blocks(new).values():
            block.fc2.weight.normal_()
            block.fc2.bias.normal_()
    return new


def se_blocks(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, SqueezeExcite)}


def outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def check_same_model(loaded, new, plain, x):
    """loaded computes what new computes, has its blocks and classes, and removes to plain."""
    assert torch.equal(outputs(loaded, x), outputs(new, x))
    assert not torch.equal(outputs(loaded, x), outputs(plain, x))  # the blocks act
    assert list(se_blocks(loaded)) == list(se_blocks(new))
    assert [type(m) for m in loaded.modules()] == [type(m) for m in new.modules()]
    assert [b.module for b in seinject.report(loaded).inserted] == [b.module for b in seinject.report(new).inserted]
    with pytest.warns(seinject.SEInjectWarning, match="no longer at identity"):
        restored = seinject.remove(loaded)
    assert not se_blocks(restored) and list(restored.state_dict()) == list(plain.state_dict())
    assert [type(m) for m in restored.modules()] == [type(m) for m in plain.modules()]
    assert torch.equal(outputs(restored, x), outputs(plain, x))


@pytest.mark.parametrize("fixture,rule", CASES)
def test_pickle_round_trip_keeps_outputs_blocks_and_remove(fixture, rule):
    plain, x = build(fixture)
    new = trained(plain, rule)
    check_same_model(pickle.loads(pickle.dumps(new)), new, plain, x)


@pytest.mark.parametrize("fixture,rule", CASES)
def test_deepcopy_keeps_outputs_blocks_and_remove(fixture, rule):
    plain, x = build(fixture)
    new = trained(plain, rule)
    check_same_model(copy.deepcopy(new), new, plain, x)


def test_train_eval_dispatch_survives_pickling_in_both_modes():
    plain, x = mode_net(), torch.randn(2, 3, 8, 8)
    new = trained(plain, "after_residual")
    loaded = pickle.loads(pickle.dumps(new))
    with torch.no_grad():  # train mode on copies: it updates the norm's running statistics
        assert torch.equal(copy.deepcopy(loaded).train()(x), copy.deepcopy(new).train()(x))
        assert not torch.equal(copy.deepcopy(loaded).train()(x), outputs(loaded, x))  # the other graph
    check_same_model(loaded, new, plain, x)


def test_modules_that_share_a_class_share_it_after_loading():
    plain, _ = build("resnet_deep")
    new = seinject.apply(plain, rule="residual_branch")
    blocks = [m for m in new.modules() if "se" in m._modules]
    assert len(blocks) == 8 and len({type(b) for b in blocks}) == 1
    data = pickle.dumps(new)
    assert data.count(b"def forward") == 1  # the class's recipe is written once
    loaded = pickle.loads(data)
    assert {type(m) for m in loaded.modules() if "se" in m._modules} == {type(blocks[0])}


def test_torch_save_then_load_in_a_fresh_process(tmp_path):
    cases = [(f, r) for f, r in CASES] + [("mode_net", "after_residual")]
    expected = {}
    for fixture, rule in cases:
        plain, x = (mode_net(), torch.randn(2, 3, 8, 8)) if fixture == "mode_net" else build(fixture)
        new = trained(plain, rule)
        torch.save(new, tmp_path / f"{fixture}.pt")
        torch.save(x, tmp_path / f"{fixture}.x")
        expected[fixture] = (outputs(new, x), outputs(plain, x), list(se_blocks(new)))
    script = (
        "import sys, warnings, torch, seinject\n"
        "from seinject.torch.block import SqueezeExcite\n"
        "folder, names = sys.argv[1], sys.argv[2:]\n"
        "for name in names:\n"
        "    model = torch.load(f'{folder}/{name}.pt', weights_only=False).eval()\n"
        "    x = torch.load(f'{folder}/{name}.x')\n"
        "    blocks = [n for n, m in model.named_modules() if isinstance(m, SqueezeExcite)]\n"
        "    owners = [m for m in model.modules() if any(isinstance(c, SqueezeExcite) for c in m.children())]\n"
        "    with torch.no_grad():\n"
        "        out = model(x)\n"
        "    with warnings.catch_warnings():\n"
        "        warnings.simplefilter('ignore')\n"
        "        restored = seinject.remove(model)\n"
        "    with torch.no_grad():\n"
        "        out_removed = restored.eval()(x)\n"
        "    classes = len({type(m) for m in owners})\n"
        "    torch.save((out, out_removed, blocks, classes), f'{folder}/{name}.out')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path), *(f for f, _ in cases)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for fixture, _ in cases:
        out, out_removed, blocks, classes = torch.load(tmp_path / f"{fixture}.out")
        want, plain_out, want_blocks = expected[fixture]
        assert torch.equal(out, want) and blocks == want_blocks, fixture
        assert torch.equal(out_removed, plain_out), fixture
        if fixture == "resnet_deep":
            assert classes == 1  # the 8 blocks share one rewritten class in the new process too


def _run_in_child(rank: int, model: torch.nn.Module, x: torch.Tensor, path: str) -> None:
    blocks = [n for n, m in model.named_modules() if isinstance(m, SqueezeExcite)]
    torch.save((outputs(model, x), blocks), path)


@pytest.mark.parametrize("fixture,rule", [("resnet_tiny", "after_residual"), ("vgg_tiny", "conv_block")])
def test_multiprocessing_spawn_gets_the_rewritten_model(fixture, rule, tmp_path):
    plain, x = build(fixture)
    new = trained(plain, rule)
    path = str(tmp_path / "out.pt")
    mp.spawn(_run_in_child, args=(new, x, path), nprocs=1)
    out, blocks = torch.load(path)
    assert torch.equal(out, outputs(new, x)) and blocks == list(se_blocks(new))


def test_torch_save_load_in_memory_round_trip():
    plain, x = build("mobilenetv2_tiny")
    new = trained(plain, "inverted_residual")
    buffer = io.BytesIO()
    torch.save(new, buffer)
    buffer.seek(0)
    check_same_model(torch.load(buffer, weights_only=False), new, plain, x)
