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
    assert [name for name, _ in report.inserted] == ["layer4.0.se", "layer4.1.se", "layer4.2.se"]
    assert "SE params: 1,579,392 || all params: 27,136,424 || SE%: 5.8202" in str(report)
    assert report.to_dict()["sites"][0]["module"] == "layer4.0.se"
