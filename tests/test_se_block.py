"""The torch SE block: identity at init, the paper's block at random init, widths, gradients."""

import pytest
import torch

from seinject import ConfigError, SEConfig
from seinject.torch.block import SqueezeExcite


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("shape", [(3, 24, 11), (3, 24, 7, 5), (2, 24, 3, 4, 5)])
def test_identity_at_init_is_exact(gate, shape):
    torch.manual_seed(0)
    block = SqueezeExcite(24, SEConfig(gate=gate))
    x = torch.randn(*shape)
    assert torch.equal(block(x), x)
    assert block.is_identity()


def test_random_init_is_the_papers_block():
    torch.manual_seed(0)
    block = SqueezeExcite(64, SEConfig(ratio=16, divisor=8, init="random"))
    x = torch.randn(2, 64, 6, 6)
    expected = x * torch.sigmoid(block.fc2(torch.relu(block.fc1(x.mean((2, 3)))))).view(2, 64, 1, 1)
    assert torch.allclose(block(x), expected)
    assert not torch.equal(block(x), x)
    assert block.gain == 1.0 and not block.is_identity()
    # timm SEModule(64, rd_ratio=1/16, rd_divisor=8): 64*8+8 + 8*64+64
    assert sum(p.numel() for p in block.parameters()) == 64 * 8 + 8 + 8 * 64 + 64


def test_identity_init_layers_are_plain_linears_with_the_documented_start():
    torch.manual_seed(0)
    block = SqueezeExcite(64, SEConfig(ratio=4))
    assert type(block.fc1) is torch.nn.Linear and type(block.fc2) is torch.nn.Linear
    bound = 1 / 64 ** 0.5  # torch's default Linear bound for fan_in 64
    weight = block.fc1.weight
    assert weight.min() >= 0 and weight.max() <= bound and weight.max() > bound / 2
    assert torch.equal(block.fc1.bias, torch.ones(16))
    assert not block.fc2.weight.any() and not block.fc2.bias.any()
    block.fc1.reset_parameters()  # still torch's own Linear: default init draws signed weights
    assert block.fc1.weight.min() < 0 < block.fc1.weight.max()


@pytest.mark.parametrize("channels,ratio,divisor,hidden", [
    (256, 16, 1, 16), (256, 16, 8, 16), (24, 16, 1, 2), (24, 16, 8, 8),
    (8, 16, 1, 1), (3, 16, 1, 1), (100, 8, 1, 13), (96, 4, 8, 24),
])
def test_hidden_width_rounds_up_with_a_floor_of_one(channels, ratio, divisor, hidden):
    assert SEConfig(ratio=ratio, divisor=divisor).hidden_channels(channels) == hidden
    assert SqueezeExcite(channels, SEConfig(ratio=ratio, divisor=divisor)).hidden == hidden


def test_gradients_reach_fc2_at_once_and_fc1_after_one_step():
    torch.manual_seed(0)
    block = SqueezeExcite(16, SEConfig(ratio=4))
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    x = torch.randn(4, 16, 5, 5)
    target = torch.randn(4, 16, 5, 5)
    loss = ((block(x) - target) ** 2).mean()
    loss.backward()
    assert block.fc2.weight.grad.abs().sum() > 0 and block.fc2.bias.grad.abs().sum() > 0
    assert block.fc1.weight.grad.abs().sum() == 0  # fc2 is zero: nothing flows back yet
    opt.step()
    opt.zero_grad()
    ((block(x) - target) ** 2).mean().backward()
    for name, p in block.named_parameters():
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("field,value,needle", [
    ("ratio", 0, "must be > 0"), ("ratio", "16", "must be a number"),
    ("divisor", 0, "integer in [1, 65536]"), ("gate", "sigmod", "did you mean 'sigmoid'"),
    ("init", "zeros", "identity, random"), ("act", "rellu", "did you mean 'relu'"),
])
def test_bad_settings_name_the_field(field, value, needle):
    with pytest.raises(ConfigError, match=field) as info:
        SEConfig(**{field: value})
    assert needle in str(info.value)


def test_unknown_override_suggests_the_closest_field():
    with pytest.raises(ConfigError, match="did you mean 'ratio'"):
        SEConfig().with_overrides(ratoi=8)


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=40, deadline=None)
@given(channels=st.integers(1, 96), ratio=st.sampled_from([1, 2, 4, 8, 16, 32]),
       divisor=st.sampled_from([1, 4, 8]), gate=st.sampled_from(["sigmoid", "hard_sigmoid"]),
       spatial=st.lists(st.integers(1, 5), min_size=0, max_size=3), batch=st.integers(1, 3))
def test_identity_and_width_hold_for_any_configuration(channels, ratio, divisor, gate, spatial, batch):
    config = SEConfig(ratio=ratio, divisor=divisor, gate=gate)
    hidden = config.hidden_channels(channels)
    assert hidden >= 1 and hidden % divisor == 0 and hidden * ratio >= channels
    assert hidden - divisor < max(channels / ratio, 1)
    block = SqueezeExcite(channels, config)
    x = torch.randn(batch, channels, *spatial) * 100
    assert torch.equal(block(x), x)
    assert sum(p.numel() for p in block.parameters()) == config.added_parameters(channels)
