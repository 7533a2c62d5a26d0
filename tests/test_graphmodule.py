"""apply on an fx.GraphModule edits its own graph: `.code` shows the blocks, recompile() keeps them."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.fx as fx
from torch import nn

import seinject
from seinject.torch.block import SqueezeExcite
from tests.helpers import max_diff
from tests.models import resnet_tiny
from tests.models.resnet import BasicBlock


def se_blocks(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, SqueezeExcite)}


def traced_resnet():
    torch.manual_seed(0)
    return fx.symbolic_trace(resnet_tiny()), torch.randn(2, 3, 32, 32)


def test_blocks_go_into_the_graph_and_survive_recompile():
    gm, x = traced_resnet()
    new = seinject.apply(gm, rule="after_residual")
    assert type(new).__bases__ == (fx.GraphModule,)  # fx's own per-instance class, no swap
    names = [b.module for b in seinject.report(new).inserted]
    assert len(names) == 4 and sorted(names) == sorted(se_blocks(new))
    assert all(f"self.{name}(" in new.code for name in names)
    assert max_diff(gm, new, x, training=False) == 0.0 and max_diff(gm, new, x, training=True) == 0.0
    new.recompile()
    assert all(f"self.{name}(" in new.code for name in names)
    assert max_diff(gm, new, x, training=False) == 0.0
    calls = []
    hook = new.get_submodule(names[0]).register_forward_hook(lambda *args: calls.append(1))
    new.eval()(x)
    hook.remove()
    assert calls == [1]
    with torch.no_grad():
        new.get_submodule(names[-1]).fc2.bias.fill_(1.0)
    assert max_diff(gm, new, x, training=False) > 0.0


def test_remove_gives_back_the_original_code_and_outputs():
    gm, x = traced_resnet()
    new = seinject.apply(gm, rule="residual_branch")
    with torch.no_grad():
        next(iter(se_blocks(new).values())).fc2.bias.fill_(0.5)
    with pytest.warns(seinject.SEInjectWarning, match="no longer at identity"):
        restored = seinject.remove(new)
    assert restored.code == gm.code and not se_blocks(restored)
    assert list(restored.state_dict()) == list(gm.state_dict())
    assert max_diff(gm, restored, x, training=False) == 0.0


def test_second_apply_inserts_nothing():
    gm, _ = traced_resnet()
    once = seinject.apply(gm, rule="after_residual")
    with pytest.warns(seinject.SEInjectWarning, match="inserted no SE block"):
        twice = seinject.apply(once, rule="after_residual")
    assert twice.code == once.code
    assert [s.reason for s in seinject.report(twice).skipped] == ["already has SE"] * 4


@pytest.mark.parametrize("round_trip", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_a_rewritten_graphmodule_pickles_and_still_removes(round_trip):
    gm, x = traced_resnet()
    new = seinject.apply(gm, rule="after_residual").eval()
    with torch.no_grad():
        for block in se_blocks(new).values():
            block.fc2.bias.fill_(0.25)
    loaded = round_trip(new)
    assert loaded.code == new.code and sorted(se_blocks(loaded)) == sorted(se_blocks(new))
    assert torch.equal(loaded.eval()(x), new(x))
    with pytest.warns(seinject.SEInjectWarning):
        restored = seinject.remove(loaded)
    assert restored.code == gm.code and max_diff(gm, restored, x, training=False) == 0.0


def test_a_graphmodule_inside_a_model_gets_the_blocks_in_its_graph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), fx.symbolic_trace(BasicBlock(8, 8)))
    x = torch.randn(2, 3, 16, 16)
    new = seinject.apply(model, rule="after_residual")
    inner = new[1]
    assert [b.module for b in seinject.report(new).inserted] == ["1.se"]
    assert type(inner).__bases__ == (fx.GraphModule,) and "self.se(" in inner.code
    assert max_diff(model, new, x, training=False) == 0.0
    inner.recompile()
    with torch.no_grad():
        inner.se.fc2.bias.fill_(1.0)
    assert max_diff(model, new, x, training=False) > 0.0
    with pytest.warns(seinject.SEInjectWarning, match="no longer at identity"):
        restored = seinject.remove(new)
    assert restored[1].code == model[1].code


def test_copies_of_a_rewritten_graphmodule_keep_the_report_and_the_blocks(tmp_path):
    """deepcopy keeps only what a GraphModule's meta preserves; pickle drops meta: blocks are found by their mark."""
    torch.manual_seed(0)
    rewritten = seinject.apply(torch.fx.symbolic_trace(resnet_tiny()), rule="residual_branch")
    copied = copy.deepcopy(rewritten)
    assert seinject.report(copied) is not None and len(seinject.report(copied)) == 4
    seinject.save(copied, tmp_path / "gm.safetensors")
    twice = copy.deepcopy(pickle.loads(pickle.dumps(rewritten)))
    assert len(seinject.se_modules(twice)) == 4
    assert seinject.mark_trainable(twice).trainable == sum(p.numel() for _, p in seinject.se_parameters(rewritten))
