"""Saving and loading only the SE weights: exact round trips, the stored rule, and typed errors for misfits."""

import json
import os
import textwrap
import warnings

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import seinject
from seinject import CheckpointError
from seinject.rule.dump import dump_rule, rule_from_dict, rule_to_dict, same_rule
from seinject.rule.loader import builtin_rule_names, load_rule, parse_rule
from seinject.torch.checkpoint import CheckpointWarning
from seinject.torch.checkpoint_file import FORMAT_VERSION, read_header
from tests.helpers import apply_quiet, build


def trained(fixture="resnet_tiny", rule="residual_branch", steps=3, also=(), **overrides):
    """The fixture with SE blocks trained a few steps (frozen norm statistics), and its input."""
    model, x = build(fixture)
    model = seinject.apply(model, rule=rule, **overrides)
    seinject.mark_trainable(model, also=also, freeze_norm_stats=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    assert not any(block.is_identity() for _, block in seinject.se_modules(model))
    return model.eval(), x


def outputs(model, x):
    with torch.no_grad():
        return model.eval()(x)


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def rewrite_metadata(path, **changes):
    """Write the checkpoint again with some metadata entries changed (None: removed)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    metadata.update(changes)
    save_file(tensors, str(path), {k: v for k, v in metadata.items() if v is not None})


# --- rules as data ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", builtin_rule_names())
def test_every_builtin_rule_reads_back_the_same_from_its_dump(name):
    rule = load_rule(name)
    assert same_rule(parse_rule(dump_rule(rule)), rule)
    assert same_rule(rule_from_dict(rule_to_dict(rule)), rule)
    assert rule_to_dict(parse_rule(dump_rule(rule))) == rule_to_dict(rule)


def test_a_rule_using_every_field_reads_back_the_same(tmp_path):
    path = tmp_path / "full.yaml"
    path.write_text(textwrap.dedent("""
        name: full
        description: "every field: a 'quoted' text, with: colons"
        pattern:
          - {kind: [conv, linear], id: c, depthwise: false, grouped: false, kernel_size: [3, 1], stride: 2}
          - {kind: norm, optional: true, fn: batch_norm}
          - {kind: act, fn: [hard_swish, relu], min_channels: 8, max_channels: 512}
          - {kind: add, residual: true, id: join}
          - {kind: concat, optional: true, channel_concat: true}
        insert: {position: shortcut, node: join}
        filters: {include: ["layer[34]"], exclude: [fc], min_channels: 16, max_channels: 1024,
                  outside_residual: true, stages: [2, 3], first: 5, last: 4, every: 2, offset: 1}
        se: {ratio: 0.5, divisor: 8, min_hidden: 4, act: hard_swish, gate: hard_sigmoid, init: random}
    """))
    rule = load_rule(str(path))
    assert same_rule(rule_from_dict(rule_to_dict(rule)), rule)
    assert rule_to_dict(rule)["pattern"][2]["fn"] == ["hardswish", "relu"]


# --- round trips -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture,rule,overrides", [
    ("resnet_tiny", "residual_branch", {"ratio": 8, "include": "layer[34]"}),
    ("vgg_tiny", "conv_block", {"gate": "hardsigmoid"}),
    ("mobilenetv2_tiny", "inverted_residual", {}),
    ("densenet_tiny", "after_concat", {"divisor": 8, "act": "silu"}),
])
def test_load_into_a_fresh_plain_model_gives_exactly_the_saved_outputs(tmp_path, fixture, rule, overrides):
    model, x = trained(fixture, rule, **overrides)
    path = seinject.save(model, tmp_path / "se.safetensors")
    fresh = build(fixture)[0]
    loaded = seinject.load(fresh, path)
    assert torch.equal(outputs(loaded, x), outputs(model, x))
    assert seinject.se_modules(fresh) == []  # a copy, like apply
    assert [n for n, _ in seinject.se_modules(loaded)] == [n for n, _ in seinject.se_modules(model)]
    assert seinject.report(loaded).overrides == seinject.report(model).overrides  # as checked: tuples


def test_the_users_example_round_trips_with_a_retrained_head(tmp_path):
    model, x = trained(rule="residual_branch", ratio=8, include="layer[34]", also=[r"^fc\."])
    path = seinject.save(model, tmp_path / "se.safetensors", also=[r"^fc\."])
    loaded = seinject.load(build("resnet_tiny")[0], path)
    assert torch.equal(loaded.fc.weight, model.fc.weight)
    assert torch.equal(outputs(loaded, x), outputs(model, x))
    without_head = seinject.load(build("resnet_tiny")[0], seinject.save(model, tmp_path / "se_only.safetensors"))
    assert not torch.equal(outputs(without_head, x), outputs(model, x))


def test_the_file_holds_only_se_tensors_and_says_how_to_rebuild_them(tmp_path):
    model, _ = trained(ratio=8, include="layer[34]")
    path = seinject.save(model, tmp_path / "se.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        names = set(handle.keys())
    assert names == set(seinject.state_dict(model)) == {n for n, _ in seinject.se_parameters(model)}
    assert metadata["format"] == "seinject.se" and metadata["format_version"] == str(FORMAT_VERSION)
    assert metadata["seinject_version"] == seinject.__version__ and metadata["model"] == "ResNet"
    assert same_rule(parse_rule(metadata["rule"]), load_rule("residual_branch"))
    assert json.loads(metadata["overrides"]) == {"ratio": 8, "include": ["layer[34]"]}  # as checked
    sites = json.loads(metadata["sites"])
    assert [(s["module"], s["name"], s["channels"], s["hidden"]) for s in sites] == [
        ("layer3.0.se", "layer3.0.bn2", 32, 4), ("layer4.0.se", "layer4.0.bn2", 64, 8)]
    assert json.loads(metadata["also"]) == []


def test_a_user_rule_file_need_not_exist_at_load_time(tmp_path):
    rule_file = tmp_path / "stage34.yaml"
    rule_file.write_text("name: stage34\npattern: [{kind: add, residual: true}, {kind: act, optional: true}]\n"
                         "filters: {stages: [3, 4]}\nse: {ratio: 4, gate: hardsigmoid}\n")
    model, x = trained(rule=str(rule_file))
    path = seinject.save(model, tmp_path / "se.safetensors")
    rule_file.unlink()
    loaded = seinject.load(build("resnet_tiny")[0], path)
    assert torch.equal(outputs(loaded, x), outputs(model, x))
    assert seinject.report(loaded).rule == "stage34"


def test_load_inplace_rewrites_the_given_model_and_it_can_be_saved_again(tmp_path):
    model, x = trained()
    path = seinject.save(model, tmp_path / "se.safetensors")
    fresh = build("resnet_tiny")[0]
    assert seinject.load(fresh, path, inplace=True) is fresh
    assert torch.equal(outputs(fresh, x), outputs(model, x))
    again = seinject.save(fresh, tmp_path / "again.safetensors")
    assert seinject.state_dict(seinject.load(build("resnet_tiny")[0], again)).keys() == seinject.state_dict(model).keys()


def test_load_into_a_model_that_already_carries_the_same_blocks_loads_the_weights(tmp_path):
    model, x = trained(ratio=8)
    path = seinject.save(model, tmp_path / "se.safetensors")
    carrier = seinject.apply(build("resnet_tiny")[0], rule="residual_branch", ratio=8)
    loaded = seinject.load(carrier, path)
    assert torch.equal(outputs(loaded, x), outputs(model, x))
    assert all(block.is_identity() for _, block in seinject.se_modules(carrier))  # not touched: a copy


# --- mismatches --------------------------------------------------------------------------------------

def test_another_architecture_is_a_checkpoint_error_naming_the_first_block(tmp_path):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    with pytest.raises(CheckpointError, match=r"SE block 'layer1.0.se' .*the model has no SE block") as info:
        seinject.load(build("vgg_tiny")[0], path)
    assert str(path) in str(info.value) and "ResNet" in str(info.value) and "VGG" in str(info.value)
    assert len(info.value.mismatches) == 4


def test_a_missing_block_names_the_block(tmp_path):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    fewer = seinject.apply(build("resnet_tiny")[0], rule="residual_branch", exclude="layer2")
    with pytest.raises(CheckpointError, match=r"SE block 'layer2.0.se' \(site 'layer2.0.bn2', 16 channels\)"):
        seinject.load(fewer, path)


def test_an_extra_block_in_the_model_names_the_block(tmp_path):
    path = seinject.save(trained(include="layer[34]")[0], tmp_path / "se.safetensors")
    more = seinject.apply(build("resnet_tiny")[0], rule="residual_branch")
    with pytest.raises(CheckpointError, match=r"SE block 'layer1.0.se' of the model is not in the checkpoint"):
        seinject.load(more, path)


def test_other_shapes_name_the_tensor_and_both_shapes(tmp_path):
    path = seinject.save(trained(ratio=8)[0], tmp_path / "se.safetensors")
    other = seinject.apply(build("resnet_tiny")[0], rule="residual_branch", ratio=4)
    with pytest.raises(CheckpointError, match=r"tensor 'layer1.0.se.fc1.weight': the checkpoint has shape "
                                              r"\[1, 8\], the model \[2, 8\]"):
        seinject.load(other, path)


def test_the_same_shapes_with_another_gate_are_a_mismatch(tmp_path):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    other = seinject.apply(build("resnet_tiny")[0], rule="residual_branch", gate="hardsigmoid")
    with pytest.raises(CheckpointError, match=r"'layer1.0.se'.*: the model's block has '[^']*gate=hardsigmoid[^']*' "
                                              r"where the checkpoint's rule makes '[^']*gate=sigmoid[^']*'"):
        seinject.load(other, path)


def test_a_tensor_the_model_has_no_place_for_is_a_mismatch(tmp_path):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {n: handle.get_tensor(n) for n in handle.keys()}
    tensors["layer1.0.se.fc3.weight"] = torch.zeros(2, 2)
    save_file(tensors, str(path), metadata)
    with pytest.raises(CheckpointError, match=r"the checkpoint's tensor 'layer1.0.se.fc3.weight' \[2, 2\] has no place"):
        seinject.load(build("resnet_tiny")[0], path)


def test_a_failed_inplace_load_leaves_the_model_as_it_was(tmp_path):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    model, x = build("preact_resnet_tiny")
    before = outputs(model, x)
    with pytest.raises(CheckpointError):
        seinject.load(model, path, inplace=True)
    assert seinject.se_modules(model) == [] and seinject.report(model) is None
    assert torch.equal(outputs(model, x), before)


def test_strict_false_loads_what_fits_and_warns_with_the_rest(tmp_path):
    model, x = trained()
    path = seinject.save(model, tmp_path / "se.safetensors")
    fewer = seinject.apply(build("resnet_tiny")[0], rule="residual_branch", exclude="layer2")
    with pytest.warns(CheckpointWarning) as caught:
        loaded = seinject.load(fewer, path, strict=False)
    assert len(caught) == 1 and len(caught[0].message.mismatches) == 1
    assert "'layer2.0.se'" in caught[0].message.mismatches[0]
    for name, block in seinject.se_modules(loaded):
        assert torch.equal(block.fc2.weight, model.get_submodule(name).fc2.weight)


def test_strict_false_leaves_misfitting_blocks_at_identity(tmp_path):
    path = seinject.save(trained(ratio=8)[0], tmp_path / "se.safetensors")
    other = seinject.apply(build("resnet_tiny")[0], rule="residual_branch", ratio=4)
    with pytest.warns(CheckpointWarning, match="4 mismatch"):
        loaded = seinject.load(other, path, strict=False)
    assert all(block.is_identity() for _, block in seinject.se_modules(loaded))


# --- files that are not checkpoints ----------------------------------------------------------------

def test_a_safetensors_file_from_elsewhere_is_not_a_seinject_checkpoint(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(path), {"format": "pt"})
    with pytest.raises(CheckpointError, match=r"weights.safetensors: not a seinject checkpoint"):
        seinject.load(build("resnet_tiny")[0], path)


def test_a_file_that_is_not_safetensors_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "se.safetensors"
    path.write_bytes(b"PK\x03\x04 not a safetensors file at all")
    with pytest.raises(CheckpointError, match=r"se.safetensors: not a safetensors file"):
        seinject.load(build("resnet_tiny")[0], path)
    with pytest.raises(CheckpointError, match="no such file"):
        seinject.load(build("resnet_tiny")[0], tmp_path / "missing.safetensors")


def test_a_newer_format_version_asks_for_a_newer_seinject(tmp_path):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    rewrite_metadata(path, format_version=str(FORMAT_VERSION + 1), seinject_version="9.0")
    with pytest.raises(CheckpointError, match=rf"seinject 9.0 in checkpoint format {FORMAT_VERSION + 1}.*upgrade"):
        seinject.load(build("resnet_tiny")[0], path)


@pytest.mark.parametrize("key,value,message", [
    ("rule", "name: x\npattern: [{kind: addd}]\n", r"its stored rule does not load: .*metadata 'rule'.*addd"),
    ("overrides", '{"ratoi": 8}', r"stored rule does not load: .*'ratoi'.*did you mean 'ratio'"),
    ("sites", "[1, 2", r"metadata 'sites' is not valid JSON"),
    ("sites", None, r"metadata has no 'sites'"),
])
def test_bad_metadata_is_a_checkpoint_error_naming_the_entry(tmp_path, key, value, message):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    rewrite_metadata(path, **{key: value})
    with pytest.raises(CheckpointError, match=message):
        read_header(path)


# --- saving ----------------------------------------------------------------------------------------

def test_a_failed_save_leaves_nothing_behind_and_an_old_file_as_it_was(tmp_path, monkeypatch):
    model = trained()[0]
    path = seinject.save(model, tmp_path / "se.safetensors")
    old = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(CheckpointError, match=r"se.safetensors: cannot write the checkpoint: No space left"):
        seinject.save(model, path)
    with pytest.raises(CheckpointError):
        seinject.save(model, tmp_path / "new.safetensors")
    assert files(tmp_path) == ["se.safetensors"] and path.read_bytes() == old


def test_saving_into_a_missing_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot write"):
        seinject.save(trained()[0], tmp_path / "nowhere" / "se.safetensors")
    assert files(tmp_path) == []


def test_a_model_without_seinject_blocks_has_nothing_to_save(tmp_path):
    with pytest.raises(CheckpointError, match="ResNet has no SE block inserted by seinject"):
        seinject.save(build("resnet_tiny")[0], tmp_path / "se.safetensors")
    assert files(tmp_path) == []


def test_blocks_from_two_applies_are_refused(tmp_path):
    model = seinject.apply(build("resnet_tiny")[0], rule="residual_branch")
    model = apply_quiet(model, "identity_branch")
    with pytest.raises(CheckpointError, match="not those its last apply inserted"):
        seinject.save(model, tmp_path / "se.safetensors")
    assert files(tmp_path) == []


def test_an_override_is_stored_as_checked_so_a_range_round_trips(tmp_path):
    model = seinject.apply(build("resnet_tiny")[0], rule="residual_branch", stages=range(2, 5))
    assert seinject.report(model).overrides == {"stages": (2, 3, 4)}
    path = seinject.save(model, tmp_path / "se.safetensors")
    assert json.loads(safe_open(str(path), "pt").metadata()["overrides"]) == {"stages": [2, 3, 4]}
    loaded = seinject.load(build("resnet_tiny")[0], path)
    assert [b.module for b in seinject.report(loaded).inserted] == [b.module for b in seinject.report(model).inserted]


def test_state_dict_also_names_extra_tensors_and_refuses_a_pattern_that_matches_nothing():
    model = seinject.apply(build("resnet_tiny")[0], rule="residual_branch")
    keys = set(seinject.state_dict(model, also=[r"^bn1\."]))
    assert keys - set(seinject.state_dict(model)) == {
        "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"}
    with pytest.raises(seinject.ConfigError, match="'head' matches no parameter or buffer"):
        seinject.state_dict(model, also=["head"])


def test_load_warns_nothing_on_an_exact_fit(tmp_path):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seinject.load(build("resnet_tiny")[0], path)


def test_tied_weights_named_by_also_are_stored_under_both_names(tmp_path):
    model = seinject.apply(build("resnet_tiny")[0], rule="residual_branch")
    model.tied = torch.nn.Linear(model.fc.in_features, model.fc.out_features)
    model.tied.weight = model.fc.weight
    path = seinject.save(model, tmp_path / "se.safetensors", also=[r"^fc\.weight$", r"^tied\.weight$"])
    with safe_open(str(path), framework="pt") as handle:
        assert torch.equal(handle.get_tensor("fc.weight"), handle.get_tensor("tied.weight"))


def test_something_that_is_not_a_module_is_a_model_error(tmp_path):
    path = seinject.save(trained()[0], tmp_path / "se.safetensors")
    with pytest.raises(seinject.ModelError, match="got str"):
        seinject.load("resnet.onnx", path)
    with pytest.raises(seinject.ModelError, match="got str"):
        seinject.save("resnet.onnx", tmp_path / "other.safetensors")


def test_torch_compile_wrappers_save_and_load_the_model_they_wrap(tmp_path):
    model, x = trained()
    path = seinject.save(torch.compile(model), tmp_path / "se.safetensors")
    assert set(seinject.state_dict(torch.compile(model))) == set(seinject.state_dict(model))
    wrapper = torch.compile(build("resnet_tiny")[0])
    assert seinject.load(wrapper, path, inplace=True) is wrapper
    assert torch.equal(outputs(wrapper._orig_mod, x), outputs(model, x))


def test_a_checkpoint_from_other_sites_is_refused_even_with_the_same_names(tmp_path):
    """residual_branch and after_residual both name their blocks layer1.0.se, at other sites."""
    base, _ = build("resnet_tiny")
    saved = seinject.apply(base, rule="residual_branch")
    seinject.save(saved, tmp_path / "rb.safetensors")
    other = seinject.apply(base, rule="after_residual")
    with pytest.raises(CheckpointError, match="sits"):
        seinject.load(other, tmp_path / "rb.safetensors")
