"""A forward traced with a flag fixed serves the flag's other values: variants made on first use
(seinject.torch.variants), copied and pickled with the model, and a clear error where a block's place
does not exist in a variant."""

import copy
import pickle
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import seinject
from tests.models.frameworks import ListConcat, PitchNet


def quiet_apply(model, rule, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seinject.SEInjectWarning)
        return seinject.apply(model, rule, **kwargs)


def nudged(model):
    """A copy whose blocks moved off identity, so that running them shows in the output."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for _, block in seinject.se_modules(model):
            for p in block.parameters():
                p.add_(0.05)
    return model


class Deep(nn.Module):
    """`if deep:` runs a second conv → relu; apply sees the default path only.

    ::

        x ─ conv1 ─ relu ─┬────────────────► out          (deep=False)
                          └─ conv2 ─ relu ─► out          (deep=True)
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x, deep=False):
        x = F.relu(self.conv1(x))
        if deep:
            x = F.relu(self.conv2(x))
        return x


def test_a_shorter_path_than_the_traced_one_is_a_model_error():
    torch.manual_seed(0)
    net, x = Deep().eval(), torch.randn(1, 3, 8, 8)
    new = quiet_apply(net, "conv_block", example_inputs=(x, True))  # traced with deep=True: two blocks
    assert len(seinject.se_modules(new)) == 2 and torch.equal(new(x, True), net(x, True))
    with pytest.raises(seinject.ModelError, match=r"deep=False does not compute .* path of deep=True"):
        new(x)


def test_the_other_value_runs_the_blocks_it_shares_with_the_traced_path():
    torch.manual_seed(0)
    net, x = Deep().eval(), torch.randn(1, 3, 8, 8)
    new = quiet_apply(net, "conv_block")
    assert [name for name, _ in seinject.se_modules(new)] == ["se"]  # the relu of conv1, on the default path
    assert torch.equal(new(x, deep=True), net(x, deep=True)) and torch.equal(new(x), net(x))
    moved = nudged(new)
    first = moved.se(F.relu(net.conv1(x)))
    assert torch.allclose(moved(x, deep=True), F.relu(net.conv2(first)), atol=1e-6)  # its block ran on that path


def test_variants_survive_copy_and_pickle():
    torch.manual_seed(0)
    net, x = PitchNet().eval(), torch.randn(2, 64)
    new = nudged(quiet_apply(net, "conv_block"))
    expected = new(x, embed=True)
    for other in (copy.deepcopy(new), pickle.loads(pickle.dumps(new))):
        assert torch.equal(other(x, embed=True), expected) and torch.equal(other(x), new(x))
    assert not torch.equal(expected, net(x, embed=True))


def test_a_variant_that_does_not_compute_a_blocks_value_is_a_model_error():
    """A Concat module traced for a list of two tensors, called with three."""
    torch.manual_seed(0)
    cat = ListConcat().eval()
    a, b, c = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    new = quiet_apply(nn.Sequential(), "after_concat")  # nothing; keeps the warning path exercised
    assert len(new) == 0
    plan_net = _TwoConcat().eval()
    rewritten = quiet_apply(plan_net, "after_concat", example_inputs=(a, b))
    assert torch.equal(rewritten(a, b), plan_net(a, b))
    with pytest.raises(seinject.ModelError, match="does not compute the value SE block 'se' scales"):
        rewritten.cat([a, b, c])  # a concat of three is another computation: no silent run without the block
    assert torch.equal(cat([a, b, c]), torch.cat([a, b, c], 1))


class _TwoConcat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cat = ListConcat()

    def forward(self, a, b):
        if a.sum() > 1e9:  # data-dependent: the root is left out, the Concat traced alone
            a = a * 1.0
        return self.cat([a, b])


class Shortcut(nn.Module):
    """`if skip:` returns the branch without the residual add that its block feeds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)

    def forward(self, x, skip=False):
        y = self.bn(self.conv(x))
        if skip:
            return y * 2
        return F.relu(y + x)


def test_a_variant_without_the_blocks_place_is_a_model_error():
    net, x = Shortcut().eval(), torch.randn(1, 8, 6, 6)
    new = quiet_apply(net, "residual_branch")
    assert [name for name, _ in seinject.se_modules(new)] == ["se"]
    assert torch.equal(new(x), net(x))
    with pytest.raises(seinject.ModelError, match=r"skip=True.*block 'se'.*feeds it elsewhere"):
        new(x, skip=True)


# -- found in review: each of these ran fewer blocks, other code, or crashed ------------------------------
class Moded(nn.Module):
    """`if deep:` does what `self.mode` says: two instances share a rewritten class, not their variants."""

    def __init__(self, mode: int) -> None:
        super().__init__()
        self.conv1, self.mode = nn.Conv2d(3, 8, 3, padding=1), mode

    def forward(self, x, deep=False):
        x = F.relu(self.conv1(x))
        if deep:
            x = x * 2 if self.mode == 1 else x * 3
        if deep and self.training:
            x = x + 1
        return x


def test_variants_belong_to_their_module_and_mode():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    a, b = Moded(1).eval(), Moded(2).eval()
    b.load_state_dict(a.state_dict())
    new_a, new_b = quiet_apply(a, "conv_block"), quiet_apply(b, "conv_block")
    assert type(new_a) is type(new_b)  # the traced path is the same code
    assert torch.equal(new_a(x, deep=True), a(x, deep=True)) and torch.equal(new_b(x, deep=True), b(x, deep=True))
    new_b.train(), b.train()  # the mode picks the variant too: the forward reads self.training
    assert torch.equal(new_b(x, deep=True), b(x, deep=True))


def test_a_second_apply_into_a_module_rewritten_for_its_flags_is_a_skip_with_the_reason():
    net, x = Shortcut().eval(), torch.randn(1, 8, 6, 6)
    once = quiet_apply(net, "after_residual")
    twice = quiet_apply(once, "residual_branch")
    assert [name for name, _ in seinject.se_modules(twice)] == [name for name, _ in seinject.se_modules(once)]
    assert any("rewritten by an earlier apply for the values of its flags" in s.reason
               for s in seinject.report(twice).skipped)


def test_a_scalar_in_example_inputs_is_traced_not_fixed():
    """A timestep passed as a float: one forward serves every value (no variant per value)."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x, t=0.5):
            return F.relu(self.conv(x)) * t

    net, x = Scaled().eval(), torch.randn(1, 3, 8, 8)
    new = quiet_apply(net, "conv_block", example_inputs=(x, 0.25))
    assert getattr(type(new), "_seinject_recipe").variants is None
    assert all(torch.equal(new(x, t), net(x, t)) for t in (0.1, 0.7, 2.0))


def test_a_nan_default_is_a_value_like_any_other():
    class Eps(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x, eps=float("nan"), flag=False):
            y = F.relu(self.conv(x))
            return y * 2 if flag else y

    net, x = Eps().eval(), torch.randn(1, 3, 8, 8)
    new = quiet_apply(net, "conv_block")
    assert torch.equal(new(x), net(x)) and torch.equal(new(x, eps=float("nan"), flag=True), net(x, flag=True))


def test_a_keyword_only_parameter_fx_cannot_write_back_leaves_the_module_out():
    class KwOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x, y=None, *, z):
            return F.relu(self.conv(x))

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = KwOnly()

        def forward(self, x):
            return self.inner(x, z=1)

    plan = seinject.plan(Outer(), "conv_block")
    assert [(p.name, "keyword-only parameter 'z'" in p.reason) for p in plan.left_out] == [("inner", True)]
