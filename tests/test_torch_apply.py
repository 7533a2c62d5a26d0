"""What apply/remove guarantee on a model: same outputs at init, training works, keys and class kept."""

import copy

import pytest
import torch

import seinject
from seinject.torch.block import SqueezeExcite
from tests.helpers import apply_quiet, build, max_diff
from tests.models.control_flow import TrainEvalBlock
from tests.test_torch_sites import EXPECTED

CASES = sorted((f, r) for (f, r), names in EXPECTED.items() if names)


def se_blocks(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, SqueezeExcite)}


@pytest.mark.parametrize("fixture,rule", CASES)
def test_outputs_are_unchanged_at_init_in_train_and_eval_mode(fixture, rule):
    model, x = build(fixture)
    new = seinject.apply(model, rule=rule)
    assert len(se_blocks(new)) == len(EXPECTED[(fixture, rule)])
    assert max_diff(model, new, x, training=False) == 0.0
    assert max_diff(model, new, x, training=True) == 0.0
    assert seinject.report(new).model_params == sum(p.numel() for p in new.parameters())
    assert seinject.plan(model, rule=rule).model_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("fixture,rule", CASES)
def test_every_se_block_is_on_the_data_path_and_trains(fixture, rule):
    model, x = build(fixture)
    new = seinject.apply(model, rule=rule).train()
    blocks = se_blocks(new)
    opt = torch.optim.SGD([p for b in blocks.values() for p in b.parameters()], lr=0.5)
    for step in range(2):
        opt.zero_grad()
        # both signs: data_dependent_net picks its block from the input's sign
        sum(new(v).pow(2).mean() for v in (x.abs(), -x.abs())).backward()
        for name, block in blocks.items():
            assert block.fc2.weight.grad.abs().sum() > 0, f"step {step}: {name}.fc2 got no gradient"
            if step == 1:
                assert block.fc1.weight.grad.abs().sum() > 0, f"{name}.fc1 got no gradient after a step"
        opt.step()
    assert max_diff(model, new, x, training=False) > 0  # the trained gates now change the output


@pytest.mark.parametrize("fixture,rule", CASES)
def test_state_dict_keys_are_kept_and_se_keys_sit_beside_their_site(fixture, rule):
    model, _ = build(fixture)
    new = seinject.apply(model, rule=rule)
    old_keys = set(model.state_dict())
    new_keys = set(new.state_dict())
    added = new_keys - old_keys
    assert old_keys <= new_keys
    assert added == {f"{name}.{p}" for name in se_blocks(new) for p in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")}
    result = new.load_state_dict(model.state_dict(), strict=False)
    assert set(result.missing_keys) == added and result.unexpected_keys == []


@pytest.mark.parametrize("fixture,rule", CASES)
def test_apply_is_idempotent_and_remove_restores_the_original(fixture, rule):
    model, x = build(fixture)
    once = seinject.apply(model, rule=rule)
    with pytest.warns(seinject.SEInjectWarning, match="inserted no SE block"):
        twice = seinject.apply(once, rule=rule)
    assert set(twice.state_dict()) == set(once.state_dict())
    skipped = seinject.report(twice).skipped
    assert all(s.reason == "already has SE" for s in skipped)
    assert [s.name for s in skipped] == EXPECTED[(fixture, rule)]  # named by site, as in the plan
    restored = seinject.remove(twice)
    assert list(restored.state_dict()) == list(model.state_dict())
    assert type(restored) is type(model) and not se_blocks(restored)
    assert max_diff(model, restored, x, training=False) == 0.0
    assert all(type(a) is type(b) for a, b in zip(model.modules(), restored.modules()))


def test_the_users_model_is_not_modified_unless_inplace():
    model, x = build("resnet_tiny")
    before = copy.deepcopy(model.state_dict())
    new = seinject.apply(model, rule="residual_branch")
    assert new is not model and not se_blocks(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    same = seinject.apply(model, rule="residual_branch", inplace=True)
    assert same is model and len(se_blocks(model)) == 4


def test_class_attributes_and_methods_are_kept():
    from tests.models.resnet import BasicBlock, ResNet

    model, x = build("resnet_tiny")
    new = seinject.apply(model, rule="after_residual")
    assert isinstance(new, ResNet) and type(new) is ResNet  # the root needed no change
    assert isinstance(new.layer1[0], BasicBlock) and hasattr(new, "fc") and new.custom_tag == "resnet"
    assert torch.equal(new.eval().forward_features(x), model.eval().forward_features(x))
    assert isinstance(new.layer1[0].se, SqueezeExcite)
    assert sorted(se_blocks(new)) == [f"layer{i}.0.se" for i in range(1, 5)]


def test_sequential_blocks_live_on_the_leaf_child_they_follow():
    model, x = build("vgg_tiny")
    new = seinject.apply(model, rule="conv_block")
    assert len(new.features) == len(model.features)
    assert all(isinstance(m, type(o)) for m, o in zip(new.features, model.features))
    assert type(new.features[-1]) is type(model.features[-1])
    expected = [f"features.{i}.se" for i in (2, 6, 10, 13)]
    assert [block.module for block in seinject.report(new).inserted] == expected
    assert sorted(se_blocks(new)) == sorted(expected)


def test_resnet50_with_ratio_16_divisor_8_is_the_papers_se_resnet50():
    from tests.models import resnet50

    model = resnet50()
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    new = seinject.apply(model, rule="residual_branch", ratio=16, divisor=8, init="random")
    assert sum(p.numel() for p in new.parameters()) == 28_088_024
    report = seinject.report(new)
    assert report.added_params == 2_530_992 and len(report.inserted) == 16
    assert report.trainable_line() == "SE params: 2,530,992 || all params: 28,088,024 || SE%: 9.0109"


def test_init_random_gives_the_plain_sigmoid_block():
    model, x = build("resnet_tiny")
    new = seinject.apply(model, rule="after_residual", init="random", gate="hard_sigmoid", ratio=4)
    block = new.layer2[0].se
    assert (block.gain, block.gate_name, block.hidden) == (1.0, "hardsigmoid", 4)  # the alias, made canonical
    assert max_diff(model, new, x, training=False) > 0


def test_untraceable_parts_are_reported_and_the_rest_is_rewritten():
    model, x = build("untraceable_block_net")
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(model)
    new = seinject.apply(model, rule="residual_branch")
    report = seinject.report(new)
    assert [p.name for p in report.left_out] == ["gated"]
    assert "not traceable" in report.left_out[0].reason and "control flow" in report.left_out[0].reason
    assert sorted(se_blocks(new)) == ["layer1.se", "layer3.se"]
    assert max_diff(model, new, x, training=False) == 0.0
    assert "left out gated" in str(report)


def test_data_dependent_root_is_left_out_and_its_blocks_rewritten():
    model, x = build("data_dependent_net")
    new = seinject.apply(model, rule="before_residual")
    assert [p.name for p in seinject.report(new).left_out] == ["<root>"]
    assert sorted(se_blocks(new)) == ["block_a.se", "block_b.se"]
    for sign in (1.0, -1.0):  # both branches of the data-dependent `if`
        assert max_diff(model, new, sign * x.abs(), training=False) == 0.0


def test_module_reuse_is_matched_per_call():
    model, x = build("functional_resnet")
    plan = seinject.plan(model, rule="after_residual")
    assert [s.name for s in plan] == ["act_2", "relu_1", "act_4", "relu_3"]  # one nn.ReLU, called 5 times


def test_a_non_leaf_module_called_twice_is_skipped_with_a_reason():
    from tests.models.resnet import BasicBlock

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = BasicBlock(8, 8)

        def forward(self, x):
            return self.block(self.block(x))

    with pytest.warns(seinject.SEInjectWarning):
        new = seinject.apply(Twice(), rule="residual_branch")
    skipped = seinject.report(new).skipped
    assert len(skipped) == 2 and all("called 2 times" in s.reason for s in skipped)


def test_rule_matching_nothing_is_reported_or_raises_in_strict_mode():
    model, _ = build("vgg_tiny")
    with pytest.warns(seinject.SEInjectWarning, match="rule 'after_residual' inserted no SE block into VGG"):
        seinject.apply(model, rule="after_residual")
    with pytest.raises(seinject.NoSitesError, match="matched no site"):
        seinject.apply(model, rule="after_residual", strict=True)
    assert "matched no site" in str(seinject.plan(model, rule="after_residual"))


def test_not_a_module_is_a_clear_error():
    with pytest.raises(seinject.ModelError, match="expected a torch.nn.Module, got str"):
        seinject.apply("model.onnx")


def test_train_eval_dependent_forward_keeps_both_modes():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), TrainEvalBlock())
    x = torch.randn(2, 3, 8, 8)
    new = seinject.apply(model, rule="after_residual")
    assert len(se_blocks(new)) == 1
    assert max_diff(model, new, x, training=True) == 0.0
    assert max_diff(model, new, x, training=False) == 0.0


class _Opaque(torch.nn.Module):
    """A conv whose forward fx cannot trace (data-dependent branch)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        out = self.conv(x)
        if out.sum() > 1e9:
            out = out * 0
        return out


class _ConcatOfOpaque(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = _Opaque(3, 8), _Opaque(3, 12)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


def test_example_inputs_give_channel_counts_the_structure_cannot():
    model = _ConcatOfOpaque().train()
    x = torch.randn(2, 3, 8, 8)
    plan = seinject.plan(model, rule="after_concat")
    assert len(plan) == 0 and "channel count unknown" in plan.skipped[0].reason
    bn = torch.nn.BatchNorm2d(3)
    model.bn = bn  # a buffer that a real train-mode pass would update
    plan = seinject.plan(model, rule="after_concat", example_inputs=x)
    assert [(s.name, s.channels) for s in plan] == [("cat", 20)]
    assert int(bn.num_batches_tracked) == 0 and model.training and bn.training
    new = seinject.apply(model, rule="after_concat", example_inputs=x)
    assert max_diff(model, new, x, training=False) == 0.0


def test_rules_stack_and_remove_takes_all_of_them_out():
    model, x = build("resnet_tiny_bottleneck")
    stacked = model
    for rule in ("residual_branch", "after_residual", "before_residual"):
        stacked = seinject.apply(stacked, rule=rule)
    assert sorted(n for n in se_blocks(stacked) if n.startswith("layer1.0.")) == [
        "layer1.0.se", "layer1.0.se_1", "layer1.0.se_2"]
    assert max_diff(model, stacked, x, training=True) == 0.0
    restored = seinject.remove(stacked)
    assert list(restored.state_dict()) == list(model.state_dict()) and not se_blocks(restored)


def test_remove_warns_when_a_block_was_trained_away_from_identity():
    model, _ = build("resnet_tiny")
    new = seinject.apply(model, rule="after_residual")
    with torch.no_grad():
        new.layer1[0].se.fc2.bias.fill_(0.1)
    with pytest.warns(seinject.SEInjectWarning, match="no longer at identity"):
        seinject.remove(new)


@pytest.mark.parametrize("fixture, rule, block", [
    ("resnet_tiny", "residual_branch", "layer1.0.se"),
    ("vgg_tiny", "conv_block", "features.2.se"),  # attached to a ReLU, which has no tensors
])
def test_se_blocks_take_the_dtype_of_their_site(fixture, rule, block):
    model, x = build(fixture)
    model = model.double()
    new = seinject.apply(model, rule=rule)
    assert all(p.dtype == torch.float64 for p in new.get_submodule(block).parameters())
    assert max_diff(model, new, x.double(), training=False) == 0.0


def test_parameter_counts_count_shared_modules_and_tied_weights_once():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), conv, torch.nn.ReLU(), conv)
    head = torch.nn.Linear(8, 8)
    net.append(torch.nn.Flatten()).append(head)
    net.tail = torch.nn.Linear(8, 8)
    net.tail.weight = head.weight  # tied
    expected = sum(p.numel() for p in net.parameters())
    assert seinject.plan(net, rule="conv_block").model_params == expected
    new = apply_quiet(net, "conv_block")
    assert seinject.report(new).model_params == sum(p.numel() for p in new.parameters())
