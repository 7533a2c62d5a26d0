"""The MNIST-1D study (examples/mnist1d_study) on a tiny configuration: identity arms start exactly at the
pretrained accuracy, each arm trains what it should, and the outputs are complete or absent."""

import json

import pytest

pytest.importorskip("mnist1d")
pytest.importorskip("matplotlib")
pytest.importorskip("rich")

import torch  # noqa: E402

import seinject  # noqa: E402
from examples.mnist1d_study import data, study  # noqa: E402
from examples.mnist1d_study.model import ResNet1d  # noqa: E402

TINY = study.Config(seeds=2, pretrain_steps=30, pretrain_warmup=5, steps=10, warmup=2, eval_every=5, eval_at=(1,),
                    batch_size=64, timing_repeats=2, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # as the study runs (--threads 1)


@pytest.fixture(scope="module")
def tiny(one_thread):
    train, test = data.load(samples=500)  # 400 train / 100 test, generated offline
    result, excitations = study.run(TINY, train, test)
    return result, excitations, train, test


def test_data_is_the_standard_split_shape():
    train, test = data.load(samples=100)
    assert train.x.shape == (80, 1, 40) and test.x.shape == (20, 1, 40)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert set(train.y.tolist()) <= set(range(10))


def test_identity_arms_start_exactly_at_the_plain_accuracy(tiny):
    result, _, _, _ = tiny
    step0 = {arm: {r["seed"]: r["step0_accuracy"] for r in result.runs if r["arm"] == arm} for arm in study.ARMS}
    assert step0["P"] == {0: result.pretrain["test_accuracy"], 1: result.pretrain["test_accuracy"]}
    assert step0["I"] == step0["P"] and step0["S"] == step0["P"]
    logit_diff = {arm: a["step0_max_abs_logit_diff"] for arm, a in result.arms.items()}
    assert logit_diff["P"] == logit_diff["I"] == logit_diff["S"] == 0.0
    assert logit_diff["R"] > 0  # random blocks change the outputs; its accuracy may or may not match
    assert result.arms["I"]["step0_equals_pretrained"] and result.arms["S"]["step0_equals_pretrained"]
    for r in result.runs:
        assert r["steps"][0] == 0 and r["steps"][-1] == TINY.steps and len(r["curve"]) == len(r["steps"])


def test_each_arm_trains_what_it_should(tiny):
    result, _, _, test = tiny
    base = ResNet1d(TINY.widths, TINY.blocks_per_stage)
    total = sum(p.numel() for p in base.parameters())
    head = sum(p.numel() for p in base.fc.parameters())
    added = seinject.plan(base, rule=TINY.rule, ratio=TINY.ratio).added_params
    arms = result.arms
    assert [arms[a]["added_params"] for a in "PIRS"] == [0, added, added, added]
    assert arms["P"]["trainable_params"] == total
    assert arms["I"]["trainable_params"] == arms["R"]["trainable_params"] == total + added
    assert arms["S"]["trainable_params"] == added + head
    model = study.build_arm("S", base, 0, TINY, test.x[:4])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in seinject.se_parameters(model)} | {"fc.weight", "fc.bias"}
    assert all(block.init_mode == "random" and block.gain == 1.0 for _, block in seinject.se_modules(study.build_arm("R", base, 0, TINY, test.x[:4])))


def test_the_frozen_backbone_of_s_does_not_move(tiny):
    _, _, train, test = tiny
    torch.manual_seed(0)
    base = ResNet1d(TINY.widths, TINY.blocks_per_stage)
    _, model = study.finetune("S", 0, base, TINY, train.subset(128), test, None, None)
    before = base.state_dict()
    for name, tensor in model.state_dict().items():
        if name in before and not name.startswith("fc."):
            assert torch.equal(tensor, before[name]), name  # weights and BatchNorm statistics


def test_excitation_and_fold_numbers(tiny):
    result, _, _, _ = tiny
    e, f = result.excitation, result.fold
    assert e["blocks"] == [f"layer{s}.{b}.se" for s in (1, 2, 3) for b in (0, 1)]
    assert e["seeds"] == [0, 1] and set(e["random_init"]) == set(e["blocks"])
    for row in e["averaged"].values():
        assert 0.0 <= row["specificity"] <= 1.0 and 0.0 <= row["saturation"] <= 1.0
    assert [one["block"] for one in f["single"]] == e["blocks"]
    assert all(one["into"].startswith("previous norm") for one in f["single"])  # residual_branch: after bn2
    assert set(f["seconds"]) == {"plain", "se", "folded", "all_folded"} and min(f["seconds"].values()) > 0
    assert 0.0 <= f["all"]["accuracy_after"] <= 1.0


def test_outputs_are_written_whole(tiny, tmp_path):
    result, excitations, _, _ = tiny
    paths = study.write(result, excitations, tmp_path / "study")
    assert sorted(p.name for p in paths) == sorted(study.OUTPUTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]  # no staging folder left
    numbers = json.loads((tmp_path / "study" / "results.json").read_text())
    assert {"config", "environment", "pretrain", "runs", "arms", "excitation", "fold", "wall_seconds"} <= set(numbers)
    assert set(numbers["arms"]) == set("PIRS") and len(numbers["runs"]) == 4 * TINY.seeds
    for arm in numbers["arms"].values():
        assert {"step0_accuracy", "final_accuracy", "added_params", "trainable_params", "train_seconds"} <= set(arm)
    text = (tmp_path / "study" / "results.md").read_text()
    assert "| arm | step-0 acc %" in text and "## Excitation by depth" in text and "## Folding" in text
    for name in ("curves.png", "excitations.png"):
        assert (tmp_path / "study" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_write_leaves_no_files(tiny, tmp_path, monkeypatch):
    result, excitations, _, _ = tiny

    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(study, "plot_curves", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        study.write(result, excitations, tmp_path / "study")
    assert list(tmp_path.iterdir()) == []
