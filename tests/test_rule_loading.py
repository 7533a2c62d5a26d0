"""Loading rules: built-in names, paths, and errors that cite file, line and the closest valid name."""

import textwrap

import pytest

import seinject
from seinject import RuleError, RuleNotFoundError
from seinject.rule.loader import builtin_rule_names, load_rule

BUILTIN = ["after_concat", "after_residual", "before_residual", "conv_block",
           "identity_branch", "inverted_residual", "residual_branch"]


def write(tmp_path, text, name="rule.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_every_builtin_rule_loads_and_names_itself():
    assert builtin_rule_names() == BUILTIN
    for name in BUILTIN:
        rule = load_rule(name)
        assert rule.name == name and rule.description


def test_a_path_loads_a_user_rule(tmp_path):
    path = write(tmp_path, """
        name: stage34
        description: after the last two stages' joins
        pattern:
          - {kind: add, residual: true}
          - {kind: act, optional: true}
        filters: {stages: [3, 4]}
        se: {ratio: 8, gate: hard_sigmoid}
    """)
    rule = load_rule(str(path))
    assert (rule.name, rule.filters.stages, rule.se.ratio, rule.se.gate) == ("stage34", (3, 4), 8, "hardsigmoid")
    assert rule.source == str(path)


def test_unknown_rule_name_suggests_the_closest():
    with pytest.raises(RuleNotFoundError, match="did you mean 'after_residual'") as info:
        load_rule("after_residul")
    assert "built-in rules:" in str(info.value)


def test_missing_rule_file():
    with pytest.raises(RuleNotFoundError, match="rule file not found: nowhere/x.yaml"):
        load_rule("nowhere/x.yaml")


@pytest.mark.parametrize("text,line,needle", [
    ("name: x\npattern: [{kind: add}]\nfilterz: {}\n", 3, "unknown key 'filterz' in rule (did you mean 'filters'?)"),
    ("name: x\npattern:\n  - kind: add\n    residul: true\n", 4, "unknown key 'residul' in pattern element (did you mean 'residual'?)"),
    ("name: x\npattern:\n  - kind: covn\n", 3, "unknown kind 'covn' (did you mean 'conv'?)"),
    ("name: x\npattern: [{kind: add}]\nse:\n  ratoi: 8\n", 4, "unknown key 'ratoi' in se (did you mean 'ratio'?)"),
    ("name: x\npattern: [{kind: add}]\nse:\n  ratio: -1\n", 4, "must be > 0"),
    ("name: x\npattern: [{kind: add}]\nse:\n  gate: tanh\n", 4, "'gate' must be one of sigmoid, hardsigmoid"),
    ("name: x\npattern: [{kind: add}]\nse:\n  act: hard_swsh\n", 4, "got 'hard_swsh' (did you mean 'hardswish'?)"),
    ("name: x\npattern:\n  - kind: act\n    fn: rleu\n", 4, "unknown fn 'rleu' for kind act (did you mean 'relu'?)"),
    ("name: x\npattern: [{kind: pool, fn: [max_pool, avg_pol]}]\n", 2, "unknown fn 'avg_pol' for kind pool (did you mean 'avg_pool'?)"),
    ("name: x\npattern: [{kind: act, fn: max_pool}]\n", 2, "'max_pool' is an fn of kind pool"),
    ("name: x\npattern:\n  - {kind: add}\n  - kind: conv\n    fn: relu\n", 5, "'fn' does not apply to kind conv"),
    ("name: x\npattern: [{kind: norm, fn: 3}]\n", 2, "'fn' must be a string or a list of strings"),
    ("name: x\npattern:\n  - {kind: add, optional: yes please}\n", 3, "'optional' must be true or false"),
    ("name: x\npattern: [{kind: conv, kernel_size: three}]\n", 2, "'kernel_size' must be an integer"),
    ("name: x\npattern: [{kind: add}]\nfilters:\n  include: ['layer[']\n", 4, "not a valid regular expression"),
    ("name: x\npattern: [{kind: add}]\ninsert: {position: branch_end}\n", 3, "needs a pattern element with kind add and residual: true"),
    ("name: x\npattern: [{kind: add, id: j}]\ninsert: {node: k}\n", 3, "insert node 'k' is not the id of a pattern element"),
    ("name: x\npattern: [{kind: add}]\ninsert: {position: afterr}\n", 3, "did you mean 'after'"),
    ("name: x\npattern: [{kind: add}]\nfilters: {last: 0}\n", 3, "'last' must be an integer >= 1"),
    ("name: x\npattern: []\n", 2, "'pattern' must be a non-empty list"),
    ("pattern: [{kind: add}]\n", 1, "missing required key 'name'"),
    ("name: x\nname: y\npattern: [{kind: add}]\n", 2, "duplicate key 'name'"),
    ("name: x\npattern: [{kind: add}\n", 3, "invalid YAML"),
    ("- just\n- a list\n", 1, "must be a mapping"),
])
def test_bad_rules_cite_file_and_line(tmp_path, text, line, needle):
    path = write(tmp_path, text)
    with pytest.raises(RuleError) as info:
        load_rule(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message


def test_fn_aliases_load_as_the_canonical_name(tmp_path):
    path = write(tmp_path, """
        name: aliases
        pattern:
          - {kind: [norm, pool], fn: [batch_norm2d, sync_batch_norm, max_pool2d, max_pool]}
          - {kind: act, fn: [hard_swish, swish, relu]}
        se: {act: hard_swish, gate: hard_sigmoid}
    """)
    rule = load_rule(str(path))
    assert [spec.fn for spec in rule.pattern] == [("batch_norm", "max_pool"), ("hardswish", "silu", "relu")]
    assert (rule.se.act, rule.se.gate) == ("hardswish", "hardsigmoid")


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\npattern: [{kind: add}]\n")
    with pytest.raises(RuleError, match="invalid YAML"):
        load_rule(str(path))


def test_apply_accepts_a_rule_path_and_overrides(tmp_path):
    import torch.nn as nn

    path = write(tmp_path, "name: relus\npattern: [{kind: act, fn: relu}]\nse: {ratio: 2}\n")
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU6())
    plan = seinject.plan(net, rule=str(path))
    assert [(s.name, s.hidden) for s in plan] == [("1", 4)]
    assert [s.hidden for s in seinject.plan(net, rule=str(path), ratio=8)] == [1]


def test_unknown_override_is_an_error_with_a_suggestion():
    import torch.nn as nn

    with pytest.raises(seinject.ConfigError, match="did you mean 'include'"):
        seinject.plan(nn.Sequential(nn.Conv2d(3, 8, 3)), rule="conv_block", inclde="x")
