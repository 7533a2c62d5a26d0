"""Model code as other frameworks write it (tests/models/frameworks.py): every pattern gets its sites,
the right channel counts and stages, keeps its outputs, and keeps its blocks running after a fuse."""

import copy
import warnings

import pytest
import torch
import torch.nn as nn

import seinject
from tests.models.frameworks import (C2f, ChannelGate, FusableNet, GatedMBConv, HardExcite, HFStyleNet, ListConcat,
                                     PitchNet, PitchWrapper, StagedNet, TFPadConv, TFPadConvF, TFPadMobileNet, TinyYolo)


def quiet_plan(model, rule, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seinject.SEInjectWarning)
        return seinject.plan(model, rule, **kwargs)


def quiet_apply(model, rule, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seinject.SEInjectWarning)
        return seinject.apply(model, rule, **kwargs)


def calls_of_blocks(model, *args, **kwargs):
    """How many of the model's seinject blocks ran in one forward, and the output."""
    ran = []
    handles = [m.register_forward_hook(lambda *a, name=name: ran.append(name)) for name, m in seinject.se_modules(model)]
    try:
        with torch.no_grad():
            out = model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return len(ran), out


# -- 1. flags in Python control flow ----------------------------------------------------------------
@pytest.mark.parametrize("given", [False, True], ids=["no-example-inputs", "example-inputs"])
def test_a_flag_in_forward_no_longer_stops_the_trace(given):
    torch.manual_seed(0)
    net, x = PitchNet().eval(), torch.randn(2, 64)
    plan = quiet_plan(net, "conv_block", example_inputs=x if given else None)
    assert [site.name for site in plan] == ["relu", "relu_1", "relu_2"]
    assert [site.stage for site in plan] == [1, 2, 3]  # each (2, 1) max-pool halves the map
    new = quiet_apply(net, "conv_block", example_inputs=x if given else None)
    ran, out = calls_of_blocks(new, x)
    assert ran == 3 and torch.equal(out, net(x))


def test_a_parent_that_leaves_the_flag_out_gets_the_childs_sites():
    torch.manual_seed(0)
    net, x = PitchWrapper().eval(), torch.randn(2, 64)
    new = quiet_apply(net, "conv_block")
    assert [name for name, _ in seinject.se_modules(new)] == ["net.se_relu", "net.se_relu_1", "net.se_relu_2"]
    assert torch.equal(new(x), net(x))


def test_the_rewritten_forward_serves_the_other_value_of_the_flag():
    """`model(x, embed=True)` after the rewrite: the forward for that value, with the blocks on its path."""
    torch.manual_seed(0)
    net, x = PitchNet().eval(), torch.randn(2, 64)
    new = quiet_apply(net, "conv_block")
    ran, out = calls_of_blocks(new, x, embed=True)
    assert ran == 3 and torch.equal(out, net(x, embed=True))
    trained = copy.deepcopy(new)
    with torch.no_grad():
        for _, block in seinject.se_modules(trained):
            for p in block.parameters():
                p.add_(0.1)
    assert not torch.equal(trained(x, embed=True), net(x, embed=True))  # the blocks act on that path too


def test_hugging_face_style_flags_kwargs_and_dict_outputs_trace_whole():
    """A root with `labels=None, output_hidden_states=None, return_dict=None, **kwargs` returning a dict,
    an encoder called with the resolved flag: everything but the embedder (it checks x.shape[1]) traces."""
    torch.manual_seed(0)
    net, x = HFStyleNet().eval(), torch.randn(1, 3, 32, 32)
    plan = quiet_plan(net, "after_residual")
    assert [part.name for part in plan.left_out] == ["embedder"]
    assert [site.stage for site in plan] == [1, 2, 3, 4]
    assert not quiet_plan(net, "after_residual", example_inputs=x).left_out
    new = quiet_apply(net, "after_residual", example_inputs=x)
    assert torch.equal(new(x)["last_hidden_state"], net(x)["last_hidden_state"])


# -- 2. shape arithmetic in Python ---------------------------------------------------------------------
def test_shape_arithmetic_needs_example_inputs_and_says_so():
    net = TFPadMobileNet().eval()
    with pytest.warns(seinject.SEInjectWarning, match=r"int\(\) argument.*example_inputs= lets seinject trace it"):
        seinject.apply(net, "inverted_residual")


def test_shape_arithmetic_traces_at_the_example_and_blocks_hold_at_every_size():
    """Hugging Face's TF padding: traced at 32×32, the blocks sit on the depthwise activations, and the
    model still pads by its own arithmetic at 33×33 (the sized trace is never installed)."""
    torch.manual_seed(0)
    net = TFPadMobileNet().eval()
    x = torch.randn(1, 3, 32, 32)
    new = quiet_apply(net, "inverted_residual", example_inputs=x)
    assert [name for name, _ in seinject.se_modules(new)] == [f"layer.{i}.conv_3x3.activation.se" for i in range(3)]
    assert [block.site.stage for block in seinject.report(new).inserted] == [1, 2, 2]
    for size in (32, 33, 47):
        x = torch.randn(2, 3, size, size)
        ran, out = calls_of_blocks(new, x)
        assert ran == 3 and torch.equal(out["logits"], net(x)["logits"])


def test_a_site_in_a_sized_forward_that_no_child_returns_is_skipped_with_the_reason():
    """F.relu6 inside the forward traced at the example's sizes: no child module to attach a block to."""
    net = nn.Sequential(TFPadConvF(3, 8, 3, 2), TFPadConv(8, 8, 3)).eval()
    report = seinject.report(quiet_apply(net, "conv_block", example_inputs=torch.randn(1, 3, 16, 16)))
    assert [block.module for block in report.inserted] == ["1.activation.se"]
    assert [skip.name for skip in report.skipped] == ["0.relu6"]
    assert "traced at the sizes of example_inputs" in report.skipped[0].reason


# -- 3. list iteration over a chunk --------------------------------------------------------------------
def test_c2f_list_of_chunks_traces_and_its_concat_has_every_part():
    net = C2f(8, 16, n=2).eval()
    plan = quiet_plan(net, "after_concat")
    assert [(site.name, site.channels) for site in plan] == [("cat", 32)]  # (2 + n) × 8
    assert not plan.left_out
    # cv1 and cv2 (the bottlenecks' convs are on residual branches: conv_block leaves them)
    assert [site.name for site in quiet_plan(net, "conv_block")] == ["cv1.act", "cv2.act"]
    x = torch.randn(2, 8, 8, 8)
    assert torch.equal(quiet_apply(net, "after_concat")(x), net(x))


# -- 4. channel counts are proven, never guessed ------------------------------------------------------------
def test_concat_module_over_a_list_counts_every_tensor():
    torch.manual_seed(0)
    net, x = TinyYolo().eval(), torch.randn(1, 3, 32, 32)
    plan = quiet_plan(net, "after_concat")
    assert not plan.left_out  # forward(x, *args, **kwargs) and the indexed layer loop trace
    assert ("model.5.cat", 24) in [(site.name, site.channels) for site in plan]  # 16 upsampled + 8 saved
    new = quiet_apply(net, "after_concat", example_inputs=x)
    assert torch.equal(new(x), net(x))


class _Untraced(nn.Module):
    """A parent fx cannot trace (it branches on a value) that calls a Concat module with a list."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.cat = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 24, 1), ListConcat()

    def forward(self, x):
        if x.sum() > 0:
            x = x * 1.0
        return self.cat([self.a(x), self.b(x)])


def test_a_concat_of_a_list_seinject_cannot_see_is_a_skip_not_a_guess():
    net, x = _Untraced().eval(), torch.rand(1, 3, 8, 8)
    plan = quiet_plan(net, "after_concat")
    assert not plan.sites and [skip.name for skip in plan.skipped] == ["cat.cat"]
    assert "channel count unknown" in plan.skipped[0].reason
    assert [(site.channels) for site in quiet_plan(net, "after_concat", example_inputs=x)] == [32]
    new = quiet_apply(net, "after_concat", example_inputs=x)
    assert torch.equal(new(x), net(x))


# -- 5. SE the model already has, by structure -------------------------------------------------------------
@pytest.mark.parametrize("gate", [ChannelGate, HardExcite])
def test_channel_attention_of_any_name_counts_as_se(gate):
    net = GatedMBConv(4, gate).eval()
    plan = quiet_plan(net, "conv_block")
    assert [site.name for site in plan] == ["expand.2"]  # nothing inside the gate, nothing after dw
    assert [(skip.name, skip.reason) for skip in plan.skipped] == [("dw.2", "already has SE")]
    assert [(s.name, s.reason) for s in quiet_plan(net, "inverted_residual").skipped] == [("dw.2", "already has SE")]


def test_a_registered_class_counts_as_se():
    class Spatial(nn.Module):  # not x · gate(pool(x)): seinject would not know it
        def forward(self, x):
            return x * x.amax(dim=1, keepdim=True).sigmoid()

    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), Spatial())
    assert [site.name for site in quiet_plan(net, "conv_block")] == ["1"]
    seinject.register_se_class("test_a_registered_class_counts_as_se.<locals>.Spatial", Spatial)
    assert [(s.name, s.reason) for s in quiet_plan(net, "conv_block").skipped] == [("1", "already has SE")]
    with pytest.raises(seinject.ConfigError, match="nn.Module classes or class names"):
        seinject.register_se_class(3)


# -- 6. stages by resolution ---------------------------------------------------------------------------------
def test_stages_under_an_untraceable_parent_come_from_example_inputs():
    net, x = StagedNet().eval(), torch.randn(1, 3, 64, 64)
    plan = quiet_plan(net, "after_residual")
    assert [site.stage for site in plan] == [None] * 4  # each stage traced alone: their order is unknown
    chosen = quiet_plan(net, "after_residual", stages=[3, 4])
    assert not chosen.sites and all("stage unknown" in skip.reason for skip in chosen.skipped)
    plan = quiet_plan(net, "after_residual", example_inputs=x)
    assert [site.stage for site in plan] == [1, 2, 3, 4]
    chosen = quiet_plan(net, "after_residual", example_inputs=x, stages=[3, 4])
    assert [site.name for site in chosen] == ["stages.2.act", "stages.3.act"]


def test_stages_count_an_upsample_back():
    """TinyYolo's neck: the concat after the upsample is at the resolution of stage 1 again."""
    stages = {site.name: site.stage for site in quiet_plan(TinyYolo(), "after_concat")}
    assert stages == {"model.1.cat": 1, "model.3.cat": 2, "model.5.cat": 1, "model.6.cat": 1}


# -- 7. forwards a framework swaps in -------------------------------------------------------------------------
def test_blocks_keep_running_after_the_frameworks_fuse():
    torch.manual_seed(0)
    net, x = FusableNet().eval(), torch.randn(1, 3, 16, 16)
    new = quiet_apply(net, "conv_block")
    fused_original = copy.deepcopy(net)
    for layer in fused_original.layers:
        layer.fuse()
    for layer in new.layers:
        layer.fuse()  # sets layer.forward = layer.forward_fuse
    ran, out = calls_of_blocks(new, x)
    assert ran == 3 and torch.allclose(out, fused_original(x), atol=1e-6)
    again = copy.deepcopy(new)  # the assigned forward is copied with its module, blocks included
    assert calls_of_blocks(again, x)[0] == 3
    restored = seinject.remove(new)
    assert calls_of_blocks(restored, x)[0] == 0 and torch.allclose(restored(x), fused_original(x), atol=1e-6)


def test_tiny_yolo_fuse_keeps_every_block():
    torch.manual_seed(0)
    net, x = TinyYolo().eval(), torch.randn(1, 3, 32, 32)
    new = quiet_apply(net, "conv_block", example_inputs=x)
    count = len(seinject.se_modules(new))
    assert count == 8 and calls_of_blocks(new.fuse(), x)[0] == count


def test_a_forward_swap_that_would_drop_a_block_inside_is_refused():
    inside = seinject.parse_rule("name: after_norm\npattern: [conv, {kind: norm, id: n}]\ninsert: {position: after, "
                                 "node: n}\n")
    new = quiet_apply(FusableNet().eval(), inside)
    with pytest.raises(seinject.ModelError, match=r"cannot replace the forward of this FusableConv.*\['se'\]"):
        new.layers[0].fuse()


def test_a_forward_fused_before_apply_is_the_one_traced():
    """fuse() first: the instance runs forward_fuse (conv → SiLU), which is what gets its blocks."""
    torch.manual_seed(0)
    net, x = FusableNet().eval(), torch.randn(1, 3, 16, 16)
    for layer in net.layers:
        layer.fuse()
    new = quiet_apply(net, "conv_block")
    ran, out = calls_of_blocks(new, x)
    assert ran == 3 and torch.equal(out, net(x))
    restored = seinject.remove(new)
    assert all("forward" in layer.__dict__ for layer in restored.layers) and torch.equal(restored(x), net(x))


def test_a_forward_replaced_by_something_else_is_left_out_with_the_reason():
    net = FusableNet().eval()
    net.layers[1].forward = lambda x: x  # not one of the module's own methods: seinject cannot see inside
    plan = quiet_plan(net, "conv_block")
    assert [site.name for site in plan] == ["layers.0.act", "layers.2.act"]
    assert [(part.name, "replaced on the instance" in part.reason) for part in plan.left_out] == [("layers.1", True)]


def test_a_wrapper_assigned_as_forward_runs_the_blocks_once():
    """accelerate's hooks assign `m.forward = partial(new_forward, m)`, which calls the forward it replaced:
    the blocks are in that forward already and must not run twice."""
    import functools

    torch.manual_seed(0)
    net, x = FusableNet().eval(), torch.randn(1, 3, 16, 16)
    new = quiet_apply(net, "conv_block")
    layer = new.layers[0]
    layer._old_forward = layer.forward

    def new_forward(module, *args, **kwargs):
        return module._old_forward(*args, **kwargs)

    layer.forward = functools.update_wrapper(functools.partial(new_forward, layer), layer._old_forward)
    ran, out = calls_of_blocks(new, x)
    assert ran == 3 and torch.equal(out, net(x))


class _TwiceChild(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x, repeat=None, wide=False):
        y = torch.relu(self.conv1(x))
        if repeat is not None:
            for _ in range(repeat):
                y = y * 1.5
        return torch.cat([y, x], 1) if wide else y


class _Twice(nn.Module):
    """One child called twice, the first time in a way its trace cannot follow, the second with a flag."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.c = nn.Conv2d(3, 8, 1), _TwiceChild()

    def forward(self, x):
        x = self.stem(x)
        a = self.c(x, x.shape[0])  # repeat is a shape read: no trace of this call
        return self.c(a, wide=True)


def test_a_module_called_twice_gets_no_block_even_when_one_call_cannot_be_traced():
    torch.manual_seed(0)
    net, x = _Twice().eval(), torch.randn(1, 3, 8, 8)
    new = quiet_apply(net, "conv_block")
    assert seinject.se_modules(new) == [] and torch.equal(new(x), net(x))
    assert all("called 2 times" in s.reason for s in seinject.report(new).skipped)
    # each call is traced for itself: the second one (wide=True) ends in a concat of 16 channels
    assert [(s.name, s.channels) for s in quiet_plan(net, "after_concat")] == [("c.cat", 16)]


class _SharedPosEnc(nn.Module):
    """timm's CoaT shape: one module (a conv positional encoding with a size flag) held by two blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x, size=(4, 4)):
        return torch.cat([torch.relu(self.conv(x)), x], 1)


class _Holder(nn.Module):
    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.pos, self.proj = shared, nn.Conv2d(16, 8, 1)

    def forward(self, x):
        return self.proj(self.pos(x, (x.shape[-2], x.shape[-1])))


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        shared = _SharedPosEnc()
        self.a, self.b = _Holder(shared), _Holder(shared)

    def forward(self, x):
        return self.b(self.a(x))


def test_one_module_at_two_paths_gets_one_block_that_runs_at_both_calls():
    """Before: a block per path, the second rewrite's forward dropping the first block (it never ran)."""
    torch.manual_seed(0)
    net, x = _Shared().eval(), torch.randn(1, 8, 6, 6)
    new = quiet_apply(net, "after_concat")
    assert [name for name, _ in seinject.se_modules(new)] == ["a.pos.se"]
    assert [s.reason for s in seinject.report(new).skipped] == [
        "b.pos is the module at a.pos (one module at two paths): its block a.pos.se acts at this call too"]
    ran, out = calls_of_blocks(new, x)
    assert ran == 2 and torch.equal(out, net(x))
