"""Hostile rules and options: every case is generated here and asserts the exit code or exception
type, a message naming what is wrong (short, whatever the value holds), input files byte-identical,
nothing left behind, and bounded time for the cases that used to run without end.

The same value is tried through every entry point that takes it: a rule file (`seinject rules
check`, load_rule), a command-line option (`seinject onnx`), and a Python keyword (seinject.apply,
seinject.onnx.apply), since one validator serves them all.
"""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import seinject
import seinject.onnx as se_onnx
from seinject.errors import ConfigError, RuleError, RuleNotFoundError, SEInjectError
from seinject import limits
from seinject.rule import patterns
from tests.onnx_backend.graphs import residual_net

RULE_HEAD = "name: hostile\npattern: [{kind: add, residual: true}, act]\n"
LONG_A = "a" * 26  # `(a+)+$` needs about 2**26 steps per name starting with these


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A few hundred bytes that expand to width**levels items."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# -- rule files: (file text, line at fault or None, words the message must hold) -------------------
RULE_FILES = {
    "alias bomb in name": (alias_bomb() + "name: *a8\npattern: [add]\n", 9, "expands to"),
    "many aliases": ("a: &a add\nname: x\npattern: [" + ", ".join(["*a"] * 101) + "]\n", 3, "YAML aliases"),
    "alias bomb in kind": ("x: &x [add, add, add, add, add, add, add, add]\ny: &y [*x, *x, *x, *x, *x, *x, *x, *x]\n"
                           "z: &z [*y, *y, *y, *y, *y, *y, *y, *y]\nw: &w [*z, *z, *z, *z, *z, *z, *z, *z]\n"
                           "v: &v [*w, *w, *w, *w, *w, *w, *w, *w]\nname: x\npattern: [{kind: *v}]\n",
                           7, "expands to"),  # the line of the largest entry: pattern
    "alias bomb in ratio": (alias_bomb(8, 6) + RULE_HEAD + "se: {ratio: *a7}\n", 11, "expands to"),
    "deep nesting": ("name: x\npattern: " + "[" * 5000 + "]" * 5000 + "\n", 2, "nested more than"),
    "NUL byte": ("name: x\x00\npattern: [add]\n", None, "invalid YAML"),
    "two documents": ("name: x\npattern: [add]\n---\nname: y\n", 3, "invalid YAML"),
    "non-string key": ("? [a, b]\n: 1\nname: x\npattern: [add]\n", 1, "keys must be strings"),
    "empty file": ("", 1, "must be a mapping"),
    "ratio .nan": (RULE_HEAD + "se:\n  ratio: .nan\n", 4, "finite number"),
    "ratio .inf": (RULE_HEAD + "se:\n  ratio: .inf\n", 4, "finite number"),
    "ratio 1e-9": (RULE_HEAD + "se:\n  ratio: 1.0e-9\n", 4, "must be in [0.0625"),
    "min_hidden 1e12": (RULE_HEAD + "se:\n  min_hidden: 1000000000000\n", 4, "integer in [1, 65536]"),
    "last 0": (RULE_HEAD + "filters:\n  last: 0\n", 4, "'last' must be an integer >= 1"),
    "every -1": (RULE_HEAD + "filters:\n  every: -1\n", 4, "'every' must be an integer >= 1"),
    "offset huge": (RULE_HEAD + "filters:\n  offset: " + "9" * 40 + "\n", 4, "'offset' must be an integer"),
    "bad regex": (RULE_HEAD + "filters:\n  include: ['(']\n", 4, "not a valid regular expression"),
    "long regex": (RULE_HEAD + "filters:\n  exclude: ['" + "a" * 2000 + "']\n", 4, "at most 1000"),
    "too many regexes": (RULE_HEAD + "filters:\n  include: [" + ", ".join(["a"] * 300) + "]\n", 4, "at most 256"),
    "stages as a string": (RULE_HEAD + "filters:\n  stages: '3'\n", 4, "integer or a list of integers"),
    "1 MB kind name": ("name: x\npattern: [{kind: " + "k" * 1_000_000 + "}]\n", 2, "unknown kind"),
    "gate as a list": (RULE_HEAD + "se:\n  gate: [sigmoid]\n", 4, "'gate' must be one of"),
}


@pytest.mark.parametrize("case", sorted(RULE_FILES))
def test_hostile_rule_file_exits_2_fast_with_a_short_message(case, folder, cli):
    text, line, words = RULE_FILES[case]
    path = folder.path / "rule.yaml"
    path.write_bytes(text.encode("utf-8"))
    folder.snapshot()
    start = time.perf_counter()
    code, err = cli("rules", "check", path)
    assert time.perf_counter() - start < 5
    assert code == 2, err
    where = f"{path}:{line}: " if line is not None else f"{path}"
    assert where in err and words in err, err
    assert len(err) < 600, err  # the value is never printed in full
    with pytest.raises(RuleError, match=None) as info:
        seinject.load_rule(path)
    assert words in str(info.value)
    folder.assert_untouched()


def test_a_50_mb_rule_file_is_refused_before_it_is_parsed(folder, cli):
    path = folder.path / "big.yaml"
    with open(path, "wb") as handle:
        handle.write(RULE_HEAD.encode())
        handle.write(b"description: |\n" + b"  " + b"x" * (50 << 20) + b"\n")
    folder.snapshot()
    start = time.perf_counter()
    code, err = cli("onnx", "in.onnx", "out.onnx", "--rule", path)
    assert code == 2 and f"{path}: rule file is larger than {limits.MAX_RULE_BYTES} bytes" in err
    assert time.perf_counter() - start < 5
    folder.assert_untouched()


def test_invalid_utf8_and_special_paths_as_rules(folder):
    (folder.path / "latin1.yaml").write_bytes(b"name: caf\xe9\npattern: [add]\n")
    os.mkfifo(folder.path / "fifo.yaml")  # reading it would block for ever
    (folder.path / "dir.yaml").mkdir()
    folder.snapshot()
    with pytest.raises(RuleError, match="latin1.yaml: cannot read rule file: .*utf-8"):
        seinject.load_rule(folder.path / "latin1.yaml")
    for name in ("fifo.yaml", "dir.yaml"):
        with pytest.raises(RuleNotFoundError, match=f"rule file not found: .*{name}"):
            seinject.load_rule(folder.path / name)
    with pytest.raises(RuleError, match="rule must be a name, a path or a Rule, got int"):
        seinject.load_rule(123)
    folder.assert_untouched()


# -- options: the same bad value as a CLI option and a Python keyword --------------------------------
OPTIONS = {  # name: (CLI arguments or None, Python keywords, words of the message)
    "every 0": (["--every", "0"], {"every": 0}, "'every' must be an integer >= 1, got 0"),
    "last 0": (["--last", "0"], {"last": 0}, "'last' must be an integer >= 1, got 0"),
    "first bool": (None, {"first": True}, "'first' must be an integer >= 1, got True"),
    "offset -1": (["--offset", "-1"], {"offset": -1}, "'offset' must be an integer >= 0"),
    "ratio nan": (["--ratio", "nan"], {"ratio": math.nan}, "'ratio' must be a finite number"),
    "ratio inf": (["--ratio", "inf"], {"ratio": math.inf}, "'ratio' must be a finite number"),
    "ratio 1e-9": (["--ratio", "1e-9"], {"ratio": 1e-9}, "'ratio' must be in [0.0625"),
    "ratio numpy nan": (None, {"ratio": np.float64("nan")}, "'ratio' must be a finite number"),
    "min_hidden 1e12": (["--min-hidden", str(10**12)], {"min_hidden": 10**12}, "integer in [1, 65536]"),
    "divisor 0": (["--divisor", "0"], {"divisor": 0}, "'divisor' must be an integer in [1, 65536]"),
    "include (": (["--include", "("], {"include": "("}, "include pattern '(' is not a valid regular"),
    "include 5": (None, {"include": 5}, "'include' must be a string or a list of strings, got 5"),
    "exclude nested list": (None, {"exclude": [["a"]]}, "'exclude' must be a string or a list of strings"),
    "stages string": (None, {"stages": "3"}, "'stages' must be an integer or a list of integers, got '3'"),
    "stages zero": (["--stages", "0"], {"stages": [0]}, "'stages' must be an integer >= 1, got 0"),
    "max_channels huge": (["--max-channels", "9" * 30], {"max_channels": int("9" * 30)}, "'max_channels' must be"),
    "gate list": (None, {"gate": ["sigmoid"]}, "'gate' must be one of sigmoid, hardsigmoid"),
    "act 1 MB": (["--act", "x" * 1_000_000], {"act": "x" * 1_000_000}, "'act' must be one of"),
    "misspelt option": (None, {"ratoi": 8}, "did you mean 'ratio'"),
    "outside_residual str": (None, {"outside_residual": "no"}, "'outside_residual' must be true or false"),
}


@pytest.fixture
def onnx_file(folder):
    onnx.save(residual_net(), folder.path / "in.onnx")
    return folder.path / "in.onnx"


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_hostile_option_is_refused_alike_on_every_entry_point(case, folder, cli, onnx_file):
    argv, keywords, words = OPTIONS[case]
    folder.snapshot()
    if argv is not None:
        code, err = cli("onnx", onnx_file, folder.path / "out.onnx", *argv)
        assert code == 2 and words in err and len(err) < 600, err
    for call in (lambda: seinject.apply(small_net(), "conv_block", **keywords),
                 lambda: seinject.plan(small_net(), "conv_block", **keywords),
                 lambda: se_onnx.apply(onnx.load(onnx_file), "after_residual", **keywords)):
        with pytest.raises(ConfigError) as info:
            call()
        assert words in str(info.value) and len(str(info.value)) < 600
    folder.assert_untouched()


def test_last_zero_never_keeps_every_site():
    """`last=0` once meant kept[-0:], every site."""
    with pytest.raises(ConfigError):
        seinject.plan(small_net(), "conv_block", last=0)
    assert len(seinject.plan(small_net(), "conv_block", last=1)) == 1


# -- unbounded work ----------------------------------------------------------------------------------
class LongNames(nn.Module):
    """Module names that make `(a+)+$` backtrack for ever."""

    def __init__(self):
        super().__init__()
        setattr(self, LONG_A, nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()))

    def forward(self, x):
        return getattr(self, LONG_A)(x)


@pytest.fixture
def short_deadline(monkeypatch):
    monkeypatch.setattr(patterns, "REGEX_SECONDS", 0.3)


@pytest.mark.parametrize("key", ["include", "exclude"])
def test_a_backtracking_regex_stops_at_the_deadline(key, short_deadline):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"{key} pattern '\(a\+\)\+\$' took more than 0.3 s .*nested repetition"):
        seinject.apply(LongNames(), "conv_block", **{key: r"(a+)+$"})
    assert time.perf_counter() - start < 5


def test_the_deadline_holds_off_the_main_thread_too(short_deadline):
    caught = []

    def worker():
        try:
            seinject.plan(LongNames(), "conv_block", include=r"(a+)+$")
        except SEInjectError as exc:
            caught.append(exc)

    start = time.perf_counter()
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and time.perf_counter() - start < 10
    assert len(caught) == 1 and isinstance(caught[0], ConfigError) and "took more than" in str(caught[0])


def test_the_deadline_applies_to_also_patterns_of_training(short_deadline):
    net = seinject.apply(LongNames(), "conv_block")
    with pytest.raises(ConfigError, match="also pattern .* took more than"):
        seinject.mark_trainable(net, also=[r"(a+)+$"])


def test_a_backtracking_regex_on_the_command_line_exits_2(folder, cli, short_deadline):
    model = residual_net()
    for node in model.graph.node:
        node.name = LONG_A + node.name
    onnx.save(model, folder.path / "in.onnx")
    folder.snapshot()
    code, err = cli("onnx", folder.path / "in.onnx", folder.path / "out.onnx", "--include", r"(a+)+$")
    assert code == 2 and "took more than" in err
    folder.assert_untouched()


def test_a_caller_timer_is_left_alone():
    """A timer the caller armed is not replaced (matching then runs in a child process)."""
    import signal

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        assert patterns.matching_names(["b"], ["ab", "cd"], "include") == [True, False]
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0 and signal.getsignal(signal.SIGALRM) is not previous
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_oversized_block_is_refused_before_anything_is_allocated():
    net = nn.Sequential(nn.Conv2d(3, 4096, 1), nn.ReLU())
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="the SE block at '1' would be 65536 wide .* raise ratio"):
        seinject.apply(net, "conv_block", ratio=1 / 16)
    assert time.perf_counter() - start < 5


def test_keyword_values_are_recorded_as_checked():
    net = seinject.apply(small_net(), "conv_block", stages=np.array([1])[0], ratio=np.float32(4.0))
    assert seinject.report(net).overrides == {"stages": (1,), "ratio": 4}
    assert type(seinject.report(net).overrides["ratio"]) is int


def test_the_checks_have_one_source():
    """YAML and keywords share Filters/SEConfig: a value refused in one is refused in the other."""
    with pytest.raises(ConfigError) as python:
        seinject.plan(small_net(), "conv_block", every=0)
    with pytest.raises(RuleError) as yaml:
        seinject.parse_rule(RULE_HEAD + "filters: {every: 0}\n", "r.yaml")
    assert python.value.reason == yaml.value.reason


def test_torch_identity_is_checked_on_example_inputs():
    net = small_net().half()
    x = torch.full((1, 3, 8, 8), 60000.0).half()
    new = seinject.apply(net, "conv_block", example_inputs=x)
    assert seinject.report(new).verified is True
