"""Filters narrow the sites: names, channel bounds, stages (the paper's stage study), first/last/every."""

import pytest

import seinject
from tests.models import resnet50

R50 = resnet50()
ALL = [s.name for s in seinject.plan(R50, rule="residual_branch")]


def names(**overrides):
    return [s.name for s in seinject.plan(R50, rule="residual_branch", **overrides)]


def test_resnet50_has_four_stages_of_3_4_6_3_blocks():
    stages = [s.stage for s in seinject.plan(R50, rule="residual_branch")]
    assert stages == [1] * 3 + [2] * 4 + [3] * 6 + [4] * 3


@pytest.mark.parametrize("overrides,expected", [
    ({"include": "layer3"}, [f"layer3.{i}.bn3" for i in range(6)]),
    ({"include": ["layer1", r"layer4\.2"]}, ["layer1.0.bn3", "layer1.1.bn3", "layer1.2.bn3", "layer4.2.bn3"]),
    ({"exclude": r"layer[123]"}, [f"layer4.{i}.bn3" for i in range(3)]),
    ({"stages": [4]}, [f"layer4.{i}.bn3" for i in range(3)]),
    ({"stages": [1, 2], "last": 2}, ["layer2.2.bn3", "layer2.3.bn3"]),
    ({"first": 2}, ["layer1.0.bn3", "layer1.1.bn3"]),
    ({"every": 5}, [ALL[0], ALL[5], ALL[10], ALL[15]]),
    ({"every": 5, "offset": 1}, [ALL[1], ALL[6], ALL[11]]),
    ({"max_channels": 256}, ["layer1.0.bn3", "layer1.1.bn3", "layer1.2.bn3"]),
    ({"min_channels": 2048}, [f"layer4.{i}.bn3" for i in range(3)]),
])
def test_filters_select_the_expected_sites(overrides, expected):
    assert names(**overrides) == expected


def test_min_channels_skips_are_reported_with_the_reason():
    plan = seinject.plan(R50, rule="residual_branch", min_channels=1024)
    assert len(plan) == 9
    assert len(plan.skipped) == 7 and "512 channels < min_channels 1024" in plan.skipped[-1].reason


def test_max_channels_skips_are_reported_with_the_reason():
    plan = seinject.plan(R50, rule="residual_branch", max_channels=512)
    assert [s.channels for s in plan] == [256] * 3 + [512] * 4
    assert [s.name for s in plan.skipped] == ALL[7:]
    assert [s.reason for s in plan.skipped] == (["1024 channels > max_channels 512"] * 6
                                                + ["2048 channels > max_channels 512"] * 3)
    assert "skipped layer4.2.bn3: 2048 channels > max_channels 512" in str(plan)


def test_min_channels_in_se_is_an_alias_of_the_filter(tmp_path):
    rule = tmp_path / "wide.yaml"
    rule.write_text("name: wide\npattern:\n  - {kind: add, residual: true, id: join}\n"
                    "insert: {position: branch_end, node: join}\nse: {ratio: 16, min_channels: 2048}\n")
    loaded = seinject.load_rule(rule)
    assert loaded.filters.min_channels == 2048 and not hasattr(loaded.se, "min_channels")
    assert [s.name for s in seinject.plan(R50, rule=rule)] == [f"layer4.{i}.bn3" for i in range(3)]
    with pytest.raises(seinject.ConfigError, match="unknown SE setting 'min_channels'"):
        loaded.se.with_overrides(min_channels=4)


def test_plan_changes_nothing_and_reads_as_a_table():
    keys = list(R50.state_dict())
    plan = seinject.plan(R50, rule="residual_branch", stages=[4], ratio=16, divisor=8)
    assert list(R50.state_dict()) == keys and not any("se" in k for k in keys)
    text = str(plan)
    assert text.splitlines()[0] == "rule residual_branch: 3 site(s), +1,579,392 params"
    assert "on layer4.2.bn3 → residual add" in text
    data = plan.to_dict()
    assert [s["name"] for s in data["sites"]] == ["layer4.0.bn3", "layer4.1.bn3", "layer4.2.bn3"]
    assert data["sites"][0]["hidden"] == 128 and data["added_params"] == 1_579_392


def test_apply_report_prints_inserted_modules_and_the_parameter_share():

    new = seinject.apply(R50, rule="after_residual", include="layer4", ratio=16)
    report = seinject.report(new)
    assert [block.module for block in report.inserted] == ["layer4.0.se", "layer4.1.se", "layer4.2.se"]
    assert "SE params: 1,579,392 || all params: 27,136,424 || SE%: 5.8202" in str(report)
    assert report.to_dict()["sites"][0]["module"] == "layer4.0.se"


def test_apply_report_holds_its_plan_and_counts_the_inserted_blocks():
    new = seinject.apply(R50, rule="residual_branch", min_channels=2048, ratio=16)
    report = seinject.report(new)
    assert [s.name for s in report.plan] == [f"layer4.{i}.bn3" for i in range(3)]
    assert len(report) == len(report.to_dict()["sites"]) == len(report.plan) == 3
    assert [block.site for block in report] == list(report.plan)
    assert report.model_params == report.plan.model_params + report.added_params
    assert len(report.skipped) == 13 and report.skipped == report.plan.skipped  # the splice skipped none
    assert report.to_dict()["skipped"][0] == {"name": "layer1.0.bn3", "reason": "256 channels < min_channels 2048"}


@pytest.mark.parametrize("key", ["first", "last", "every", "min_channels", "max_channels"])
def test_a_zero_count_or_bound_is_an_error_as_in_rule_files(key):
    """last=0 used to keep every site (kept[-0:] is the whole list)."""
    with pytest.raises(seinject.ConfigError, match=f"'{key}' must be an integer >= 1"):
        seinject.plan(R50, rule="residual_branch", **{key: 0})
