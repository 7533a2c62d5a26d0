"""Property-based tests on random small conv networks (torch modules, their ONNX export, and ONNX graphs
built node by node): every built-in rule either inserts SE blocks that leave the outputs bit-for-bit
unchanged (eval and train mode) or raises a typed seinject error; nothing else escapes.

The networks come from tests/hostile/strategies.py: stages of convs (1d/2d/3d, grouped, depthwise,
functional), norms, activations in every call style (in-place too), residual blocks written five
ways, channel concatenation, chunk/split, pools, inverted residuals, dropout; roots that are an
nn.Sequential, a custom module looping over a ModuleList, or a torch.fx GraphModule.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import currently_in_test_context, given, note
from hypothesis import event as _event
from hypothesis import strategies as st

import seinject
from seinject.errors import SEInjectError, SEInjectWarning, VerificationError
from tests.hostile.strategies import (Net, assert_equal_outputs, build_onnx, build_torch, export_onnx, fuzz,
                                      onnx_nets, run_onnx, run_torch, torch_nets)

RULES = tuple(seinject.list_rules())


def event(message: str) -> None:
    """hypothesis.event inside a property; nothing in the plain regression tests."""
    if currently_in_test_context():
        _event(message)


def apply_checked(model, rule, **kwargs):
    """seinject.apply, asserting that every warning is an SEInjectWarning; (new model, report) or
    (None, the typed error). A VerificationError (outputs changed) is a failure, not a typed refusal."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            new = seinject.apply(model, rule, **kwargs)
        except VerificationError:
            raise
        except SEInjectError as exc:
            event(f"typed error: {type(exc).__name__}")
            return None, exc
    foreign = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, SEInjectWarning)]
    assert not foreign, f"warnings that are not SEInjectWarning: {foreign}"
    return new, seinject.report(new)


def check_torch_rule(model, x, rule: str, example_inputs: bool):
    """Apply one rule to the model: the model and x are left as they were; blocks inserted ⇒ outputs
    equal in eval and train mode, the SE blocks are the ones reported, and remove() gives the original
    structure back. Returns the rewritten model when it has blocks, else None."""
    expected_eval = run_torch(model, x, False)
    x_before, keys_before = x.clone(), list(model.state_dict())
    new, report = apply_checked(model, rule, example_inputs=x if example_inputs else None)
    assert _same(x, x_before), "apply changed example_inputs"
    assert list(model.state_dict()) == keys_before and not seinject.se_modules(model), "apply changed the model"
    if new is None:
        return None
    inserted = len(report.inserted)
    event(f"{rule}: {'inserted' if inserted else 'nothing inserted'}")
    assert len(seinject.se_modules(new)) == inserted, (seinject.se_modules(new), report.inserted)
    if not inserted:
        return None
    note(f"{rule}: {[b.module for b in report.inserted]}")
    with count_calls(new) as calls:
        assert_equal_outputs(run_torch(new, x, False), expected_eval, f"{rule}, eval mode")
    # a block at identity cannot show that it sits where it should; the next best thing: each block
    # runs once per forward (one that also ran at a call the trace did not see would act twice).
    # Without example_inputs, calls made by a forward that could not be traced cannot be counted (a
    # limit of tracing; the report lists that forward as left out)
    twice = {name: n for name, n in calls.items() if n != 1}
    if twice and not example_inputs and report.left_out:
        event("known limit: block also runs in an untraced forward")
    else:
        assert not twice, f"{rule}: SE blocks called {twice} times per forward"
    # train mode: BatchNorm uses the batch statistics; both models see the same batch (and update
    # their running statistics alike), dropout draws from the same seed
    reference = copy.deepcopy(model)
    assert_equal_outputs(run_torch(new, x, True), run_torch(reference, x, True), f"{rule}, train mode")
    back = seinject.remove(new)
    assert list(back.state_dict()) == list(reference.state_dict()), f"{rule}: remove() left other tensors"
    assert_equal_outputs(run_torch(back, x, False), run_torch(reference, x, False), f"{rule}, after remove")
    return new


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a == b) | (a.isnan() & b.isnan())).all())


@contextlib.contextmanager
def count_calls(model):
    """{qualified name: calls} of every SE block seinject inserted, while the context is open."""
    calls = {name: 0 for name, _ in seinject.se_modules(model)}
    handles = [module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
               for name, module in seinject.se_modules(model)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@fuzz(40)
@given(spec=torch_nets(), example_inputs=st.booleans(), second=st.sampled_from(RULES))
def test_random_torch_networks_keep_their_outputs_under_every_builtin_rule(spec: Net, example_inputs: bool,
                                                                           second: str):
    model, x = build_torch(spec)
    rewritten = {rule: check_torch_rule(model, x, rule, example_inputs) for rule in RULES}
    first = next((rule for rule, new in rewritten.items() if new is not None), None)
    event(f"rules that inserted blocks: {sum(new is not None for new in rewritten.values())}")
    if first is None:
        return
    # a second rule on top of the first one's blocks: still the original outputs; the same rule
    # again finds its sites taken ("already has SE") and adds nothing
    new = rewritten[first]
    before = len(seinject.se_modules(new))
    again, report = apply_checked(new, second)
    if again is None:
        return
    note(f"{second} on top of {first}: {[b.module for b in report.inserted]}")
    # (compared with the first rewrite: its train-mode run above moved its norm statistics)
    assert_equal_outputs(run_torch(again, x, False), run_torch(new, x, False), f"{second} after {first}")
    assert len(seinject.se_modules(again)) == before + len(report.inserted)
    if second == first:
        assert not report.inserted, f"{first} applied twice inserted {[b.module for b in report.inserted]}"


# the exporter's float32 (activations up to the float32 limit included)
EXPORTABLE = torch_nets(max_stages=4).map(lambda net: replace(net, dtype="float32"))


@fuzz(25)
@given(spec=EXPORTABLE)
def test_random_torch_networks_exported_to_onnx_keep_their_outputs(spec: Net):
    import onnx

    model, x = build_torch(spec)
    proto = onnx.load_from_string(export_onnx(model, x, dynamic=spec.seed % 2 == 0))
    check_onnx_rules(proto, {"x": x.numpy()})


@fuzz(60)
@given(spec=onnx_nets())
def test_random_onnx_graphs_keep_their_outputs_under_every_builtin_rule(spec):
    proto, x = build_onnx(spec)
    check_onnx_rules(proto, {"x": x})


def check_onnx_rules(proto, inputs: dict) -> None:
    """Every built-in rule on an ONNX model: typed error, or blocks whose outputs equal the original's
    (bit for bit: onnxruntime runs both graphs node by node, and a block at init multiplies by 1)."""
    expected = run_onnx(proto, inputs)
    reapplied = None
    for rule in RULES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                new, report = seinject.onnx.apply(proto, rule, return_report=True)
            except SEInjectError as exc:
                event(f"onnx typed error: {type(exc).__name__}")
                continue
        foreign = [f"{w.category.__name__}: {w.message}" for w in caught
                   if not issubclass(w.category, SEInjectWarning)]
        assert not foreign, f"warnings that are not SEInjectWarning: {foreign}"
        event(f"onnx {rule}: {'inserted' if report.inserted else 'nothing inserted'}")
        if not report.inserted:
            continue
        note(f"{rule}: {[b.module for b in report.inserted]}")
        assert_same_onnx_outputs(run_onnx(new, inputs), expected, rule)
        if reapplied is not None:
            continue
        # (once per model) the same rule on its own output finds every site taken and changes nothing
        reapplied = rule
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SEInjectWarning)  # "matched no site: already has SE"
            again, second = seinject.onnx.apply(new, rule, return_report=True)
        assert not second.inserted, f"{rule} applied twice inserted {[b.module for b in second.inserted]}"
        assert_same_onnx_outputs(run_onnx(again, inputs), expected, f"{rule} twice")


def assert_same_onnx_outputs(got: list, expected: list, what: str) -> None:
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape, f"{what}: output {i} shape {a.shape} vs {b.shape}"
        # NaN where the original overflows too (activations near the float32 limit)
        assert np.array_equal(a, b, equal_nan=True), f"{what}: output {i} differs by {np.nanmax(np.abs(a - b)):g}"


# -- regressions: the smallest examples the properties above found ----------------------------------
def test_tuple_concatenation_of_split_parts_is_not_a_tensor_addition():
    """`(f(p[0]),) + p[1:]` is traced as operator.add on a tuple: it was taken for a residual-style
    add with f's channel count, and after_concat put a 1-channel block on a 2-channel concat."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.f = torch.nn.Conv1d(1, 1, 1)

        def forward(self, x):
            parts = x.chunk(2, dim=1)
            return torch.cat((self.f(parts[0]),) + parts[1:], 1)

    net, x = Net().eval(), torch.randn(2, 2, 8)
    new, report = apply_checked(net, "after_concat")
    assert torch.equal(new(x), net(x))
    assert all(site.channels == 2 for site in report.plan.sites)


def test_blocks_in_a_module_without_tensors_take_the_dtype_of_the_model():
    """A block owned by an activation module (no tensors of its own) was built in the default dtype:
    a float64 model then failed with 'mat1 and mat2 must have the same dtype'."""

    class FnReLU(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.relu(x)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = torch.nn.Conv2d(4, 4, 3, padding=1), FnReLU()

        def forward(self, x):
            return self.act(x + self.conv(x))

    net, x = Net().double().eval(), torch.randn(2, 4, 8, 8, dtype=torch.float64)
    new, report = apply_checked(net, "after_residual")
    assert [b.module for b in report.inserted] == ["act.se"]
    assert new.act.se.fc1.weight.dtype == torch.float64
    assert torch.equal(new(x), net(x))


def test_onnx_block_near_the_float32_limit_is_identity():
    """GlobalAveragePool of activations near the float32 limit is inf, and the zero fc2 gave 0·inf = NaN:
    the ONNX block at init turned the output into NaN (fixed in seinject/onnx/block.py)."""
    import onnx

    model = onnx.parser.parse_model("""
      <ir_version: 8, opset_import: ["" : 17]>
      g (float[1, 1, 4] x) => (float[1, 1, 4] y) <float[1, 1, 1] w = {1.0}> {
        c = Conv(x, w)
        y = Add(c, x)
      }""")
    new = seinject.onnx.apply(model, "after_residual")
    x = {"x": np.full((1, 1, 4), 1e38, np.float32)}
    assert np.array_equal(run_onnx(new, x)[0], run_onnx(model, x)[0])  # 2e38 everywhere vs NaN


class _Untraceable(torch.nn.Module):
    """torch.fx cannot trace this forward (an `if` on data); it calls its child's ReLU a second time,
    a call that the trace does not show."""

    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())

    def forward(self, x):
        y = self.inner(x)
        if bool(y.isnan().all()):
            return y
        return self.inner[1](y)


def test_with_example_inputs_a_block_runs_once_even_under_an_untraceable_forward():
    """The block after the conv was attached to the ReLU, which the untraceable parent calls again:
    it ran twice per forward. The pass on example_inputs now counts every module's runs, and such a
    block goes into the Sequential's forward instead (without example_inputs: a documented limit)."""
    net, x = _Untraceable().eval(), torch.randn(2, 3, 8, 8)
    new, report = apply_checked(net, "conv_block", example_inputs=x)
    assert [b.module for b in report.inserted] == ["inner.se"]
    with count_calls(new) as calls:
        assert torch.equal(new(x), net(x))
    assert calls == {"inner.se": 1}


def test_shape_recording_leaves_example_inputs_alone():
    """The real-tensor pass that records shapes (used when fake tensors cannot run the model) ran the
    model on the caller's tensors: an in-place op on the input changed example_inputs."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            x = x.relu_()  # in place on its input
            if bool(x.isnan().all()):  # data-dependent: no fake-tensor pass
                return x
            return self.conv(x)

    x = torch.randn(2, 3, 8, 8)
    before = x.clone()
    apply_checked(Net().eval(), "conv_block", example_inputs=x, verify=False)
    assert torch.equal(x, before)


# -- open bugs (code owned elsewhere): minimal repros, tracked until fixed ----------------------------
def test_verify_leaves_example_inputs_alone():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU()

        def forward(self, x):
            x.mul_(2)  # in place on its input
            return self.act(self.conv(x))

    net, x = Net().eval(), torch.randn(2, 3, 8, 8)
    before = x.clone()
    seinject.apply(net, "conv_block", example_inputs=x)  # verified on copies: no VerificationError
    assert torch.equal(x, before)
