"""Excitation analysis (seinject.excitations), removing some blocks (remove(blocks=...)) and folding
saturated blocks into fixed scales (seinject.fold), on small in-repo models."""

import copy

import pytest
import torch
from torch import nn

import seinject
from seinject.errors import ConfigError, ModelError
from seinject.torch.fold import ChannelScale
from tests.helpers import build


def trained(model, seed=0):
    """Move every SE block away from identity (what fine-tuning does)."""
    torch.manual_seed(seed)
    for _, block in seinject.se_modules(model):
        nn.init.normal_(block.fc2.weight, std=0.5)
        nn.init.normal_(block.fc2.bias, std=0.5)
    return model


def constant_gate(block, seed=0):
    """A gate that ignores its input: fc1 all zero, so only fc2's bias (random) sets the scale."""
    torch.manual_seed(seed)
    nn.init.zeros_(block.fc1.weight)
    nn.init.normal_(block.fc2.weight)
    nn.init.normal_(block.fc2.bias)


class TwoStages(nn.Module):
    """Stage 1's block sees class-independent noise; stage 2's block sees channels lit by the class."""

    def __init__(self, classes=4, channels=8):
        super().__init__()
        self.classes = classes
        self.stage1 = nn.Sequential(nn.Conv2d(3, channels, 1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.ReLU())

    def forward(self, x):
        return self.stage2(torch.cat([self.stage1(x[:, :3]), x[:, 3:]], 1))


def class_data(n=64, classes=4, channels=8):
    """Inputs whose channels 3.. carry a bump on channel 2·class: stage 2's squeeze knows the class."""
    torch.manual_seed(1)
    labels = torch.arange(n) % classes
    x = torch.randn(n, 3 + channels, 6, 6)
    x[:, 3:] = 0
    for i, y in enumerate(labels):
        x[i, 3 + 2 * int(y)] = 5.0
    return x, labels


def test_specificity_rises_where_the_class_reaches_the_block():
    model = seinject.apply(TwoStages(), "conv_block")
    names = [name for name, _ in seinject.se_modules(model)]
    assert names == ["stage1.1.se", "stage2.1.se"]
    torch.manual_seed(0)
    for _, block in seinject.se_modules(model):
        nn.init.normal_(block.fc1.weight)
        nn.init.normal_(block.fc2.weight)
    x, labels = class_data()
    ex = seinject.excitations(model, x, labels=labels)
    spec, sat = ex.specificity(), ex.saturation()
    assert ex.blocks == names and ex.classes == [0, 1, 2, 3] and ex.samples == 64
    assert spec["stage2.1.se"] > 0.9 and spec["stage1.1.se"] < 0.2, spec
    assert spec["stage2.1.se"] > spec["stage1.1.se"] + 0.5
    assert all(0.0 <= v <= 1.0 for v in sat.values())
    per_class = ex.per_class()["stage2.1.se"]
    assert per_class.shape == (4, 8)
    stage2_input = lambda k: torch.cat([model.stage1(x[labels == k, :3]), x[labels == k, 3:]], 1)  # noqa: E731
    with torch.no_grad():
        manual = torch.stack([model.stage2[1].se.gate_values(torch.relu(model.stage2[0](stage2_input(k))))
                              .mean(0) for k in range(4)]).double()
    assert torch.allclose(per_class, manual, atol=1e-6)


def test_a_constant_gate_is_fully_saturated_and_class_blind():
    model = seinject.apply(TwoStages(), "conv_block")
    constant_gate(model.stage2[1].se)
    x, labels = class_data()
    ex = seinject.excitations(model, x, labels=labels)
    assert ex.saturation()["stage2.1.se"] == pytest.approx(1.0, abs=1e-6)
    assert ex.specificity()["stage2.1.se"] == 0.0


def test_batches_from_a_loader_and_max_batches():
    model = seinject.apply(TwoStages(), "conv_block")
    x, labels = class_data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=16)
    full, early = seinject.excitations(model, loader), seinject.excitations(model, loader, max_batches=2)
    assert full.samples == 64 and early.samples == 32
    whole = seinject.excitations(model, x, labels=labels)
    assert torch.allclose(full.per_class()["stage1.1.se"], whole.per_class()["stage1.1.se"])
    assert seinject.excitations(model, x).classes == ["all"]
    model.train()
    seinject.excitations(model, x)
    assert model.training and all(m.training for m in model.modules())


def test_bad_calls_are_typed_errors():
    model = seinject.apply(TwoStages(), "conv_block")
    x, labels = class_data()
    with pytest.raises(ModelError, match="no SE block inserted by seinject"):
        seinject.excitations(TwoStages(), x)
    with pytest.raises(ConfigError, match="3 labels for 64 samples"):
        seinject.excitations(model, x, labels=[0, 1, 2])
    with pytest.raises(ConfigError, match="max_batches must be an integer >= 1"):
        seinject.excitations(model, x, max_batches=0)
    with pytest.raises(ConfigError, match="no SE block 'nope'"):
        seinject.excitations(model, x).plot("unused.png", blocks=["nope"])


def test_plot_writes_a_figure_like_fig6(tmp_path):
    model = trained(seinject.apply(build("resnet_tiny")[0], "after_residual"))
    x = torch.randn(12, 3, 32, 32)
    ex = seinject.excitations(model, x, labels=torch.arange(12) % 3)
    path = ex.plot(tmp_path / "fig6.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["fig6.png"]
    assert "specificity" in ex.table() and len(ex.table().splitlines()) == 2 + len(ex.blocks)


# -- remove(blocks=...) ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture,rule", [("resnet_tiny", "after_residual"), ("resnet_tiny", "residual_branch"),
                                          ("vgg_tiny", "conv_block")])  # rewritten forwards; attached blocks
def test_removing_some_blocks_keeps_the_others(fixture, rule):
    model, x = build(fixture)
    model = trained(seinject.apply(model, rule)).eval()
    names = [name for name, _ in seinject.se_modules(model)]
    gone = names[::2]
    expected = copy.deepcopy(model)
    for name in gone:  # the same model with those blocks back at identity
        nn.init.zeros_(expected.get_submodule(name).fc2.weight)
        nn.init.zeros_(expected.get_submodule(name).fc2.bias)
    with pytest.warns(seinject.SEInjectWarning, match="no longer at identity"):
        smaller = seinject.remove(model, blocks=gone)
    assert [name for name, _ in seinject.se_modules(smaller)] == [n for n in names if n not in gone]
    assert [b.module for b in seinject.report(smaller).inserted] == [n for n in names if n not in gone]
    assert torch.equal(smaller(x), expected(x))
    assert len(seinject.se_modules(model)) == len(names)  # a copy: the original keeps every block
    with pytest.raises(ConfigError, match="no SE block 'layer9.se'"):
        seinject.remove(model, blocks=["layer9.se"])


def test_a_checkpoint_of_a_partly_removed_model_loads_onto_a_plain_one(tmp_path):
    model, x = build("resnet_tiny")
    fresh = copy.deepcopy(model)
    model = trained(seinject.apply(model, "after_residual")).eval()
    names = [name for name, _ in seinject.se_modules(model)]
    with pytest.warns(seinject.SEInjectWarning):
        smaller = seinject.remove(model, blocks=names[:2])
    loaded = seinject.load(fresh, seinject.save(smaller, tmp_path / "se.safetensors")).eval()
    assert [n for n, _ in seinject.se_modules(loaded)] == names[2:]
    assert torch.equal(loaded(x), smaller(x))


# -- fold -----------------------------------------------------------------------------------------------
FOLDS = [  # (fixture, rule, where the scale must go)
    ("vgg_tiny", "conv_block", "next conv"),          # a block attached to a ReLU, a conv after it
    ("resnet_tiny", "residual_branch", "previous norm"),   # branch end: bn2 feeds only the block
    ("resnet_tiny", "after_residual", "fixed scale"),      # read by the next block and its shortcut
]


@pytest.mark.parametrize("fixture,rule,into", FOLDS)
def test_folding_a_constant_gate_block_keeps_outputs(fixture, rule, into):
    model, x = build(fixture)
    model = trained(seinject.apply(model, rule)).eval()
    candidates = [name for name, _ in seinject.se_modules(model)]
    name = next(n for n in candidates if _folds_into(model, n, x, into))
    constant_gate(model.get_submodule(name))
    before = model(x)
    folded, report = seinject.fold(model, blocks=[name], data=x)
    assert [f.block for f in report.folded] == [name] and report.folded[0].into.startswith(into)
    assert report.folded[0].saturation == pytest.approx(1.0, abs=1e-6)
    assert report.max_abs_diff <= 1e-6  # measured: 5e-9 (next conv), 2.4e-7 (previous norm), 0 (fixed scale)
    assert (folded(x) - before).abs().max() <= 1e-6
    assert name not in dict(seinject.se_modules(folded)) and len(seinject.se_modules(folded)) == len(candidates) - 1
    assert isinstance(dict(folded.named_modules()).get(name), ChannelScale) == (into == "fixed scale")


def _folds_into(model, name, x, into):
    """Whether folding this block would use the placement `into` (tried on a copy)."""
    _, report = seinject.fold(copy.deepcopy(model), blocks=[name], data=x[:2])
    return report.folded[0].into.startswith(into)


def test_fold_picks_saturated_blocks_and_reports_accuracy():
    model, x = build("resnet_tiny")
    model = seinject.apply(model, "after_residual").eval()
    names = [name for name, _ in seinject.se_modules(model)]
    trained(model)
    constant_gate(model.get_submodule(names[-1]))
    labels = model(x).argmax(1)
    folded, report = seinject.fold(model, data=x, labels=labels, min_saturation=0.999)
    assert [f.block for f in report.folded] == [names[-1]]
    assert report.accuracy_before == 1.0 and report.accuracy_after == 1.0 and report.samples == len(x)
    assert "folded 1 SE block(s)" in str(report)
    with pytest.raises(ConfigError, match="fold needs data="):
        seinject.fold(model)
