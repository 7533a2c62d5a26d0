"""Choosing what trains: se_parameters finds exactly seinject's blocks, mark_trainable freezes the rest."""

import copy
import warnings

import pytest
import torch
from torch import nn

import seinject
from seinject.torch.block import SqueezeExcite as SeinjectBlock
from tests.helpers import apply_quiet, build


class SqueezeExcite(nn.Module):
    """Another library's SE module: same class name as seinject's block, not inserted by seinject."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class NetWithOwnSE(nn.Module):
    """conv-bn-relu with the model's own SE after it, then a conv-bn-relu without one, then a head."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.own_se = SqueezeExcite(8)
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.own_se(self.relu1(self.bn1(self.conv1(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def inserted(model):
    return {block.module for block in seinject.report(model).inserted}


def test_se_parameters_are_seinjects_blocks_only_not_the_models_own_se_modules():
    model = seinject.apply(NetWithOwnSE(), rule="conv_block")
    assert inserted(model) == {"se"}  # the first site already has the model's own SE
    assert [name for name, _ in seinject.se_modules(model)] == ["se"]
    assert type(model.own_se).__name__ == "SqueezeExcite" and hasattr(model, "se")
    names = [name for name, _ in seinject.se_parameters(model)]
    assert names == ["se.fc1.weight", "se.fc1.bias", "se.fc2.weight", "se.fc2.bias"]
    own = {id(p) for p in model.own_se.parameters()}
    assert not own & {id(p) for _, p in seinject.se_parameters(model)}


def test_a_seinject_block_class_added_by_hand_is_not_counted():
    model = seinject.apply(NetWithOwnSE(), rule="conv_block")
    model.extra = SeinjectBlock(16)  # same class as seinject's block, but no rewrite recorded it
    assert [name for name, _ in seinject.se_modules(model)] == ["se"]


@pytest.mark.parametrize("fixture,rule", [("resnet_tiny", "residual_branch"), ("vgg_tiny", "conv_block"),
                                          ("mobilenetv2_tiny", "inverted_residual"),
                                          ("densenet_tiny", "after_concat")])
def test_se_modules_are_the_blocks_the_report_lists_and_their_parameters_are_in_the_model(fixture, rule):
    model = seinject.apply(build(fixture)[0], rule=rule)
    blocks = seinject.se_modules(model)
    assert sorted(name for name, _ in blocks) == sorted(block.module for block in seinject.report(model).inserted)
    assert [name for name, _ in blocks] == [name for name, m in model.named_modules() if isinstance(m, SeinjectBlock)]
    named = dict(model.named_parameters())
    for name, param in seinject.se_parameters(model):
        assert named[name] is param
    assert sum(p.numel() for _, p in seinject.se_parameters(model)) == seinject.report(model).added_params


def test_a_plain_model_has_no_se_parameters():
    assert seinject.se_parameters(build("resnet_tiny")[0]) == []


def test_mark_trainable_freezes_all_but_se_and_counts_like_peft():
    model = seinject.apply(build("resnet_tiny")[0], rule="residual_branch", ratio=8, include="layer[34]")
    summary = seinject.mark_trainable(model)
    se = {name for name, _ in seinject.se_parameters(model)}
    assert {name for name, p in model.named_parameters() if p.requires_grad} == se
    total = sum(p.numel() for p in model.parameters())
    assert (summary.trainable, summary.total) == (seinject.report(model).added_params, total)
    assert str(summary) == (f"trainable params: {summary.trainable:,} || all params: {total:,} "
                            f"|| trainable%: {100 * summary.trainable / total:.4f}")


@pytest.mark.parametrize("also", [[r"^fc\."], r"^fc$", ["fc"]])
def test_also_adds_parameters_by_parameter_or_module_name(also):
    model = seinject.apply(build("resnet_tiny")[0], rule="residual_branch")
    summary = seinject.mark_trainable(model, also=also)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in seinject.se_parameters(model)} | {"fc.weight", "fc.bias"}
    assert summary.trainable == seinject.report(model).added_params + model.fc.weight.numel() + model.fc.bias.numel()


def test_each_call_sets_every_parameter_afresh():
    model = seinject.apply(build("resnet_tiny")[0], rule="residual_branch")
    seinject.mark_trainable(model, also=["layer1"])
    assert model.layer1[0].conv1.weight.requires_grad
    seinject.mark_trainable(model)
    assert not model.layer1[0].conv1.weight.requires_grad
    assert all(p.requires_grad for _, p in seinject.se_parameters(model))


def test_bad_or_unmatched_also_patterns_are_config_errors_that_change_nothing():
    model = seinject.apply(build("resnet_tiny")[0], rule="residual_branch")
    with pytest.raises(seinject.ConfigError, match=r"'fc\[' is not a valid regular expression"):
        seinject.mark_trainable(model, also=["fc["])
    with pytest.raises(seinject.ConfigError, match=r"'fcc' matches no parameter.*did you mean 'fc'"):
        seinject.mark_trainable(model, also=["fcc"])
    assert all(p.requires_grad for p in model.parameters())


def test_a_model_without_se_blocks_warns_that_everything_is_frozen():
    model = build("resnet_tiny")[0]
    with pytest.warns(seinject.SEInjectWarning, match="every parameter is frozen"):
        summary = seinject.mark_trainable(model)
    assert summary.trainable == 0 and not any(p.requires_grad for p in model.parameters())


def test_training_the_se_parameters_changes_only_them():
    model, x = build("resnet_tiny")
    model = seinject.apply(model, rule="residual_branch")
    seinject.mark_trainable(model, freeze_norm_stats=True)
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.AdamW([p for _, p in seinject.se_parameters(model)], lr=1e-2)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    se = {name for name, _ in seinject.se_parameters(model)}
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == se
    assert all(p.grad is None for name, p in model.named_parameters() if name not in se)


def running_mean_moves(model, x, bn):
    before = bn.running_mean.clone()
    with torch.no_grad():
        model.train()(x)
    return not torch.equal(before, bn.running_mean)


def test_frozen_batchnorm_still_updates_running_stats_in_train_mode_by_default():
    model, x = build("resnet_tiny")
    model = seinject.apply(model, rule="residual_branch")
    seinject.mark_trainable(model)
    assert not model.bn1.weight.requires_grad
    assert running_mean_moves(model, x, model.bn1)


def test_freeze_norm_stats_keeps_frozen_batchnorm_in_eval_mode_through_train():
    model, x = build("resnet_tiny")
    model = seinject.apply(model, rule="residual_branch")
    seinject.mark_trainable(model, also=[r"^layer4\.0\.bn1$"], freeze_norm_stats=True)
    frozen = [model.bn1, model.layer1[0].bn2, model.layer4[0].bn2]
    assert not any(running_mean_moves(model, x, bn) for bn in frozen)
    assert all(not bn.training for bn in frozen)  # put back in eval mode when called
    assert running_mean_moves(model, x, model.layer4[0].bn1)  # trainable: follows the model
    copied = copy.deepcopy(model)
    assert not running_mean_moves(copied, x, copied.bn1)


def test_freeze_norm_stats_is_undone_by_the_next_call_without_it():
    model, x = build("resnet_tiny")
    model = seinject.apply(model, rule="residual_branch")
    seinject.mark_trainable(model, freeze_norm_stats=True)
    model.eval()
    seinject.mark_trainable(model)
    assert not model.bn1.training and not model.bn1._forward_pre_hooks
    assert running_mean_moves(model, x, model.bn1)


def test_frozen_norm_layers_in_eval_mode_compute_what_the_eval_model_computes():
    model, x = build("resnet_tiny")
    model = seinject.apply(model, rule="residual_branch")
    seinject.mark_trainable(model, freeze_norm_stats=True)
    with torch.no_grad():
        held = model.train()(x)
        evaluated = model.eval()(x)
    assert torch.equal(held, evaluated)  # resnet_tiny has no dropout: only the norm layers depend on mode


def test_print_trainable_parameters_prints_the_peft_line(capsys):
    model = apply_quiet(build("resnet_tiny")[0], "residual_branch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = seinject.mark_trainable(model)
    seinject.print_trainable_parameters(model)
    assert capsys.readouterr().out == f"{summary}\n"
    assert summary.trainable == seinject.report(model).added_params
