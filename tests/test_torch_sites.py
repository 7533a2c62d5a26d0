"""Each built-in rule finds exactly the expected sites on each fixture architecture (torch backend)."""

import pytest

import seinject
from tests.helpers import build

EXPECTED = {
    ("resnet_tiny_bottleneck", "after_residual"): [f"layer{i}.0.relu_2" for i in range(1, 5)],
    ("resnet_tiny_bottleneck", "residual_branch"): [f"layer{i}.0.bn3" for i in range(1, 5)],
    ("resnet_tiny_bottleneck", "before_residual"): [f"layer{i}.0.conv1" for i in range(1, 5)],
    ("resnet_tiny_bottleneck", "identity_branch"): [f"layer{i}.0.downsample.1" for i in range(1, 5)],
    ("resnet_tiny_bottleneck", "conv_block"): ["relu"],
    ("resnet_tiny", "after_residual"): [f"layer{i}.0.relu_1" for i in range(1, 5)],
    ("resnet_tiny", "residual_branch"): [f"layer{i}.0.bn2" for i in range(1, 5)],
    ("resnet_tiny", "identity_branch"): ["maxpool"] + [f"layer{i}.0.downsample.1" for i in range(2, 5)],
    ("preact_resnet_tiny", "after_residual"): ["layer1.0.add", "layer2.0.add", "layer2.1.add"],
    ("preact_resnet_tiny", "residual_branch"): ["layer1.0.conv2", "layer2.0.conv2", "layer2.1.conv2"],
    ("preact_resnet_tiny", "before_residual"): ["layer1.0.bn1", "layer2.0.conv1", "layer2.1.bn1"],
    ("preact_resnet_tiny", "identity_branch"): ["conv1", "layer2.0.shortcut.0", "layer2.0.add"],
    ("preact_resnet_tiny", "conv_block"): [],
    ("mobilenetv2_tiny", "inverted_residual"): ["features.1.conv.0.2"] + [f"features.{i}.conv.1.2" for i in range(2, 6)],
    ("mobilenetv2_tiny", "after_residual"): ["features.3.add", "features.5.add"],
    ("mobilenetv2_tiny", "residual_branch"): ["features.3.conv.3", "features.5.conv.3"],
    ("mobilenetv2_tiny", "before_residual"): ["features.3.conv.0.0", "features.5.conv.0.0"],
    ("efficientnet_tiny", "inverted_residual"): [f"features.{i}.depthwise.2" for i in range(1, 6)],
    ("efficientnet_tiny", "residual_branch"): ["features.3.project.1", "features.5.project.1"],
    ("densenet_tiny", "after_concat"): [
        "features.denseblock1.denselayer1.cat", "features.denseblock1.denselayer2.cat", "features.denseblock1.cat",
        "features.denseblock2.denselayer1.cat", "features.denseblock2.denselayer2.cat",
        "features.denseblock2.denselayer3.cat", "features.denseblock2.cat"],
    ("densenet_tiny", "after_residual"): [],
    ("inception_tiny", "after_concat"): ["inception3a.cat", "inception3b.cat"],
    ("vgg_tiny", "conv_block"): ["features.2", "features.6", "features.10", "features.13"],
    ("vgg_tiny_nobn", "conv_block"): ["features.1", "features.4", "features.7", "features.9"],
    ("vgg_tiny", "after_residual"): [],
    ("convnext_tiny_fixture", "residual_branch"): [f"stages.{s}.{b}.drop_path" for s in (0, 1) for b in (0, 1)],
    ("convnext_tiny_fixture", "after_residual"): [f"stages.{s}.{b}.add" for s in (0, 1) for b in (0, 1)],
    ("convnext_tiny_fixture", "before_residual"): [f"stages.{s}.{b}.dwconv" for s in (0, 1) for b in (0, 1)],
    ("convnext_tiny_fixture", "inverted_residual"): [],
    ("resnet1d_tiny", "residual_branch"): ["layer1.0.bn2", "layer2.0.bn2", "layer2.1.bn2"],
    ("resnet3d_tiny", "after_residual"): ["layer1.0.relu_1", "layer2.0.relu_1", "layer2.1.relu_1"],
    ("functional_resnet", "residual_branch"): ["b1_bn2", "b2_bn2", "b3_bn2", "b4_bn2"],
    ("functional_resnet", "after_residual"): ["act_2", "relu_1", "act_4", "relu_3"],
    ("functional_resnet", "before_residual"): ["b1_conv1", "conv2d", "b3_conv1", "b4_conv1"],
    ("data_dependent_net", "residual_branch"): ["block_a.bn2", "block_b.bn2"],
    ("untraceable_block_net", "after_residual"): ["layer1.relu_1", "layer3.relu_1"],
}


@pytest.mark.parametrize("fixture,rule", sorted(EXPECTED))
def test_rule_finds_exactly_the_expected_sites(fixture, rule):
    model, _ = build(fixture)
    assert [site.name for site in seinject.plan(model, rule=rule)] == EXPECTED[(fixture, rule)]


@pytest.mark.parametrize("builder,count", [("resnet18", 8), ("resnet50", 16), ("resnext50_32x4d", 16),
                                           ("wide_resnet50_2", 16)])
def test_residual_rules_find_one_site_per_block_on_full_size_resnets(builder, count):
    from tests import models

    model = getattr(models, builder)()
    for rule in ("after_residual", "residual_branch", "before_residual", "identity_branch"):
        assert len(seinject.plan(model, rule=rule)) == count, rule


def test_residual_join_is_found_in_every_coding_style():
    """functional_resnet joins with +=, torch.add, Tensor.add_ and `identity + out`."""
    model, _ = build("functional_resnet")
    plan = seinject.plan(model, rule="identity_branch")
    assert [s.name for s in plan] == ["act", "act_2", "b3_down_bn", "act_4"]


def test_projection_shortcut_is_told_from_the_branch():
    model, _ = build("resnet_tiny_bottleneck")
    shortcut = seinject.plan(model, rule="identity_branch")[1]
    branch = seinject.plan(model, rule="residual_branch")[1]
    assert (shortcut.name, branch.name) == ("layer2.0.downsample.1", "layer2.0.bn3")
    assert shortcut.channels == branch.channels == 64


def test_grouped_and_depthwise_convs_keep_their_channel_counts():
    from tests.models import resnext50_32x4d

    sites = seinject.plan(resnext50_32x4d(), rule="residual_branch", ratio=16, divisor=8)
    assert [s.channels for s in sites][:4] == [256, 256, 256, 512]
    model, _ = build("mobilenetv2_tiny")
    assert [s.channels for s in seinject.plan(model, rule="inverted_residual")] == [16, 48, 72, 72, 96]


def test_blocks_with_their_own_se_module_count_as_already_done():
    import torch.nn as nn

    class SqueezeExcitation(nn.Module):  # torchvision.ops.SqueezeExcitation's name and shape
        def __init__(self, channels):
            super().__init__()
            self.fc1 = nn.Conv2d(channels, 4, 1)
            self.fc2 = nn.Conv2d(4, channels, 1)

        def forward(self, x):
            return x * self.fc2(self.fc1(x.mean((2, 3), keepdim=True))).sigmoid()

    net = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 16, 3, groups=16), nn.BatchNorm2d(16),
                        nn.ReLU(), SqueezeExcitation(16), nn.Conv2d(16, 8, 1))
    plan = seinject.plan(net, rule="inverted_residual")
    assert len(plan) == 0 and [(s.name, s.reason) for s in plan.skipped] == [("3", "already has SE")]


def test_existing_se_behind_a_no_op_still_counts():
    """timm's EfficientNet puts an `aa` Identity between the activation and its SE."""
    import torch.nn as nn

    class SqueezeExcite(nn.Module):
        def forward(self, x):
            return x * x.mean((2, 3), keepdim=True).sigmoid()

    net = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 16, 3, groups=16), nn.BatchNorm2d(16),
                        nn.SiLU(), nn.Identity(), SqueezeExcite(), nn.Conv2d(16, 8, 1))
    plan = seinject.plan(net, rule="inverted_residual")
    assert len(plan) == 0 and [s.reason for s in plan.skipped] == ["already has SE"]
