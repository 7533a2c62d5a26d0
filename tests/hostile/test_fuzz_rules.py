"""Property-based tests that fuzz rules and settings at every entry point: YAML rule texts
(seinject.parse_rule), keyword overrides (seinject.plan / seinject.onnx.plan) and command-line options
(seinject rules check/show, seinject onnx --dry-run).

Properties: a rule text gives a Rule or a RuleError whose message names the file and stays short; a
keyword gives a Plan or a typed error; the command exits 0, 2 or 3 (never 1, never a traceback).
Whatever is accepted is then applied to random small networks (tests/hostile/strategies.py): SE
blocks at identity init leave the outputs bit-for-bit unchanged, anything else is a typed error.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import event, given, note
from hypothesis import strategies as st

import seinject
from seinject.limits import MAX_HIDDEN  # the stated bound on an SE block's hidden width
from seinject.cli import main
from seinject.errors import SEInjectError, SEInjectWarning, VerificationError
from tests.hostile.strategies import (assert_equal_outputs, build_onnx, build_torch, cli_options, flat_outputs, fuzz,
                                      onnx_nets, override_kwargs, plausible_rules, rule_texts, run_onnx, run_torch,
                                      torch_nets)

PATH = "fuzz.yaml"
MAX_MESSAGE = 500
RULES = tuple(seinject.list_rules())
SMALL_NETS = torch_nets(max_stages=4).map(lambda net: replace(net, dtype="float32", channels_last=False))


def check_message(exc: BaseException, prefix: str | None = None) -> str:
    """A typed error's message: short, one that names `prefix` first when given."""
    message = str(exc)
    assert len(message) <= MAX_MESSAGE, f"{type(exc).__name__} message of {len(message)} chars: {message[:200]}..."
    if prefix is not None:
        assert message.startswith(prefix), f"message does not start with {prefix!r}: {message[:200]}"
    return message


def parse(text: str):
    """seinject.parse_rule(text, 'fuzz.yaml'): the Rule, or None after checking the RuleError."""
    try:
        rule = seinject.parse_rule(text, PATH)
    except seinject.RuleError as exc:
        event(f"RuleError: {exc.reason.split(':')[0].split(' ')[0][:30]}" if getattr(exc, "reason", None)
              else "RuleError")
        check_message(exc, PATH)
        return None
    assert isinstance(rule, seinject.Rule)
    event("parsed to a Rule")
    return rule


def assert_bounded(rule) -> None:
    """An accepted rule builds blocks of bounded size for any channel count a test model has."""
    for channels in (1, 7, 64):
        assert 1 <= rule.se.hidden_channels(channels) <= MAX_HIDDEN, (rule.se, channels)


def apply_torch(model, x, rule, **overrides) -> None:
    """Apply a rule (Rule or name, with overrides) to a torch model: typed error, or a model whose blocks
    are the ones reported and whose outputs equal the original's (eval and train mode) at identity init."""
    expected = run_torch(model, x, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            new = seinject.apply(model, rule, **overrides)
        except VerificationError:
            raise  # the outputs changed: a failure, not a refusal
        except SEInjectError as exc:
            event(f"apply: {type(exc).__name__}")
            check_message(exc)
            return
    foreign = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, SEInjectWarning)]
    assert not foreign, foreign
    report = seinject.report(new)
    assert len(seinject.se_modules(new)) == len(report.inserted)
    event(f"apply: {'inserted' if report.inserted else 'nothing inserted'}")
    if not report.inserted:
        return
    note(f"inserted: {[b.module for b in report.inserted]}")
    got = run_torch(new, x, False)
    if report.init != "identity":
        assert [t.shape for t in flat_outputs(got)] == [t.shape for t in flat_outputs(expected)]
        return
    assert_equal_outputs(got, expected, "eval mode")
    reference = copy.deepcopy(model)
    assert_equal_outputs(run_torch(new, x, True), run_torch(reference, x, True), "train mode")


def apply_onnx(proto, x, rule, **overrides) -> None:
    """The same for an ONNX model, run in onnxruntime node by node."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            new, report = seinject.onnx.apply(proto, rule, return_report=True, **overrides)
        except SEInjectError as exc:
            event(f"onnx apply: {type(exc).__name__}")
            check_message(exc)
            return
    assert not [w for w in caught if not issubclass(w.category, SEInjectWarning)], [str(w.message) for w in caught]
    event(f"onnx apply: {'inserted' if report.inserted else 'nothing inserted'}")
    if not report.inserted or report.init != "identity":
        return
    for a, b in zip(run_onnx(new, {"x": x}), run_onnx(proto, {"x": x})):
        assert np.array_equal(a, b, equal_nan=True), f"ONNX outputs differ by {np.nanmax(np.abs(a - b)):g}"


# -- YAML ------------------------------------------------------------------------------------------
@fuzz(400)
@given(text=rule_texts())
def test_any_rule_text_is_a_rule_or_a_short_rule_error_naming_the_file(text: str):
    rule = parse(text)
    if rule is not None:
        assert_bounded(rule)


@fuzz(60)
@given(text=st.one_of(plausible_rules(), plausible_rules(), rule_texts()), spec=SMALL_NETS, graph=onnx_nets())
def test_accepted_rule_texts_keep_outputs_of_random_networks(text: str, spec, graph):
    rule = parse(text)
    if rule is None:
        return
    assert_bounded(rule)
    model, x = build_torch(spec)
    apply_torch(model, x, rule)
    proto, inputs = build_onnx(graph)
    apply_onnx(proto, inputs, rule)


# -- keyword overrides -----------------------------------------------------------------------------
@fuzz(120)
@given(kwargs=override_kwargs(), rule=st.sampled_from(RULES), spec=SMALL_NETS)
def test_keyword_overrides_give_a_plan_or_a_typed_error(kwargs: dict, rule: str, spec):
    model, x = build_torch(spec)
    try:
        plan = seinject.plan(model, rule, **kwargs)
    except SEInjectError as exc:
        event(f"plan: {type(exc).__name__}")
        check_message(exc)
        return
    event(f"plan: {len(plan)} site(s)")
    apply_torch(model, x, rule, **kwargs)


@fuzz(100)
@given(kwargs=override_kwargs(), rule=st.sampled_from(RULES), graph=onnx_nets())
def test_keyword_overrides_on_onnx_give_a_plan_or_a_typed_error(kwargs: dict, rule: str, graph):
    proto, x = build_onnx(graph)
    try:
        seinject.onnx.plan(proto, rule, **kwargs)
    except SEInjectError as exc:
        event(f"onnx plan: {type(exc).__name__}")
        check_message(exc)
        return
    apply_onnx(proto, x, rule, **kwargs)


# -- command line ----------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> tuple[int, str]:
    """main(argv) in-process: (exit code, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


def check_exit(code: int, output: str, allowed: tuple[int, ...]) -> None:
    assert code in allowed, f"exit {code}: {output[-600:]}"
    assert "Traceback" not in output and "error: unexpected " not in output, output[-600:]
    event(f"exit {code}")


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    """A folder with a small residual ONNX model (in.onnx) for the command-line properties."""
    import onnx

    from tests.onnx_backend.graphs import residual_net

    path = tmp_path_factory.mktemp("fuzz_cli")
    onnx.save(residual_net(blocks=1), str(path / "in.onnx"))
    return path


@fuzz(120)
@given(text=rule_texts(), command=st.sampled_from((["check"], ["show"], ["show", "--json"])))
def test_rules_commands_on_any_file_exit_0_or_2(cli_folder, text: str, command: list[str]):
    rule_file = cli_folder / "rule.yaml"
    rule_file.write_bytes(text.encode("utf-8", "surrogatepass"))
    code, output = run_cli(["rules", command[0], str(rule_file), *command[1:]])
    check_exit(code, output, (0, 2))


@fuzz(100)
@given(options=cli_options(), text=st.none() | rule_texts())
def test_onnx_dry_run_with_any_options_exits_0_2_or_3(cli_folder, options: list[str], text: str | None):
    before = (cli_folder / "in.onnx").read_bytes()
    argv = ["onnx", str(cli_folder / "in.onnx"), "--dry-run", *options]
    if text is not None:
        (cli_folder / "rule.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
        argv += ["--rule", str(cli_folder / "rule.yaml")]
    note(repr(argv))
    code, output = run_cli(argv)
    check_exit(code, output, (0, 2, 3))
    assert (cli_folder / "in.onnx").read_bytes() == before


@fuzz(30)
@given(options=cli_options().filter(lambda argv: not any("30000" in a for a in argv)))
def test_onnx_rewrite_with_any_options_exits_0_2_or_3_and_leaves_only_its_output(tmp_path_factory, options):
    """`seinject onnx IN OUT` for real (verification included): IN is untouched, and the folder then
    holds IN and at most OUT (with OUT.data), nothing else; OUT exists after exit 0 with blocks."""
    import onnx

    from tests.onnx_backend.graphs import residual_net

    work = tmp_path_factory.mktemp("fuzz_write")
    onnx.save(residual_net(blocks=1), str(work / "in.onnx"))
    before = (work / "in.onnx").read_bytes()
    note(repr(options))
    code, output = run_cli(["onnx", str(work / "in.onnx"), str(work / "out.onnx"), *options])
    check_exit(code, output, (0, 2, 3))
    assert (work / "in.onnx").read_bytes() == before
    left = sorted(p.name for p in work.iterdir())
    assert set(left) <= {"in.onnx", "out.onnx", "out.onnx.data"}, left
    nothing = ("inserted 0 SE block" in output or "inserted no SE block" in output)  # --json prints no count
    if code == 0 and "--dry-run" not in options and not nothing:
        assert "out.onnx" in left, output[-600:]
    event("wrote OUT" if "out.onnx" in left else "wrote nothing")


# -- regressions: the smallest examples the properties above found (fixed in the rule loader and matcher)
def test_recursive_alias_is_a_rule_error():
    """`&a [*a]` made the alias-bomb guard recurse until RecursionError (exit 1 on the command line)."""
    with pytest.raises(seinject.RuleError, match="^fuzz.yaml"):
        seinject.parse_rule("name: &a [*a]\npattern: [conv]\n", PATH)


def test_pattern_starting_with_an_optional_element_matches():
    """An absent optional first element made the matcher ask networkx for the readers of node None."""
    rule = seinject.parse_rule("name: r\npattern: [{kind: norm, optional: true}, conv]\n", PATH)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    assert [site.name for site in seinject.plan(net, rule)] == ["0"]


def test_explicit_tag_on_a_wrong_value_is_a_rule_error():
    """`!!float 3name` made PyYAML's constructor raise ValueError (a raw exception, exit 1)."""
    with pytest.raises(seinject.RuleError, match="^fuzz.yaml.*invalid YAML value"):
        seinject.parse_rule("!!float 3name: after_concat\npattern: [conv]\n", PATH)
