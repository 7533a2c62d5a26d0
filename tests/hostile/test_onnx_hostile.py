"""Hostile ONNX inputs: names that collide with seinject's, external data references in every place a
tensor can hide, malformed external data values, oversized metadata, and input shapes or tolerances
that would allocate too much or compare nothing. Every model is generated here from residual_net()."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import seinject.onnx as so
from seinject.errors import ConfigError, ModelError, UnsafeModelError
from seinject.onnx.verification import compare
from tests.onnx_backend.graphs import residual_net

OUTSIDE = "outside the model's folder; refused"


def tensor(name: str, values=(1.0, 2.0), dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def external(t: onnx.TensorProto, location: str, **extra: str) -> onnx.TensorProto:
    """Mark a tensor as keeping its data in `location` (its inline data dropped)."""
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.ClearField("int64_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for key, value in (("location", location), *extra.items()):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def sparse(values: onnx.TensorProto, indices: onnx.TensorProto) -> onnx.SparseTensorProto:
    return helper.make_sparse_tensor(values, indices, [4])


def save(folder: Path, model: onnx.ModelProto, name: str = "in.onnx") -> Path:
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def defined_names(model: onnx.ModelProto) -> Counter:
    """How often each value name is defined in the main graph (graph inputs, initializers, node outputs)."""
    inits = {t.name for t in model.graph.initializer}
    names = Counter(inits)
    names.update(v.name for v in model.graph.input if v.name not in inits)
    names.update(o for n in model.graph.node for o in n.output if o)
    return names


# --- where an external reference can hide ---------------------------------------------------------

def hide(where: str, location: str) -> onnx.ModelProto:
    """residual_net with one tensor in `where` referring to external data at `location`."""
    model = residual_net()
    g = model.graph
    bad = external(tensor("hidden"), location)
    if where == "sparse_values":
        g.sparse_initializer.append(sparse(bad, tensor("idx", [0, 2], np.int64)))
    elif where == "sparse_indices":
        g.sparse_initializer.append(sparse(tensor("sv"), external(tensor("hidden", [0, 2], np.int64), location)))
    elif where == "constant_value":
        g.node.insert(0, helper.make_node("Constant", [], ["k"], value=bad))
    elif where == "constant_sparse_value":
        g.node.insert(0, helper.make_node("Constant", [], ["k"], sparse_value=sparse(bad, tensor("i", [0, 1], np.int64))))
    elif where == "tensors_attribute":
        g.node[0].attribute.append(helper.make_attribute("extra", [tensor("ok"), bad]))
    elif where in ("if_initializer", "loop_constant"):
        body = helper.make_graph([helper.make_node("Constant", [], ["hidden"], value=bad)] if where == "loop_constant"
                                 else [], "body", [], [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [2])],
                                 initializer=[] if where == "loop_constant" else [bad])
        if where == "if_initializer":
            g.node.append(helper.make_node("If", ["cond"], ["iff"], then_branch=body, else_branch=body))
        else:
            g.node.append(helper.make_node("Loop", ["", "cond"], [], body=body))
    elif where == "nested_subgraph":
        inner = helper.make_graph([], "inner", [], [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [2])],
                                  initializer=[bad])
        outer = helper.make_graph([helper.make_node("If", ["cond"], ["c2"], then_branch=inner, else_branch=inner)],
                                  "outer", [], [helper.make_tensor_value_info("c2", TensorProto.FLOAT, [2])])
        g.node.append(helper.make_node("If", ["cond"], ["iff"], then_branch=outer, else_branch=outer))
    elif where == "function":
        fn = helper.make_function("local", "Fn", [], ["k"], [helper.make_node("Constant", [], ["k"], value=bad)],
                                  [helper.make_opsetid("", 17)])
        model.functions.append(fn)
    else:
        raise AssertionError(where)
    return model


WHERES = ["sparse_values", "sparse_indices", "constant_value", "constant_sparse_value", "tensors_attribute",
          "if_initializer", "loop_constant", "nested_subgraph", "function"]


@pytest.mark.parametrize("where", WHERES)
@pytest.mark.parametrize("location", ["../secret.bin", "absolute", "link.bin"])
def test_external_data_outside_the_folder_is_refused_wherever_it_hides(folder, cli, where, location):
    (folder.path / "secret.bin").write_bytes(b"\0" * 64)
    models = folder.path / "models"
    models.mkdir()
    if location == "absolute":
        location = str(folder.path / "secret.bin")
    elif location == "link.bin":
        os.symlink(folder.path / "secret.bin", models / "link.bin")
    src = save(models, hide(where, location))
    folder.snapshot()
    code, err = cli("onnx", src, models / "out.onnx")
    assert code == 2 and "tensor 'hidden'" in err and OUTSIDE in err, err
    folder.assert_untouched()


def test_in_memory_model_with_external_sparse_data_is_refused():
    with pytest.raises(ModelError, match=r"tensor 'hidden' \(sparse initializer values\) keeps its data in an external"):
        so.apply(hide("sparse_values", "w.bin"))


@pytest.mark.parametrize("case, message", [
    ({"offset": "abc"}, "external data offset 'abc'; expected a whole number of bytes"),
    ({"offset": "-4"}, "external data offset '-4'"),
    ({"length": "1e3"}, "external data length '1e3'"),
    ({"length": " 8"}, "external data length ' 8'"),
    ({"offset": "0x10"}, "external data offset '0x10'"),
    ({"offset": "\u0661"}, "external data offset"),                      # an Arabic-Indic digit: isdigit() is True
    ({"length": "9" * 40}, "external data length '99999"),
    ({"offset": "4", "length": "64"}, "runs past the end of 'w.bin' (offset 4, length 64, file size 64)"),
    ({"offset": "65"}, "runs past the end of 'w.bin'"),
    ({"location": "pipe.bin"}, "external data 'pipe.bin' of tensor 'hidden' (initializer) is a FIFO"),
    ({"location": "."}, OUTSIDE),
    ({"location": ""}, OUTSIDE),
    ({"location": "sub/../w.bin"}, OUTSIDE),
    ({"location": "w.bin\0"}, OUTSIDE),
    ({"location": "sub"}, "is a folder, not a regular file"),
    ({"location": "missing.bin"}, "external data file 'missing.bin' of tensor 'hidden' (initializer) not found"),
    ({"twice": "location"}, "gives external data key 'location' twice; refused"),
])
def test_malformed_external_data_values_are_input_errors(folder, cli, case, message):
    (folder.path / "w.bin").write_bytes(b"\1" * 64)
    (folder.path / "sub").mkdir()
    os.mkfifo(folder.path / "pipe.bin")
    model = residual_net()
    extra = {k: v for k, v in case.items() if k in ("offset", "length")}
    bad = external(tensor("hidden"), case.get("location", "w.bin"), **extra)
    if "twice" in case:
        entry = bad.external_data.add()
        entry.key, entry.value = "location", "../secret.bin"
    model.graph.initializer.append(bad)
    src = save(folder.path, model)
    folder.snapshot()
    start = time.perf_counter()
    code, err = cli("onnx", src, folder.path / "out.onnx")
    assert code == 2 and message in err, err
    assert time.perf_counter() - start < 30  # a FIFO is never opened
    folder.assert_untouched()


def test_python_api_raises_unsafe_model_error_for_a_bad_offset(folder):
    (folder.path / "w.bin").write_bytes(b"\1" * 64)
    model = residual_net()
    model.graph.initializer.append(external(tensor("hidden"), "w.bin", offset="abc"))
    src = save(folder.path, model)
    folder.snapshot()
    with pytest.raises(UnsafeModelError, match="offset 'abc'"):
        so.plan(src)
    folder.assert_untouched()


# --- names that collide with seinject's ------------------------------------------------------------

def collide(case: str) -> onnx.ModelProto:
    """residual_net holding a name that the first inserted block ("seinject/b0.act") would use."""
    model = residual_net()
    g = model.graph
    if case == "initializer":
        g.initializer.append(tensor("seinject/b0.act/fc1.weight"))
    elif case == "node_output":
        g.node.insert(0, helper.make_node("Identity", ["x"], ["seinject/b0.act/squeeze_out"], name="ident"))
    elif case == "constant_named_like_a_block_node":
        g.node.insert(0, helper.make_node("Constant", [], ["seinject/b0.act/fc2.bias"], name="seinject/b0.act/fc2",
                                          value=tensor("v")))
    elif case == "graph_input":
        g.input.append(helper.make_tensor_value_info("seinject/b0.act/gain", TensorProto.FLOAT, [1]))
    elif case == "value_info":
        g.value_info.append(helper.make_tensor_value_info("seinject/b0.act/fc2_out", TensorProto.FLOAT, None))
    elif case == "sparse_initializer":
        g.sparse_initializer.append(sparse(tensor("seinject/b0.act/fc1.bias"), tensor("i", [0, 1], np.int64)))
    elif case == "subgraph_value":
        branch = helper.make_graph([helper.make_node("Constant", [], ["seinject/b0.act/gate_out"], value=tensor("t"))],
                                   "branch", [], [helper.make_tensor_value_info("seinject/b0.act/gate_out",
                                                                                TensorProto.FLOAT, [2])])
        g.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
        g.node.append(helper.make_node("If", ["cond"], ["iff"], then_branch=branch, else_branch=branch))
    elif case == "every_role":
        for role in ("squeeze_out", "fc1_out", "act_out", "fc2_out", "gate_out", "gain_out"):
            g.value_info.append(helper.make_tensor_value_info(f"seinject/b0.act/{role}", TensorProto.FLOAT, None))
        g.initializer.append(tensor("seinject/b0.act_1/gain"))
    else:
        raise AssertionError(case)
    return model


COLLISIONS = ["initializer", "node_output", "constant_named_like_a_block_node", "graph_input", "value_info",
              "sparse_initializer", "subgraph_value", "every_role"]


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("case", COLLISIONS)
def test_inserted_names_are_unique_whatever_the_input_holds(folder, cli, case, verify):
    src = save(folder.path, collide(case))
    folder.snapshot()
    code, err = cli("onnx", src, folder.path / "out.onnx", "--json", *([] if verify else ["--no-verify"]))
    assert code == 0, err
    out = onnx.load(folder.path / "out.onnx")
    onnx.checker.check_model(out, full_check=True)
    counts = defined_names(out)
    assert not [n for n, c in counts.items() if c > 1]
    blocks = {p.value for n in out.graph.node for p in n.metadata_props if p.key == "seinject.block"}
    assert "seinject/b0.act" not in blocks and len(blocks) == 2
    node_names = [n.name for n in out.graph.node if n.name.startswith("seinject/")]
    assert len(node_names) == len(set(node_names))
    folder.assert_untouched(created=("out.onnx",))


def test_no_verify_never_writes_an_invalid_file(folder, cli, monkeypatch):
    """A (simulated) bug that gives an inserted initializer an existing name: with --no-verify the
    structural onnx.checker pass still refuses it (exit 1) and nothing is written."""
    import seinject.onnx.splice as splice

    real = splice.build_gate

    def clashing(*args, **kwargs):
        block = real(*args, **kwargs)
        block.initializers[0].name = "stem.weight"
        return block

    monkeypatch.setattr(splice, "build_gate", clashing)
    monkeypatch.setattr(splice, "_block_names", lambda block, keep: {block.name})  # defeat the uniqueness check
    src = save(folder.path, residual_net())
    folder.snapshot()
    code, err = cli("onnx", src, folder.path / "out.onnx", "--no-verify")
    assert code == 1 and "onnx.checker rejected the rewritten model" in err and "not unique" in err
    folder.assert_untouched()


# --- metadata ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value", [
    ("pkg.torch.onnx.name_scopes", "[" * (1 << 20)),                       # 1 MiB, over the cap
    ("pkg.torch.onnx.name_scopes", "['" + "a" * 70_000 + "']"),            # a plain list over the cap
    ("pkg.torch.onnx.name_scopes", "[" * 3000 + "]" * 3000),               # deeply nested, under the cap
    ("pkg.torch.onnx.name_scopes", "-" * 4000 + "1"),                      # unary minus chain
    ("pkg.torch.onnx.name_scopes", "{'a': " * 500),                        # malformed
    ("pkg.torch.onnx.name_scopes", "1" * 5000),                            # an int over Python's digit limit
    ("namespace", ": Net/" * 200_000),                                     # 1.2 MB namespace
])
def test_oversized_or_malformed_scope_metadata_is_ignored(folder, cli, key, value):
    model = residual_net()
    for node in model.graph.node:
        entry = node.metadata_props.add()
        entry.key, entry.value = key, value
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value
    src = save(folder.path, model)
    folder.snapshot()
    start = time.perf_counter()
    code, err = cli("onnx", src, folder.path / "out.onnx", "--json", "--no-verify")
    assert code == 0, err[-2000:]
    assert time.perf_counter() - start < 60
    folder.assert_untouched(created=("out.onnx",))


def test_scope_metadata_within_the_cap_still_names_sites():
    model = residual_net()
    for node in model.graph.node:
        if node.name == "b0.act":
            entry = node.metadata_props.add()
            entry.key, entry.value = "pkg.torch.onnx.name_scopes", "['', 'layer1', 'relu']"
    assert [site.name for site in so.plan(model)] == ["layer1", "b1.act"]


# --- input shapes and tolerances ------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--input-shape", "x:1,3,30000,30000"], "verification input 'x' of shape 1x3x30000x30000 holds 2,700,000,000"),
    (["--input-shape", "x:2,3,4,4"], None),                                                # fine: the control
    (["--input-shape", "x:1,3,8"], "input shape for 'x' has 3 dims; the model declares rank 4 (N, 3, S, S)"),
    (["--input-shape", "x:1,3,8,8,8"], "the model declares rank 4"),
    (["--input-shape", "x:1,4,8,8"], "input shape for 'x': dim 1 is 3 in the model, got 4"),
    (["--input-shape", "x:" + ",".join(["100000"] * 30)], "the model declares rank 4"),
    (["--atol", "nan"], "atol (--atol) must be a finite number >= 0, got nan"),
    (["--rtol", "-1"], "rtol (--rtol) must be a finite number >= 0, got -1.0"),
    (["--atol", "inf"], "atol (--atol) must be a finite number >= 0, got inf"),
])
def test_input_shapes_and_tolerances_are_checked_before_any_work(folder, cli, argv, message):
    src = save(folder.path, residual_net())
    folder.snapshot()
    start = time.perf_counter()
    code, err = cli("onnx", src, folder.path / "out.onnx", *argv)
    if message is None:
        assert code == 0, err
        folder.assert_untouched(created=("out.onnx",))
        return
    assert code == 2 and message in err, err
    assert time.perf_counter() - start < 10
    folder.assert_untouched()


def test_a_huge_declared_input_is_refused_when_verifying_and_fine_without(folder, cli):
    model = residual_net()
    for k, d in enumerate(model.graph.input[0].type.tensor_type.shape.dim):
        d.Clear()
        d.dim_value = (1, 3, 30000, 30000)[k]
    src = save(folder.path, model)
    folder.snapshot()
    code, err = cli("onnx", src, folder.path / "out.onnx")
    assert code == 2 and "one input may hold at most 268,435,456 elements and 1 GiB" in err and "--no-verify" in err
    folder.assert_untouched()
    code, err = cli("onnx", src, folder.path / "out.onnx", "--no-verify")
    assert code == 0, err
    folder.assert_untouched(created=("out.onnx",))


@pytest.mark.parametrize("shapes, message", [
    ({"x": "1,3,8,8"}, "input shape for 'x' must be a list of whole numbers"),
    ({"x": (1, 3.5, 8, 8)}, "dim 3.5 is not a whole number"),
    ({"x": (1, True, 8, 8)}, "dim True is not a whole number"),
    ({"x": (1, 3, 0, 8)}, "dims must be >= 1, got 0"),
    ({"x": 7}, "must be a list of whole numbers"),
    ([("x", (1, 3, 8, 8))], "input shapes must be a dict"),
    ({"x": (1, 3, 30000, 30000)}, "holds 2,700,000,000 elements"),
    ({"y" * 500: (1,)}, "input shape given for unknown input(s) yyyy"),
])
def test_python_input_shapes_are_config_errors(folder, shapes, message):
    src = save(folder.path, residual_net())
    folder.snapshot()
    start = time.perf_counter()
    for call in (lambda: so.apply_file(src, folder.path / "out.onnx", input_shapes=shapes),
                 lambda: so.apply(residual_net(), input_shapes=shapes, verify=True)):
        with pytest.raises(ConfigError) as info:
            call()
        assert message in str(info.value) and len(str(info.value)) < 400
    assert time.perf_counter() - start < 10
    folder.assert_untouched()


@pytest.mark.parametrize("atol, rtol", [(float("nan"), 1e-5), (1e-6, -1.0), ("1e-6", 1e-5), (None, 1e-5),
                                        (True, 1e-5)])
def test_python_tolerances_are_config_errors(folder, atol, rtol):
    src = save(folder.path, residual_net())
    folder.snapshot()
    with pytest.raises(ConfigError, match="must be a finite number >= 0"):
        so.apply_file(src, folder.path / "out.onnx", atol=atol, rtol=rtol)
    with pytest.raises(ConfigError, match="must be a finite number >= 0"):
        compare(residual_net(), residual_net(), atol=atol, rtol=rtol)
    folder.assert_untouched()

