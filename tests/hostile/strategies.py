"""Hypothesis strategies for the fuzz tests: rule YAML texts, keyword overrides, command lines, random
small conv networks (torch modules and ONNX graphs), and the checks that compare two models.

Every strategy draws plain data (strings, tuples, frozen dataclasses), so a failing example prints
as something one can paste into a repro; `build_torch` and `build_onnx` turn the drawn specs
into models, resolving channel counts and groups so that every drawn spec is a valid network.

Settings: `fuzz(n)` is the shared profile (no deadline, no example database so CI runs do not
depend on earlier runs, failure blobs printed for @reproduce_failure) with n examples, times
SEINJECT_FUZZ_SCALE (default 1) for longer local runs.

Example:
    >>> from hypothesis import given
    >>> @fuzz(5)
    ... @given(torch_nets())
    ... def check(spec):
    ...     model, x = build_torch(spec)
    ...     assert model(x) is not None
    >>> check()
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from torch import nn

# -- settings ---------------------------------------------------------------------------------
settings.register_profile(
    "seinject-fuzz", deadline=None, database=None, print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],  # no slow explain phase
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
_SCALE = max(1, int(os.environ.get("SEINJECT_FUZZ_SCALE", "1")))


def fuzz(max_examples: int) -> settings:
    """The fuzz profile with `max_examples` (times SEINJECT_FUZZ_SCALE)."""
    return settings(settings.get_profile("seinject-fuzz"), max_examples=max_examples * _SCALE)


# == rule YAML ==================================================================================
KINDS = ("conv", "norm", "act", "add", "mul", "concat", "split", "pool", "linear", "dropout", "identity",
         "reshape", "shape", "se", "input", "other")
TOP_KEYS = ("name", "description", "pattern", "insert", "filters", "se")
SPEC_KEYS = ("kind", "id", "optional", "depthwise", "grouped", "kernel_size", "stride", "fn", "residual",
             "channel_concat", "min_channels", "max_channels")
INSERT_KEYS = ("position", "node")
FILTER_KEYS = ("include", "exclude", "min_channels", "max_channels", "outside_residual", "stages", "first",
               "last", "every", "offset")
SE_KEYS = ("ratio", "divisor", "min_hidden", "act", "gate", "init", "min_channels")
IDS = ("a", "b", "join", "act", "cat", "dw", "x")
_BOOLS = ("true", "false")

# Values a working rule would use, per key (YAML text): they let examples get past validation
# often enough to reach the matcher and the rewrite.
GOOD_VALUES: dict[str, tuple[str, ...]] = {
    "name": ("fuzz", "x", "'a b'", "名前"),
    "description": ("hi", "''", "'multi\\nline'"),
    "kind": KINDS + ("[conv, act]", "[add]", "[act, norm]"),
    "id": IDS,
    **{key: _BOOLS for key in ("optional", "depthwise", "grouped", "residual", "channel_concat",
                               "outside_residual")},
    "kernel_size": ("1", "3", "[1, 1]", "[3, 3]", "[1]"),
    "stride": ("1", "2", "[2, 2]"),
    "fn": ("relu", "silu", "hardswish", "max_pool", "avg_pool", "batch_norm", "hard_swish", "[relu, silu]",
           "adaptive_avg_pool", "relu6"),
    "min_channels": ("1", "2", "4", "8"),
    "max_channels": ("2", "8", "64"),
    "position": ("after", "after", "branch_end", "branch_start", "shortcut"),
    "node": IDS,
    "include": ("'.'", "'1'", "'[0-9]'", "stages", "[a, '0']", "'^0'"),
    "exclude": ("'.'", "'1'", "'zzz'", "[branch]"),
    "stages": ("1", "[1, 2]", "2"),
    "first": ("1", "2", "3"), "last": ("1", "2"), "every": ("1", "2", "3"), "offset": ("0", "1"),
    "ratio": ("1", "2", "4", "16", "0.5", "1.5"),
    "divisor": ("1", "2", "8"),
    "min_hidden": ("1", "2", "8"),
    "act": ("relu", "relu6", "silu", "gelu", "hardswish", "swish", "hard_swish"),
    "gate": ("sigmoid", "hardsigmoid", "hard_sigmoid"),
    "init": ("identity", "identity", "random"),
}

# Scalars that break things: non-finite and huge numbers, YAML's implicit types and tags,
# escapes for NUL and lone surrogates, regex syntax errors, undefined aliases, unicode.
HOSTILE_SCALARS = (
    ".nan", ".NaN", ".inf", "-.inf", "+.inf", "~", "null", "''", "yes", "no", "on", "0", "-1", "-0", "0.0",
    "1e-9", "1e309", "-1e309", "1e12", "0x7fffffffffffffff", "99999999999999999999999999999999",
    "-99999999999999999999", "0o777", "1_000", "'8'", "'3,4'", '"\\0"', '"a\\0b"', '"\\ud800"', '"\\u202e"',
    "'('", "'(a+)+$'", "'[z-a]'", "'\\'", "é", "日本", "🦀", "!!binary aGVsbG8=", "2001-12-14",
    "!!set {a: null}", "!!float 3", "!!int '4'", "!!str 5", "!!python/name:os.system", "!!omap [a: 1]",
    "*nowhere", "&anchor 3", "[]", "{}", "[1, 2]", "[1.5]", "[.nan]", "[-1, 0]", "{a: 1}", "[[conv]]",
    "[{kind: conv}]", "? a", "!!null ''", "<<", "'%'", "'@'", "!local x", "true",
)

# Raw characters a text may contain that YAML's reader refuses or treats specially.
RAW_CHARS = ("\x00", "\x07", "\x1b", "\ufeff", "\x85", "\u2028", "\ud800", "\t", "\r", "%", "@", "`", "&", "*",
             "!", "|", ">", "\\", "'", '"', "#", "-", ":", "?", "{", "}", "[", "]", ",")
YAML_TOKENS = RAW_CHARS + tuple("abcnt01 \n") + ("conv", "name", "pattern", "kind", ": ", "- ", "\n  ")


def yaml_noise(max_tokens: int) -> st.SearchStrategy[str]:
    """Text made of YAML's special characters and a few rule words."""
    return st.lists(st.sampled_from(YAML_TOKENS), max_size=max_tokens).map("".join)


def nested_values(depth: int = 2) -> st.SearchStrategy[str]:
    """Small flow lists and mappings (YAML text) of hostile scalars, at most 3·depth of them."""
    leaf = st.sampled_from(HOSTILE_SCALARS)
    return st.recursive(leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(("a", "kind", "ratio", "1", "'k'")), inner), max_size=3)
        .map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}")), max_leaves=depth * 3)


@st.composite
def deep_nesting(draw) -> str:
    """`[[[...x...]]]` or `{a: {a: ... x}}` nested n levels (the loader caps the depth)."""
    n = draw(st.one_of(st.integers(1, 40), st.integers(40, 3000)))
    if draw(st.booleans()):
        return "[" * n + "x" + "]" * n
    return "{a: " * n + "x" + "}" * n


@st.composite
def alias_bomb(draw) -> str:
    """A flow list whose last item expands to width**levels scalars through anchors and aliases."""
    levels, width = draw(st.integers(1, 5)), draw(st.integers(2, 9))
    items = ["&b0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, levels):
        items.append(f"&b{level} [" + ", ".join([f"*b{level - 1}"] * width) + "]")
    return "[" + ", ".join(items) + "]"


@st.composite
def long_values(draw) -> str:
    """A long scalar or a long flow list: error messages must quote only a prefix."""
    n = draw(st.integers(100, 20000))
    if draw(st.booleans()):
        return "a" * n
    return "[" + ", ".join(["x"] * min(n, 5000)) + "]"


class _YamlDraw:
    """Draws YAML value texts in document order, so `*alias` only names anchors defined before it."""

    def __init__(self, draw):
        self.draw = draw
        self.anchors: list[str] = []

    def value(self, key: str) -> str:
        d = self.draw
        choice = d(st.sampled_from(("good", "good", "good", "hostile", "nested", "alias", "special")))
        if choice == "good" and key in GOOD_VALUES:
            text = d(st.sampled_from(GOOD_VALUES[key]))
        elif choice == "alias" and self.anchors:
            return "*" + d(st.sampled_from(self.anchors))
        elif choice == "nested":
            text = d(nested_values())
        elif choice == "special":
            text = d(st.one_of(deep_nesting(), alias_bomb(), long_values(), st.text(max_size=8).map(repr),
                               st.sampled_from(("&self [x, *self]", "&self {a: *self}", "&self [[*self]]"))))
        else:
            text = d(st.sampled_from(HOSTILE_SCALARS))
        if d(st.integers(0, 9)) == 0:  # an anchor on this value, for a later alias
            name = f"a{len(self.anchors)}"
            self.anchors.append(name)
            text = f"&{name} {text}"
        return text

    def mapping(self, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> str:
        d = self.draw
        chosen = list(required) + d(st.lists(st.sampled_from(keys), max_size=4, unique=True))
        if d(st.integers(0, 7)) == 0:
            chosen.append(d(st.sampled_from(("kinds", "Kind", "ratoi", "stage", "position ", "1"))))
        chosen = list(dict.fromkeys(chosen))
        return "{" + ", ".join(f"{k}: {self.value(k)}" for k in chosen) + "}"

    def element(self) -> str:
        d = self.draw
        form = d(st.sampled_from(("kind", "mapping", "mapping", "hostile")))
        if form == "kind":
            return self.value("kind")
        if form == "hostile":
            return d(st.sampled_from(HOSTILE_SCALARS))
        return self.mapping(SPEC_KEYS, required=("kind",) if d(st.integers(0, 5)) else ())

    def pattern(self) -> str:
        d = self.draw
        if d(st.integers(0, 7)) == 0:
            return self.value("pattern")
        return "[" + ", ".join(self.element() for _ in range(d(st.integers(0, 4)))) + "]"


@st.composite
def structured_rules(draw) -> str:
    """A rule document from the real keys, each value right, wrong, hostile, aliased or huge."""
    y = _YamlDraw(draw)
    keys = [k for k in TOP_KEYS if draw(st.integers(0, 9)) < (9 if k in ("name", "pattern") else 5)]
    if draw(st.integers(0, 9)) == 0:
        keys.append(draw(st.sampled_from(("rule", "Pattern", "se ", "filter", "ratio"))))
    keys = draw(st.permutations(keys)) if draw(st.integers(0, 3)) == 0 else keys
    lines = []
    for key in keys:
        if key == "pattern":
            value = y.pattern()
        elif key == "insert":
            value = y.mapping(INSERT_KEYS)
        elif key == "filters":
            value = y.mapping(FILTER_KEYS)
        elif key == "se":
            value = y.mapping(SE_KEYS)
        else:
            value = y.value(key)
        lines.append(f"{key}: {value}")
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 7)) == 0:  # a raw character somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(RAW_CHARS)) + text[at:]
    return text


def _builtin_rule_texts() -> tuple[str, ...]:
    from seinject.rule.loader import builtin_rules_dir

    return tuple(p.read_text(encoding="utf-8") for p in sorted(builtin_rules_dir().glob("*.yaml")))


@st.composite
def mutated_builtin_rules(draw) -> str:
    """A built-in rule's text with one to three edits: a slice replaced by hostile text or deleted."""
    text = draw(st.sampled_from(_builtin_rule_texts()))
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 20)))
        insert = draw(st.one_of(st.sampled_from(HOSTILE_SCALARS), st.sampled_from(RAW_CHARS), st.just(""),
                                yaml_noise(5)))
        text = text[:start] + insert + text[end:]
    return text


# Pattern elements that real networks contain (YAML flow mappings), for rules that match often.
PLAUSIBLE_ELEMENTS = (
    "{kind: conv, id: a}", "{kind: conv, depthwise: true, id: a}", "{kind: conv, kernel_size: 1, id: a}",
    "{kind: conv, grouped: true}", "{kind: conv, stride: 2}", "{kind: conv, min_channels: 2, max_channels: 8}",
    "{kind: norm, optional: true}", "{kind: norm, fn: batch_norm}", "{kind: act, id: b}",
    "{kind: act, optional: true, id: b}", "{kind: act, fn: [relu, silu, hardswish]}",
    "{kind: add, residual: true, id: join}", "{kind: add, id: join}", "{kind: concat, channel_concat: true, id: c}",
    "{kind: split, id: s}", "{kind: pool, fn: [max_pool, avg_pool]}", "{kind: pool, optional: true}", "mul",
    "{kind: dropout, optional: true}", "identity", "reshape", "input", "{kind: [act, norm], id: b}", "other",
)


@st.composite
def plausible_rules(draw) -> str:
    """A rule that is valid or nearly so (block style, elements real networks have, good settings),
    with at most one value swapped for a hostile one: such rules match, so they reach the rewrite."""
    elements = draw(st.lists(st.sampled_from(PLAUSIBLE_ELEMENTS), min_size=1, max_size=3))
    ids = [i for e in elements for i in ("a", "b", "join", "c", "s") if f"id: {i}}}" in e]
    joins = "join" in ids and "residual: true" in " ".join(elements)
    lines = ["name: plausible", "pattern:"] + [f"  - {e}" for e in elements]
    position = draw(st.sampled_from(("after", "branch_end", "branch_start", "shortcut") if joins else ("after",)))
    node = "join" if position != "after" else draw(st.sampled_from([None] + ids))
    lines += ["insert:", f"  position: {position}"] + ([f"  node: {node}"] if node else [])
    filters = draw(st.lists(st.sampled_from(FILTER_KEYS), max_size=2, unique=True))
    if filters:
        lines += ["filters:"] + [f"  {k}: {draw(st.sampled_from(GOOD_VALUES[k]))}" for k in filters]
    settings_ = draw(st.lists(st.sampled_from(SE_KEYS[:-1]), max_size=3, unique=True))
    if settings_:
        lines += ["se:"] + [f"  {k}: {draw(st.sampled_from(GOOD_VALUES[k]))}" for k in settings_]
    if draw(st.integers(0, 3)) == 0:  # one hostile value
        i = draw(st.integers(0, len(lines) - 1))
        key = lines[i].split(":")[0]
        lines[i] = f"{key}: {draw(st.sampled_from(HOSTILE_SCALARS))}"
    return "\n".join(lines) + "\n"


def rule_texts() -> st.SearchStrategy[str]:
    """Any text a user might hand over as a rule file: plausible, structured but wrong, a built-in
    rule mutated, or plain noise."""
    return st.one_of(plausible_rules(), structured_rules(), structured_rules(), mutated_builtin_rules(),
                     st.text(max_size=200), yaml_noise(60))


# == keyword overrides and command-line options =================================================
SE_FIELDS = ("ratio", "divisor", "min_hidden", "act", "gate", "init")
FILTER_FIELDS = ("include", "exclude", "min_channels", "max_channels", "outside_residual", "stages", "first",
                 "last", "every", "offset")
_NOT_OVERRIDES = ("model", "rule", "example_inputs", "inplace", "strict", "verbose", "verify")
GOOD_PYTHON: dict[str, tuple] = {
    "ratio": (1, 2, 4, 16, 0.5, 1.5), "divisor": (1, 2, 8), "min_hidden": (1, 2, 8),
    "act": ("relu", "silu", "hardswish", "swish"), "gate": ("sigmoid", "hardsigmoid", "hard_sigmoid"),
    "init": ("identity",), "include": (".", "1", ["0", "1"], ("a",)), "exclude": ("zzz", ["0"]),
    "min_channels": (1, 2, 8), "max_channels": (2, 64), "outside_residual": (True, False),
    "stages": (1, (1, 2), [2]), "first": (1, 2), "last": (1, 2), "every": (1, 2), "offset": (0, 1),
}
_ODD_PYTHON = (None, True, False, 0, -1, 2**31, 2**63, 10**30, -(10**30), 0.0, -0.0, 1e-9, 1e309, float("nan"),
               float("-inf"), "", "nan", "16", "3,4", "(", "(a+)+$", "[", "\\", "\x00", "\ud800", b"bytes",
               [], (), [1, "a"], ["("], [None], {"a": 1}, {1, 2}, frozenset(), range(3), 1 + 2j,
               [[1]], object(), ..., "é" * 3, "a" * 5000, [0] * 1000, np.int64(3), np.float32(2.0),
               np.array([1, 2]), torch.tensor(4))


def python_values() -> st.SearchStrategy:
    """Odd Python values of every type a keyword argument could receive."""
    return st.one_of(st.sampled_from(_ODD_PYTHON), st.integers(), st.floats(), st.text(max_size=10),
                     st.lists(st.integers(-3, 5), max_size=4), st.lists(st.text(max_size=4), max_size=3))


@st.composite
def override_kwargs(draw) -> dict:
    """Keyword overrides: real setting and filter names (and misspelt ones) with good or odd values."""
    names = SE_FIELDS + FILTER_FIELDS
    keys = draw(st.lists(st.one_of(st.sampled_from(names), st.sampled_from(names),
                                   st.from_regex(r"[a-z_]{1,12}", fullmatch=True)),
                         max_size=4, unique=True))
    out = {}
    for key in keys:
        if key in _NOT_OVERRIDES:
            continue
        good = GOOD_PYTHON.get(key)
        out[key] = draw(st.sampled_from(good)) if good and draw(st.integers(0, 3)) else draw(python_values())
    return out


CLI_OPTIONS = ("--ratio", "--divisor", "--min-hidden", "--act", "--gate", "--init", "--seed", "--include",
               "--exclude", "--min-channels", "--max-channels", "--stages", "--first", "--last", "--every",
               "--offset", "--input-shape", "--atol", "--rtol", "--ort-opt-level", "--rule", "--outside-residual",
               "--ration", "-r")
CLI_FLAGS = ("--strict", "--json", "-v", "-q", "--no-verify", "--overwrite", "--external-data")
CLI_VALUES = ("nan", "inf", "-inf", "-1", "0", "1", "2", "3", "16", "0.5", "1e309", "1e-9", "99999999999999999999",
              "(", "(a+)+$", "[", "3,4", "1,,2", ",", "a", "", " ", "x:1,3,8,8", "1x3x8x8", "x:0,3", "x:1,3",
              "x:1,3,30000,30000", "y:1,3,8,8", ":", "é", "--ratio", "relu", "hard_sigmoid", "random", "identity",
              "after_residual", "conv_block", "no_such_rule", "/nonexistent.yaml", "basic", "all", "-0")
GOOD_CLI = {"--ratio": ("4", "16", "2.5"), "--divisor": ("1", "8"), "--min-hidden": ("1", "4"),
            "--act": ("relu", "silu", "hard_swish"), "--gate": ("sigmoid", "hard_sigmoid"), "--init": ("identity",),
            "--seed": ("0", "7"), "--include": ("b0", "."), "--exclude": ("zzz",), "--min-channels": ("1", "4"),
            "--max-channels": ("64",), "--stages": ("1", "1,2"), "--first": ("1",), "--last": ("1", "2"),
            "--every": ("1", "2"), "--offset": ("0", "1"), "--input-shape": ("x:2,3,8,8", "1,3,16,16"),
            "--atol": ("1e-6",), "--rtol": ("0",), "--ort-opt-level": ("basic", "disable"),
            "--rule": ("residual_branch", "conv_block", "before_residual")}


@st.composite
def cli_options(draw) -> list[str]:
    """Options for `seinject onnx IN --dry-run`: real and misspelt names with good or hostile values."""
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 4)) == 0:
            argv.append(draw(st.sampled_from(CLI_FLAGS)))
            continue
        option = draw(st.sampled_from(CLI_OPTIONS))
        good = GOOD_CLI.get(option)
        value = draw(st.sampled_from(good)) if good and draw(st.booleans()) else draw(
            st.one_of(st.sampled_from(CLI_VALUES), st.text(max_size=6).filter(lambda s: "\x00" not in s)))
        argv += [option, value] if draw(st.integers(0, 3)) else [f"{option}={value}"]
    return argv


# == random conv networks (torch) ===============================================================
ACT_MODULES = ("ReLU", "ReLU_", "SiLU", "SiLU_", "Hardswish", "ReLU6", "GELU", "FnReLU")
ACT_CALLS = ("F.relu", "F.relu_", "torch.relu_", ".relu", ".relu_", "F.silu", "F.hardswish", "x*sigmoid")
ACTS = ACT_MODULES + ACT_CALLS
JOINS = ("+", "r+", "+=", "add_", "torch.add")
SPATIAL = {1: (16,), 2: (8, 8), 3: (4, 4, 4)}


@dataclass(frozen=True)
class Conv:
    """conv → norm? → act?: `form` unit (a custom module), seq (nn.Sequential) or functional (F.convNd)."""

    cout: int
    kernel: int = 3
    stride: int = 1
    groups: str = "one"  # one, dw (depthwise: cout = cin), two (when both counts are even)
    bias: bool = False
    norm: str | None = "bn"  # bn, gn or none
    act: str | None = "ReLU"
    form: str = "unit"


@dataclass(frozen=True)
class Plain:
    conv: Conv


@dataclass(frozen=True)
class Residual:
    """[pre-act] → branch convs (+) shortcut (identity, or a 1×1 projection) → [post-act]."""

    branch: tuple[Conv, ...]
    join: str = "+"
    pre: str | None = None
    post: str | None = "ReLU"
    project: bool = False
    stride: int = 1
    cout: int = 8
    seq_branch: bool = True
    keyword_call: bool = False  # the branch is called with its argument by keyword


@dataclass(frozen=True)
class Concat:
    """torch.cat([x?] + [branch(x) ...], dim=1)."""

    branches: tuple[tuple[Conv, ...], ...]
    keep_input: bool = False


@dataclass(frozen=True)
class Split:
    """Split x along channels (chunk, split by sizes, split by step), then: use only part 0 (first),
    rebuild with part 0 processed (shuffle), add processed part 0 to part 1 (add), or rebuild from
    part 0 processed and a slice of the parts, `(f(p[0]),) + p[1:]` (slice: a tuple concatenation,
    which torch.fx records as an addition)."""

    how: str = "chunk"  # chunk, sizes, step
    n: int = 2
    use: str = "shuffle"
    conv: Conv = Conv(4)


@dataclass(frozen=True)
class Pool:
    fn: str = "max"  # max, avg, adaptive
    functional: bool = False
    stride: int = 1


@dataclass(frozen=True)
class Act:
    act: str = "ReLU"


@dataclass(frozen=True)
class Inverted:
    """MobileNetV2 block: 1×1 expand → depthwise 3×3 → 1×1 project (+ x when shapes allow)."""

    expand: int = 2
    act: str = "ReLU6"
    stride: int = 1
    cout: int = 8


@dataclass(frozen=True)
class Dropout:
    p: float = 0.5


@dataclass(frozen=True)
class Repeat:
    """The previous stage's module once more (the same instance, called twice) when it keeps the
    channel count; else nothing."""


@dataclass(frozen=True)
class Opaque:
    """A module torch.fx cannot trace (a data-dependent `if`) around a conv; with `again`, its forward
    calls the conv's last child (an activation) a second time, a call seinject's trace cannot see."""

    conv: Conv = Conv(4)
    again: bool = False


@dataclass(frozen=True)
class ModeSwitch:
    """A conv whose activation depends on `self.training` (relu in train mode, tanh in eval mode)."""

    conv: Conv = Conv(4)


@dataclass(frozen=True)
class Net:
    """A whole model: rank, input channels, stages, how the root is built (seq: nn.Sequential,
    list: custom module looping over a ModuleList, fx: a torch.fx.GraphModule of the list form),
    an optional classifier head, and an optional second output (the stage `tap`'s value)."""

    rank: int
    cin: int
    stages: tuple
    root: str = "list"
    head: bool = False
    tap: int | None = None
    seed: int = 0
    scale: float = 1.0
    dtype: str = "float32"
    channels_last: bool = False


def convs(max_cout: int = 12) -> st.SearchStrategy[Conv]:
    """A conv layer spec (conv → norm → act) with random channels, kernel, stride, groups and form."""
    return st.builds(Conv, cout=st.integers(1, max_cout), kernel=st.sampled_from((1, 3)),
                     stride=st.sampled_from((1, 1, 2)), groups=st.sampled_from(("one", "one", "dw", "two")),
                     bias=st.booleans(), norm=st.sampled_from((None, "bn", "bn", "gn")),
                     act=st.one_of(st.none(), st.sampled_from(ACTS)),
                     form=st.sampled_from(("unit", "seq", "functional")))


def stages() -> st.SearchStrategy:
    """One stage of a network (see the dataclasses above)."""
    branch = st.lists(convs(), min_size=1, max_size=3).map(tuple)
    acts = st.sampled_from(ACTS)
    residual = st.builds(Residual, branch=branch, join=st.sampled_from(JOINS), pre=st.none() | acts,
                         post=st.none() | acts, project=st.booleans(), stride=st.sampled_from((1, 1, 2)),
                         cout=st.integers(1, 12), seq_branch=st.booleans(), keyword_call=st.booleans())
    concat = st.builds(Concat, branches=st.lists(st.lists(convs(), min_size=1, max_size=2).map(tuple),
                                                 min_size=1, max_size=3).map(tuple), keep_input=st.booleans())
    split = st.builds(Split, how=st.sampled_from(("chunk", "sizes", "step")), n=st.integers(2, 3),
                      use=st.sampled_from(("first", "shuffle", "add", "slice")), conv=convs())
    return st.one_of(  # residual blocks, concatenations and splits drawn more often: most rules need them
        residual, residual, residual, concat, concat, split, split,
        st.builds(Plain, convs()),
        st.builds(Pool, fn=st.sampled_from(("max", "avg", "adaptive")), functional=st.booleans(),
                  stride=st.sampled_from((1, 2))),
        st.builds(Act, acts),
        st.builds(Inverted, expand=st.integers(1, 4), act=acts, stride=st.sampled_from((1, 2)),
                  cout=st.integers(1, 12)),
        st.just(Dropout()),
        st.just(Repeat()),
        st.builds(ModeSwitch, convs()),
        st.builds(Opaque, convs(), st.booleans()),
    )


def torch_nets(max_stages: int = 5) -> st.SearchStrategy[Net]:
    """A random small conv network spec (see Net)."""
    return st.builds(Net, rank=st.sampled_from((1, 2, 2, 3)), cin=st.integers(1, 4),
                     stages=st.lists(stages(), min_size=1, max_size=max_stages).map(tuple),
                     root=st.sampled_from(("list", "list", "seq", "fx")), head=st.booleans(),
                     tap=st.none() | st.integers(0, max_stages - 1), seed=st.integers(0, 2**16),
                     scale=st.sampled_from((1.0, 1.0, 100.0, 1e-3, 6e4, 1e38)),
                     dtype=st.sampled_from(("float32",) * 5 + ("float64", "bfloat16", "float16")),
                     channels_last=st.booleans())


# -- the modules a spec builds --------------------------------------------------------------------
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOLS = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("max", 3): nn.MaxPool3d,
          ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d, ("avg", 3): nn.AvgPool3d,
          ("adaptive", 1): nn.AdaptiveAvgPool1d, ("adaptive", 2): nn.AdaptiveAvgPool2d,
          ("adaptive", 3): nn.AdaptiveAvgPool3d}
_POOL_FN = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d, ("max", 3): F.max_pool3d,
            ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d, ("avg", 3): F.avg_pool3d}


class FnReLU(nn.Module):
    """A user-defined activation module (not a torch.nn leaf: its forward is traced)."""

    def forward(self, x):
        return F.relu(x)


def act_module(style: str | None) -> nn.Module | None:
    """The module for a module-style activation; None for call styles (see activate)."""
    return {"ReLU": lambda: nn.ReLU(), "ReLU_": lambda: nn.ReLU(inplace=True), "SiLU": lambda: nn.SiLU(),
            "SiLU_": lambda: nn.SiLU(inplace=True), "Hardswish": lambda: nn.Hardswish(),
            "ReLU6": lambda: nn.ReLU6(), "GELU": lambda: nn.GELU(), "FnReLU": FnReLU}.get(style, lambda: None)()


def activate(style: str | None, module: nn.Module | None, x):
    """Apply an activation in the given style (fx traces through this function)."""
    if style is None:
        return x
    if module is not None:
        return module(x)
    if style == "F.relu":
        return F.relu(x)
    if style == "F.relu_":
        return F.relu(x, inplace=True)
    if style == "torch.relu_":
        return torch.relu_(x)
    if style == ".relu":
        return x.relu()
    if style == ".relu_":
        return x.relu_()
    if style == "F.silu":
        return F.silu(x)
    if style == "F.hardswish":
        return F.hardswish(x)
    return x * torch.sigmoid(x)  # x*sigmoid


def join(style: str, out, identity):
    """A residual addition in one of the ways user code writes it."""
    if style == "+":
        return out + identity
    if style == "r+":
        return identity + out
    if style == "+=":
        out += identity
        return out
    if style == "add_":
        return out.add_(identity)
    return torch.add(out, identity)


class ConvUnit(nn.Module):
    """conv (module or F.convNd on its own parameters) → norm → activation (any style)."""

    def __init__(self, rank: int, cin: int, cout: int, kernel: int, stride: int, groups: int, bias: bool,
                 norm: str | None, act: str | None, functional: bool):
        super().__init__()
        self.rank, self.stride, self.padding, self.groups = rank, stride, kernel // 2, groups
        self.functional = functional
        if functional:
            self.weight = nn.Parameter(torch.randn(cout, cin // groups, *[kernel] * rank) / (cin * kernel) ** 0.5)
            self.bias = nn.Parameter(torch.randn(cout) * 0.1) if bias else None
        else:
            self.conv = _CONV[rank](cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias)
        self.norm = make_norm(norm, rank, cout)
        self.act_style, self.act = act, act_module(act)

    def forward(self, x):
        if self.functional:
            x = _CONV_FN[self.rank](x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        else:
            x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return activate(self.act_style, self.act, x)


def make_norm(kind: str | None, rank: int, channels: int) -> nn.Module | None:
    if kind == "bn":
        return _BN[rank](channels)
    if kind == "gn":
        return nn.GroupNorm(1, channels)
    return None


class ResidualBlock(nn.Module):
    def __init__(self, pre: str | None, branch: nn.Module, shortcut: nn.Module | None, join_style: str,
                 post: str | None, keyword: str | None = None):
        super().__init__()
        self.keyword = keyword
        self.pre_style, self.pre = pre, act_module(pre)
        self.branch, self.shortcut = branch, shortcut
        self.join_style = join_style
        self.post_style, self.post = post, act_module(post)

    def forward(self, x):
        identity = x
        out = activate(self.pre_style, self.pre, x)
        if self.shortcut is not None:
            identity = self.shortcut(out)
        out = self.branch(out) if self.keyword is None else self.branch(**{self.keyword: out})
        out = join(self.join_style, out, identity)
        return activate(self.post_style, self.post, out)


class ConcatBlock(nn.Module):
    def __init__(self, branches: list[nn.Module], keep_input: bool):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.keep_input = keep_input

    def forward(self, x):
        parts = [branch(x) for branch in self.branches]
        if self.keep_input:
            parts = [x] + parts
        return torch.cat(parts, dim=1)


class SplitBlock(nn.Module):
    def __init__(self, how: str, arg, use: str, count: int, f: nn.Module):
        super().__init__()
        self.how, self.arg, self.use, self.count, self.f = how, arg, use, count, f

    def forward(self, x):
        if self.how == "chunk":
            parts = x.chunk(self.arg, dim=1)
        elif self.how == "sizes":
            parts = torch.split(x, self.arg, dim=1)
        else:
            parts = x.split(self.arg, 1)
        if self.use == "first":
            return self.f(parts[0])
        if self.use == "add":
            return self.f(parts[0]) + parts[1]
        if self.use == "slice":
            return torch.cat((self.f(parts[0]),) + parts[1:], 1)
        if self.count == 2:
            return torch.cat([self.f(parts[0]), parts[1]], 1)
        return torch.cat([self.f(parts[0]), parts[1], parts[2]], 1)


class PoolF(nn.Module):
    def __init__(self, fn, stride: int):
        super().__init__()
        self.fn, self.stride = fn, stride

    def forward(self, x):
        return self.fn(x, 3, self.stride, 1)


class InvertedBlock(nn.Module):
    def __init__(self, block: nn.Module, residual: bool):
        super().__init__()
        self.block, self.residual = block, residual

    def forward(self, x):
        out = self.block(x)
        return x + out if self.residual else out


class ListNet(nn.Module):
    """Runs its stages in order; returns (output, value after stage `tap`) when tap is set."""

    def __init__(self, stages: list[nn.Module], head: nn.Module | None, tap: int | None):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.tap = tap

    def forward(self, x):
        tapped = None
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.tap:
                tapped = x
        if self.head is not None:
            x = self.head(x)
        if tapped is not None:
            return x, tapped
        return x


def _conv(rank: int, cin: int, spec: Conv, cout: int | None = None, stride: int | None = None) -> tuple[nn.Module, int]:
    """The module of a Conv spec on cin channels (cout/stride overridden by the caller when given)."""
    forced = cout is not None
    cout = cout if forced else spec.cout
    stride = spec.stride if stride is None else stride
    groups = 1
    if spec.groups == "dw" and cin > 1:
        cout = cout if forced else cin
        groups = cin if cout % cin == 0 else 1
    elif spec.groups == "two" and cin % 2 == 0 and cout % 2 == 0:
        groups = 2
    act_is_module = spec.act is None or spec.act in ACT_MODULES
    if spec.form == "seq" and act_is_module:
        layers = [_CONV[rank](cin, cout, spec.kernel, stride, spec.kernel // 2, groups=groups, bias=spec.bias)]
        norm = make_norm(spec.norm, rank, cout)
        layers += [m for m in (norm, act_module(spec.act)) if m is not None]
        return nn.Sequential(*layers), cout
    return ConvUnit(rank, cin, cout, spec.kernel, stride, groups, spec.bias, spec.norm, spec.act,
                    spec.form == "functional"), cout


def _chain(rank: int, cin: int, specs: tuple[Conv, ...], cout: int | None = None, stride: int = 1,
           seq: bool = True) -> tuple[nn.Module, int]:
    """Conv specs in a row (stride on the first, the last one's cout forced when given)."""
    layers, c = [], cin
    for i, spec in enumerate(specs):
        last = i == len(specs) - 1
        layer, c = _conv(rank, c, spec, cout=cout if last else None, stride=stride if i == 0 else 1)
        layers.append(layer)
    if seq:
        flat = [m for layer in layers for m in (layer if isinstance(layer, nn.Sequential) else [layer])]
        return nn.Sequential(*flat), c
    return (layers[0] if len(layers) == 1 else nn.Sequential(*layers)), c


def _stage(rank: int, cin: int, spec) -> tuple[nn.Module, int]:
    """The module of one stage spec on cin channels, and its output channels."""
    if isinstance(spec, Plain):
        return _conv(rank, cin, spec.conv)
    if isinstance(spec, Residual):
        project = spec.project or spec.stride > 1 or spec.cout != cin
        cout = spec.cout if project else cin
        branch, _ = _chain(rank, cin, spec.branch, cout=cout, stride=spec.stride, seq=spec.seq_branch)
        shortcut = None
        if project:
            shortcut = nn.Sequential(_CONV[rank](cin, cout, 1, spec.stride, bias=False), _BN[rank](cout))
        keyword = None
        if spec.keyword_call:
            keyword = "input" if isinstance(branch, nn.Sequential) else "x"
        return ResidualBlock(spec.pre, branch, shortcut, spec.join, spec.post, keyword), cout
    if isinstance(spec, Concat):
        branches, total = [], cin if spec.keep_input else 0
        for specs in spec.branches:
            module, c = _chain(rank, cin, tuple(Conv(**{**s.__dict__, "stride": 1}) for s in specs))
            branches.append(module)
            total += c
        return ConcatBlock(branches, spec.keep_input), total
    if isinstance(spec, Split):
        if cin < 2:
            return nn.Identity(), cin
        probe = torch.zeros(1, cin)
        if spec.how == "chunk":
            arg = spec.n
            sizes = [t.shape[1] for t in probe.chunk(arg, 1)]
        elif spec.how == "sizes":
            arg = [cin // spec.n] * (spec.n - 1)
            arg.append(cin - sum(arg))
            arg = [a for a in arg if a > 0]
            if len(arg) < 2:
                arg = [1, cin - 1]
            sizes = list(arg)
        else:
            arg = max(1, cin // spec.n)
            sizes = [t.shape[1] for t in probe.split(arg, 1)]
        use = spec.use if spec.use != "add" or sizes[0] == sizes[1] else "shuffle"
        use = "first" if use == "shuffle" and len(sizes) > 3 else use
        keep = use != "first"
        conv = Conv(**{**spec.conv.__dict__, "stride": 1})
        f, c = _conv(rank, sizes[0], conv, cout=sizes[0] if keep else None)
        out = c if use == "first" else sizes[0] if use == "add" else c + sum(sizes[1:])
        use = "slice" if spec.use == "slice" and use == "shuffle" else use
        return SplitBlock(spec.how, arg, use, len(sizes), f), out
    if isinstance(spec, Pool):
        if spec.fn == "adaptive":
            return _POOLS["adaptive", rank](1), cin
        fn = "max" if rank == 3 else spec.fn  # torch's avg_pool3d refuses maps smaller than its kernel
        if spec.functional:
            return PoolF(_POOL_FN[fn, rank], spec.stride), cin
        return _POOLS[fn, rank](3, spec.stride, 1), cin
    if isinstance(spec, Act):
        module = act_module(spec.act)
        return (module if module is not None else ConvUnitAct(spec.act)), cin
    if isinstance(spec, Inverted):
        hidden = cin * spec.expand
        layers = []
        if spec.expand > 1:
            layers += [_CONV[rank](cin, hidden, 1, bias=False), _BN[rank](hidden), act_module(spec.act) or nn.ReLU6()]
        layers += [_CONV[rank](hidden, hidden, 3, spec.stride, 1, groups=hidden, bias=False), _BN[rank](hidden),
                   act_module(spec.act) or nn.ReLU6(), _CONV[rank](hidden, spec.cout, 1, bias=False),
                   _BN[rank](spec.cout)]
        residual = spec.stride == 1 and spec.cout == cin
        return InvertedBlock(nn.Sequential(*layers), residual), spec.cout
    if isinstance(spec, Dropout):
        return nn.Dropout(spec.p), cin
    if isinstance(spec, Opaque):
        conv = spec.conv
        if spec.again:  # an nn.Sequential ending in an activation module
            conv = Conv(**{**conv.__dict__, "form": "seq", "act": conv.act if conv.act in ACT_MODULES else "ReLU"})
        inner, c = _conv(rank, cin, conv)
        return OpaqueBlock(inner, spec.again), c
    if isinstance(spec, ModeSwitch):
        f, c = _conv(rank, cin, Conv(**{**spec.conv.__dict__, "act": None}))
        return ModeSwitchBlock(f), c
    raise TypeError(spec)


class OpaqueBlock(nn.Module):
    def __init__(self, inner: nn.Module, again: bool):
        super().__init__()
        self.inner, self.again = inner, again

    def forward(self, x):
        y = self.inner(x)
        if bool(y.isnan().all()):  # depends on the data: torch.fx cannot trace this forward
            return y
        if self.again:
            y = self.inner[len(self.inner) - 1](y)
        return y


class ModeSwitchBlock(nn.Module):
    def __init__(self, f: nn.Module):
        super().__init__()
        self.f = f

    def forward(self, x):
        y = self.f(x)
        if self.training:
            return F.relu(y)
        return torch.tanh(y)


class ConvUnitAct(nn.Module):
    """A stage that is only a call-style activation."""

    def __init__(self, style: str):
        super().__init__()
        self.style = style

    def forward(self, x):
        return activate(self.style, None, x)


class _LeafTracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return isinstance(m, OpaqueBlock) or super().is_leaf_module(m, qualified_name)


def _randomise(model: nn.Module, generator: torch.Generator) -> None:
    """Give norm layers non-trivial statistics and affine parameters (seeded)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.5, generator=generator)
                m.running_var.uniform_(0.5, 2.0, generator=generator)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.weight is not None:
                m.weight.normal_(1, 0.3, generator=generator)
                m.bias.normal_(0, 0.3, generator=generator)


def build_torch(spec: Net) -> tuple[nn.Module, torch.Tensor]:
    """The model of a Net spec (seeded, eval mode) and an input batch of 2 for it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        modules, channels, c = [], [], spec.cin
        for stage in spec.stages:
            if isinstance(stage, Repeat):
                if modules and channels[-1] == (c, c):
                    modules.append(modules[-1])
                continue
            module, cout = _stage(spec.rank, c, stage)
            modules.append(module)
            channels.append((c, cout))
            c = cout
        head = None
        if spec.head:
            head = nn.Sequential(_POOLS["adaptive", spec.rank](1), nn.Flatten(), nn.Linear(c, 5))
        generator = torch.Generator().manual_seed(spec.seed)
        tap = spec.tap if spec.tap is not None and spec.tap < len(modules) else None
        if spec.root == "seq":
            model = nn.Sequential(*modules, *(head or ()))
        else:
            model = ListNet(modules, head, tap)
        _randomise(model, generator)
        if spec.root == "fx":  # a GraphModule; an untraceable block stays a module it calls
            graph = _LeafTracer().trace(model)
            model = torch.fx.GraphModule(model, graph)
        dtype = getattr(torch, spec.dtype)
        x = (torch.randn(2, spec.cin, *SPATIAL[spec.rank], generator=generator) * spec.scale).to(dtype)
        model = model.to(dtype)
        if spec.channels_last and spec.rank == 2:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
    return model.eval(), x


# -- running and comparing torch models ------------------------------------------------------------
def run_torch(model: nn.Module, x: torch.Tensor, training: bool):
    """The model's output on a copy of x (in-place ops must not change x), with a fixed RNG for dropout."""
    model.train(training)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return model(x.clone())


def flat_outputs(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def assert_equal_outputs(a, b, what: str) -> None:
    """Bit-for-bit equal outputs (tuples compared item by item; NaN equals NaN: an overflow that the
    original model has, the rewritten one has at the same place)."""
    a, b = flat_outputs(a), flat_outputs(b)
    assert len(a) == len(b), f"{what}: {len(a)} outputs vs {len(b)}"
    for i, (p, q) in enumerate(zip(a, b)):
        assert p.shape == q.shape and p.dtype == q.dtype, \
            f"{what}: output {i} is {p.dtype}{tuple(p.shape)} vs {q.dtype}{tuple(q.shape)}"
        same = (p == q) | (p.isnan() & q.isnan())
        if not bool(same.all()):
            diff = (p.double() - q.double()).abs().nan_to_num(float("inf")).max().item()
            raise AssertionError(f"{what}: output {i} differs at {int((~same).sum())} places (max |diff| {diff:g})")


# == ONNX ===========================================================================================
def export_onnx(model: nn.Module, x: torch.Tensor, dynamic: bool = False) -> bytes:
    """The model in ONNX (legacy TorchScript exporter, opset 17), as bytes."""
    buffer = io.BytesIO()
    outputs = len(flat_outputs(run_torch(model, x, False)))
    names = [f"y{i}" for i in range(outputs)]
    axes = {"x": {0: "N"}, **{n: {0: "N"} for n in names}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.eval()
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=names, dynamic_axes=axes)
    return buffer.getvalue()


def run_onnx(model, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs in onnxruntime with graph optimizations off (each node as written), on CPU."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # no notes about initializers listed as inputs
    options.inter_op_num_threads = 1
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


# -- ONNX graphs built node by node ------------------------------------------------------------------
ONNX_STEPS = ("conv", "conv", "act", "bn", "residual", "residual", "residual", "concat", "split", "resize", "pad",
              "pad_channels", "transpose_roundtrip", "pool", "global_pool", "identity", "dropout", "mul_const",
              "silu", "clip")
# ops a residual branch may hold after its conv (each keeps the channel count and the map size)
BRANCH_OPS = ("none", "transpose_roundtrip", "split", "mul_const", "silu", "identity", "clip", "bn", "act",
              "residual")
NAMINGS = ("plain", "plain", "empty", "odd", "seinject")


@dataclass(frozen=True)
class OnnxNet:
    """A chain of steps (ONNX_STEPS, each with two small integer arguments) on an N×C×H×W input.

    opset: 13, 17 or 18; naming: node names as built (plain), all empty, odd (slashes, colons, unicode),
    or values and nodes renamed into seinject's own "seinject/..." namespace; output_identity: the last value reaches
    the graph output through an Identity (else the last op writes the output itself); inits_as_inputs:
    initializers also listed as graph inputs (IR < 4 style)."""

    cin: int
    steps: tuple[tuple[str, int, int], ...]
    dynamic: bool = False
    channels_last_out: bool = False
    seed: int = 0
    opset: int = 17
    naming: str = "plain"
    output_identity: bool = True
    inits_as_inputs: bool = False


def onnx_nets() -> st.SearchStrategy[OnnxNet]:
    """A random ONNX graph spec (see OnnxNet)."""
    step = st.tuples(st.sampled_from(ONNX_STEPS), st.integers(1, 8), st.integers(0, 9))
    return st.builds(OnnxNet, cin=st.integers(1, 6), steps=st.lists(step, min_size=1, max_size=7).map(tuple),
                     dynamic=st.booleans(), channels_last_out=st.booleans(), seed=st.integers(0, 2**16),
                     opset=st.sampled_from((13, 17, 17, 18)), naming=st.sampled_from(NAMINGS),
                     output_identity=st.booleans(), inits_as_inputs=st.booleans())


class _OnnxSteps:
    """Emits the nodes of OnnxNet steps with tests.onnx_backend.graphs.Builder, tracking channels."""

    def __init__(self, builder, opset: int):
        self.b, self.opset = builder, opset

    def conv(self, x: str, cin: int, cout: int, k: int = 3, groups: int = 1) -> str:
        return self.b.conv(x, cin, cout, k=k, groups=groups)

    def step(self, h: str, c: int, op: str, a: int, m: int) -> tuple[str, int]:
        b = self.b
        if op == "conv":
            cout = c if m % 4 == 1 else a
            groups = c if m % 4 == 1 and c > 1 else (2 if m % 4 == 2 and c % 2 == 0 and cout % 2 == 0 else 1)
            return self.conv(h, c, cout, k=1 if m % 4 == 3 else 3, groups=groups), cout
        if op == "act":
            acts = ("Relu", "Sigmoid", "LeakyRelu", "HardSwish", "Tanh") if self.opset >= 14 else ("Relu", "Tanh")
            return b.op(acts[m % len(acts)], [h]), c
        if op == "silu":
            return b.op("Mul", [h, b.op("Sigmoid", [h])] if m % 2 else [b.op("Sigmoid", [h]), h]), c
        if op == "clip":
            return b.op("Clip", [h, b.const(0.0), b.const(6.0)]), c
        if op == "bn":
            scale, bias = b.const(b.rng.normal(1, 0.2, c)), b.const(b.rng.normal(0, 0.2, c))
            mean, var = b.const(b.rng.normal(0, 0.5, c)), b.const(b.rng.uniform(0.5, 2, c))
            return b.op("BatchNormalization", [h, scale, bias, mean, var]), c
        if op == "residual":
            y = b.op("Relu", [self.conv(h, c, c)])
            y, _ = self.step(y, c, BRANCH_OPS[m % len(BRANCH_OPS)], a, m // 2)
            if m % 3 == 0:
                y = self.conv(y, c, c)
            short = h if a % 3 else b.op("Identity", [h])
            return b.op("Add", [y, short] if a % 2 else [short, y]), c
        if op == "concat":
            other = self.conv(h, c, a)
            return b.op("Concat", [h, other] if m % 2 else [other, h], axis=1), c + a
        if op == "split" and c >= 2:
            first = min(max(1, a), c - 1)
            parts = [b.name("split"), b.name("split")]
            from onnx import helper

            b.nodes.append(helper.make_node("Split", [h, b.const([first, c - first], dtype=np.int64)], parts,
                                            name=b.name("Split"), axis=1))
            if m % 3 == 0:
                return parts[0], first
            if m % 3 == 1:
                return b.op("Concat", [b.op("Relu", [self.conv(parts[0], first, first)]), parts[1]], axis=1), c
            return b.op("Concat", [parts[1], parts[0]], axis=1), c  # a channel shuffle
        if op == "resize":
            return b.op("Resize", [h, "", b.const([1, 1, 1 + m % 2, 1 + m % 2])], mode="nearest"), c
        if op == "pad":
            return b.op("Pad", [h, b.const([0, 0, m % 3, 1, 0, 0, 1, m % 3], dtype=np.int64)]), c
        if op == "pad_channels":
            return b.op("Pad", [h, b.const([0, 1, 0, 0, 0, m % 3, 0, 0], dtype=np.int64)]), c + 1 + m % 3
        if op == "transpose_roundtrip":
            t = b.op("Transpose", [h], perm=[0, 2, 3, 1])
            t = b.op("Relu", [t]) if m % 2 else t
            return b.op("Transpose", [t], perm=[0, 3, 1, 2]), c
        if op == "pool":
            kind = "MaxPool" if m % 2 else "AveragePool"
            return b.op(kind, [h], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1 + a % 2] * 2), c
        if op == "global_pool":
            return b.op("GlobalAveragePool" if m % 2 else "GlobalMaxPool", [h]), c
        if op in ("identity", "dropout"):
            return b.op(op.capitalize(), [h]), c
        if op == "mul_const":
            return b.op("Mul", [h, b.const(b.rng.normal(1, 0.3, (1, c, 1, 1)))]), c
        return h, c  # none, or a split of a single channel


def build_onnx(spec: OnnxNet):
    """The ModelProto of an OnnxNet spec and an input for it."""
    from onnx import TensorProto, helper

    from tests.onnx_backend.graphs import Builder, tensor

    b = Builder(spec.seed)
    steps = _OnnxSteps(b, spec.opset)
    h, c = "x", spec.cin
    for op, a, m in spec.steps:
        h, c = steps.step(h, c, op, a, m)
    if spec.channels_last_out:
        h = b.op("Transpose", [h], perm=[0, 2, 3, 1])
    if spec.output_identity or h == "x":
        b.op("Identity", [h], name="y")
    else:
        _rename(b, {h: "y"})
    dims = ["N", spec.cin, "H", "W"] if spec.dynamic else [2, spec.cin, 8, 8]
    model = b.model([tensor("x", dims)], [tensor("y", ["d0", "d1", "d2", "d3"], TensorProto.FLOAT)],
                    opset=spec.opset)
    graph = model.graph
    if spec.naming != "plain":
        values = {v for n in graph.node for v in n.output if v != "y"}
        if spec.naming == "seinject":
            _rename_model(graph, {v: f"seinject/{v}" + ("/scale_out" if len(v) % 2 else "") for v in values})
        for i, node in enumerate(graph.node):
            node.name = {"empty": "", "odd": f"é/{i}:/ {node.name}", "seinject": f"seinject/{node.name}/fc{i % 3}"}[
                spec.naming]
    if spec.inits_as_inputs:
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                           for t in graph.initializer)
    x = np.random.default_rng(spec.seed).standard_normal((2, spec.cin, 8, 8)).astype(np.float32)
    return model, x


def _rename(builder, names: dict[str, str]) -> None:
    for node in builder.nodes:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def _rename_model(graph, names: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
