"""The `fn` vocabulary: every name matches the torch module, functional and ONNX forms of its op alike."""

import contextlib
import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import seinject
from seinject import RuleError
from seinject.rule.kinds import FN_ALIASES, FN_NAMES, KINDS, canonical_fn, fn_names
from seinject.torch import kinds as torch_kinds

C, W = 4, 8  # tiny maps: N=1, C=4, 8×8
VOCAB = [(kind, name) for kind, names in FN_NAMES.items() for name in names]

# The module form of each name.
MODULES = {
    "relu": lambda: nn.ReLU(), "relu6": lambda: nn.ReLU6(), "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "prelu": lambda: nn.PReLU(), "elu": lambda: nn.ELU(), "selu": lambda: nn.SELU(), "celu": lambda: nn.CELU(),
    "gelu": lambda: nn.GELU(), "silu": lambda: nn.SiLU(), "mish": lambda: nn.Mish(),
    "hardswish": lambda: nn.Hardswish(), "sigmoid": lambda: nn.Sigmoid(), "hardsigmoid": lambda: nn.Hardsigmoid(),
    "tanh": lambda: nn.Tanh(), "softplus": lambda: nn.Softplus(), "softsign": lambda: nn.Softsign(),
    "hardtanh": lambda: nn.Hardtanh(),
    "batch_norm": lambda: nn.BatchNorm2d(C), "group_norm": lambda: nn.GroupNorm(2, C),
    "layer_norm": lambda: nn.LayerNorm(W), "instance_norm": lambda: nn.InstanceNorm2d(C),
    "local_response_norm": lambda: nn.LocalResponseNorm(3), "rms_norm": lambda: nn.RMSNorm(W),
    "max_pool": lambda: nn.MaxPool2d(2), "avg_pool": lambda: nn.AvgPool2d(2), "lp_pool": lambda: nn.LPPool2d(2, 2),
    "adaptive_avg_pool": lambda: nn.AdaptiveAvgPool2d(1), "adaptive_max_pool": lambda: nn.AdaptiveMaxPool2d(1),
}
# The functional form of each name, called in a module's forward.
FUNCTIONAL = {
    "relu": F.relu, "relu6": F.relu6, "leaky_relu": F.leaky_relu,
    "prelu": lambda x: F.prelu(x, torch.full((1,), 0.25)), "elu": F.elu, "selu": F.selu, "celu": F.celu,
    "gelu": F.gelu, "silu": F.silu, "mish": F.mish, "hardswish": F.hardswish, "sigmoid": torch.sigmoid,
    "hardsigmoid": F.hardsigmoid, "tanh": torch.tanh, "softplus": F.softplus, "softsign": F.softsign,
    "hardtanh": F.hardtanh,
    "batch_norm": lambda x: F.batch_norm(x, torch.zeros(C), torch.ones(C)),
    "group_norm": lambda x: F.group_norm(x, 2), "layer_norm": lambda x: F.layer_norm(x, (W,)),
    "instance_norm": F.instance_norm, "local_response_norm": lambda x: F.local_response_norm(x, 3),
    "rms_norm": lambda x: F.rms_norm(x, (W,)),
    "max_pool": lambda x: F.max_pool2d(x, 2), "avg_pool": lambda x: F.avg_pool2d(x, 2),
    "lp_pool": lambda x: F.lp_pool2d(x, 2.0, 2), "adaptive_avg_pool": lambda x: F.adaptive_avg_pool2d(x, 1),
    "adaptive_max_pool": lambda x: F.adaptive_max_pool2d(x, 1),
}
# Exports use opset 17 unless the op needs a newer one to be a single ONNX op.
EXPORT_OPSETS = {"gelu": 20, "mish": 18, "hardswish": 14, "group_norm": 18}

# Exceptions. Names with neither a torch module nor a functional form: ONNX-only ops.
NO_TORCH_FORM = {
    "thresholded_relu": "ONNX ThresholdedRelu; torch's nn.Threshold takes a replacement value and is another op",
    "lp_norm": "ONNX LpNormalization; F.normalize is a norm, a clamp and a division",
    "mean_variance_norm": "ONNX MeanVarianceNormalization; torch has no such op",
}
# Names whose module form torch.onnx.export(dynamo=False) does not write as one ONNX op; their
# ONNX form is checked on a hand-built node (test_onnx_node_form_matches) instead.
NOT_ONE_OP_WHEN_EXPORTED = {
    "mish": "written as x·tanh(softplus(x)), even at opset 18 where Mish exists",
    "softsign": "written as x / (1 + |x|)",
    "group_norm": "written as Reshape, InstanceNormalization, Reshape, Mul, Add, even at opset 18",
    "local_response_norm": "written as Pow, Pad, AveragePool and Div",
    "rms_norm": "aten::rms_norm cannot be exported (RMSNormalization is opset 23, past the legacy exporter)",
    "lp_pool": "written as Pow, AveragePool, Mul and Pow",
}

# One ONNX node per name: (op_type, constant inputs after x, attributes, opset).
ONNX_NODES = {
    "relu": ("Relu", [], {}, 17), "relu6": ("Clip", [0.0, 6.0], {}, 17),
    "leaky_relu": ("LeakyRelu", [], {"alpha": 0.1}, 17), "prelu": ("PRelu", [[0.25]], {}, 17),
    "elu": ("Elu", [], {}, 17), "selu": ("Selu", [], {}, 17), "celu": ("Celu", [], {}, 17),
    "gelu": ("Gelu", [], {}, 20), "silu": ("Swish", [], {}, 24), "mish": ("Mish", [], {}, 18),
    "hardswish": ("HardSwish", [], {}, 14), "sigmoid": ("Sigmoid", [], {}, 17),
    "hardsigmoid": ("HardSigmoid", [], {}, 17), "tanh": ("Tanh", [], {}, 17),
    "softplus": ("Softplus", [], {}, 17), "softsign": ("Softsign", [], {}, 17),
    "hardtanh": ("Clip", [-1.0, 1.0], {}, 17), "thresholded_relu": ("ThresholdedRelu", [], {}, 17),
    "batch_norm": ("BatchNormalization", [[1.0] * C, [0.0] * C, [0.0] * C, [1.0] * C], {}, 17),
    "group_norm": ("GroupNormalization", [[1.0] * C, [0.0] * C], {"num_groups": 2}, 21),
    "layer_norm": ("LayerNormalization", [[1.0] * W], {}, 17),
    "instance_norm": ("InstanceNormalization", [[1.0] * C, [0.0] * C], {}, 17),
    "local_response_norm": ("LRN", [], {"size": 3}, 17), "rms_norm": ("RMSNormalization", [[1.0] * W], {}, 23),
    "lp_norm": ("LpNormalization", [], {"axis": 1}, 17), "mean_variance_norm": ("MeanVarianceNormalization", [], {}, 17),
    "max_pool": ("MaxPool", [], {"kernel_shape": [2, 2], "strides": [2, 2]}, 17),
    "avg_pool": ("AveragePool", [], {"kernel_shape": [2, 2], "strides": [2, 2]}, 17),
    "lp_pool": ("LpPool", [], {"kernel_shape": [2, 2], "strides": [2, 2]}, 17),
    "adaptive_avg_pool": ("GlobalAveragePool", [], {}, 17), "adaptive_max_pool": ("GlobalMaxPool", [], {}, 17),
}


def rule(kind, name):
    return seinject.parse_rule(f"name: t\npattern: [{{kind: {kind}, fn: {name}}}]\n")


class Functional(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.conv = nn.Conv2d(C, C, 1)

    def forward(self, x):
        return self.conv(self.fn(x))


def module_model(name):
    """op → conv: the op reads the input, so the exporter cannot fold a norm into a conv before it."""
    return nn.Sequential(MODULES[name](), nn.Conv2d(C, C, 1)).eval()


def has_torch_form(name):
    return name not in NO_TORCH_FORM


def needs_rms_norm(name):
    if name == "rms_norm" and not hasattr(nn, "RMSNorm"):
        pytest.skip("nn.RMSNorm and F.rms_norm need torch >= 2.4")


def test_the_tables_cover_the_vocabulary_and_the_exceptions_are_real():
    names = {name for _, name in VOCAB}
    assert len(names) == len(VOCAB), "a name belongs to two kinds"
    assert set(MODULES) == set(FUNCTIONAL) == names - set(NO_TORCH_FORM)
    assert set(ONNX_NODES) == names
    assert set(NOT_ONE_OP_WHEN_EXPORTED) <= set(MODULES)
    torch_names = ({fn for _, fn in torch_kinds.MODULE_FN.values()}
                   | {fn for _, fn in torch_kinds._FUNCTIONS.values()}
                   | {fn for _, fn in torch_kinds._METHODS.values()})
    assert not torch_names & set(NO_TORCH_FORM), "a name listed as ONNX-only has a torch form"


def test_every_fn_the_torch_backend_emits_is_in_the_vocabulary():
    tables = [torch_kinds.MODULE_FN.values(), torch_kinds._FUNCTIONS.values(), torch_kinds._METHODS.values()]
    for kind, fn in (entry for table in tables for entry in table):
        if kind in FN_NAMES:
            assert fn in FN_NAMES[kind], (kind, fn)
        else:
            assert fn not in fn_names(FN_NAMES), (kind, fn)


def test_every_fn_the_onnx_backend_emits_is_in_the_vocabulary():
    pytest.importorskip("onnx")
    from seinject.onnx import kinds as onnx_kinds
    from seinject.onnx.view import GATE_FUSION

    emitted = ([("act", fn) for fn in onnx_kinds.ACT_FN.values()] + [("norm", fn) for fn in onnx_kinds.NORM_FN.values()]
               + [("pool", fn) for fn in onnx_kinds.POOL_FN.values()] + [("act", fn) for fn in GATE_FUSION.values()])
    for kind, fn in emitted:
        assert fn in FN_NAMES[kind], (kind, fn)
    for op, kind in onnx_kinds.KIND_OF.items():
        table = {"act": onnx_kinds.ACT_FN, "norm": onnx_kinds.NORM_FN, "pool": onnx_kinds.POOL_FN}.get(kind)
        assert table is None or op in table or op == "Clip", f"ONNX {op} ({kind}) has no fn"


def test_aliases_name_canonical_words():
    for alias, name in FN_ALIASES.items():
        assert alias not in fn_names(KINDS) and name in fn_names(KINDS), (alias, name)
        assert canonical_fn(canonical_fn(alias)) == name
    assert canonical_fn("relu") == "relu" and canonical_fn("unknown") == "unknown"


@pytest.mark.parametrize("kind, name", [v for v in VOCAB if has_torch_form(v[1])])
def test_module_form_matches(kind, name):
    needs_rms_norm(name)
    found_kind, attrs = torch_kinds.classify_module(MODULES[name]())
    assert (found_kind, attrs["fn"]) == (kind, name)
    assert seinject.plan(module_model(name), rule=rule(kind, name)).matched >= 1


@pytest.mark.parametrize("kind, name", [v for v in VOCAB if has_torch_form(v[1])])
def test_functional_form_matches(kind, name):
    needs_rms_norm(name)
    assert seinject.plan(Functional(FUNCTIONAL[name]).eval(), rule=rule(kind, name)).matched >= 1


@pytest.mark.parametrize("kind, name", [v for v in VOCAB if has_torch_form(v[1])])
def test_onnx_export_of_the_module_form_matches(kind, name, tmp_path):
    """Each name not in NOT_ONE_OP_WHEN_EXPORTED matches; each name in it really does not."""
    pytest.importorskip("onnx")
    needs_rms_norm(name)
    import seinject.onnx

    path = tmp_path / f"{name}.onnx"
    quiet = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(module_model(name), (torch.randn(1, C, W, W),), str(path), dynamo=False,
                              opset_version=EXPORT_OPSETS.get(name, 17))
    except torch.onnx.errors.UnsupportedOperatorError:
        assert name in NOT_ONE_OP_WHEN_EXPORTED, f"{name}: the exporter cannot write it"
        return
    matched = seinject.onnx.plan(str(path), rule=rule(kind, name)).matched
    if name in NOT_ONE_OP_WHEN_EXPORTED:
        assert matched == 0, f"{name} is exported as one op now: drop it from NOT_ONE_OP_WHEN_EXPORTED"
    else:
        assert matched >= 1


@pytest.mark.parametrize("kind, name", VOCAB)
def test_onnx_node_form_matches(kind, name):
    onnx = pytest.importorskip("onnx")
    import onnx.helper as h

    import seinject.onnx

    op_type, constants, attrs, opset = ONNX_NODES[name]
    inits = [h.make_tensor(f"c{i}", onnx.TensorProto.FLOAT, [len(v)] if isinstance(v, list) else [],
                           v if isinstance(v, list) else [v]) for i, v in enumerate(constants)]
    node = h.make_node(op_type, ["x"] + [t.name for t in inits], ["y"], **attrs)
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, C, W, W])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], initializer=inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    assert seinject.onnx.plan(model, rule=rule(kind, name)).matched == 1


@pytest.mark.parametrize("module, name", [
    (nn.BatchNorm1d(C), "batch_norm"), (nn.BatchNorm3d(C), "batch_norm"), (nn.SyncBatchNorm(C), "batch_norm"),
    (nn.LazyBatchNorm2d(), "batch_norm"), (nn.InstanceNorm1d(C), "instance_norm"),
    (nn.InstanceNorm3d(C), "instance_norm"), (nn.MaxPool1d(2), "max_pool"), (nn.MaxPool3d(2), "max_pool"),
    (nn.AvgPool1d(2), "avg_pool"), (nn.AvgPool3d(2), "avg_pool"), (nn.LPPool1d(2, 2), "lp_pool"),
    (nn.AdaptiveAvgPool1d(1), "adaptive_avg_pool"), (nn.AdaptiveAvgPool3d(1), "adaptive_avg_pool"),
    (nn.AdaptiveMaxPool1d(1), "adaptive_max_pool"), (nn.AdaptiveMaxPool3d(1), "adaptive_max_pool"),
    (nn.ReLU6(), "relu6"),  # a Hardtanh subclass
])
def test_every_dimensionality_of_a_module_has_the_one_name(module, name):
    assert torch_kinds.classify_module(module)[1]["fn"] == name


@pytest.mark.parametrize("op, target, args, name", [
    ("call_function", F.max_pool1d, (None, 2), "max_pool"), ("call_function", F.max_pool3d, (None, 2), "max_pool"),
    ("call_function", torch.max_pool2d, (None, 2), "max_pool"), ("call_function", F.avg_pool3d, (None, 2), "avg_pool"),
    ("call_function", F.lp_pool1d, (None, 2.0, 2), "lp_pool"),
    ("call_function", F.adaptive_max_pool3d, (None, 1), "adaptive_max_pool"),
    ("call_function", torch.layer_norm, (None, (W,)), "layer_norm"),
    ("call_function", F.leaky_relu_, (None,), "leaky_relu"), ("call_function", torch.tanh_, (None,), "tanh"),
    ("call_function", torch.selu_, (None,), "selu"), ("call_function", F.hardtanh_, (None,), "hardtanh"),
    ("call_method", "tanh_", (None,), "tanh"), ("call_method", "sigmoid_", (None,), "sigmoid"),
    ("call_method", "prelu", (None, None), "prelu"),
])
def test_in_place_and_torch_namespace_calls_have_the_one_name(op, target, args, name):
    assert torch_kinds.classify_call(op, target, args, {})[1]["fn"] == name


def test_lp_pool_call_reads_kernel_and_stride_after_norm_type():
    assert torch_kinds.classify_call("call_function", F.lp_pool2d, (None, 2.0, 3, 2), {})[1]["stride"] == (2,)
    assert torch_kinds.classify_call("call_function", F.lp_pool2d, (None, 2.0, 3), {})[1]["stride"] == (3,)


def test_onnx_global_pools_and_whole_map_pools_are_adaptive():
    pytest.importorskip("onnx")
    import onnx.helper as h

    from seinject.onnx.kinds import classify

    shapes = {"x": ((1, C, W, W), 1)}
    whole = h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[W, W])
    part = h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2])
    padded = h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[W, W], pads=[1, 1, 1, 1])
    assert classify(whole, {}, shapes)[1]["fn"] == "adaptive_max_pool"
    assert classify(whole, {}, {})[1]["fn"] == "max_pool"  # the map's size unknown
    assert classify(part, {}, shapes)[1]["fn"] == "max_pool"
    assert classify(padded, {}, shapes)[1]["fn"] == "avg_pool"
    assert classify(h.make_node("GlobalLpPool", ["x"], ["y"]), {}, shapes)[1]["fn"] == "lp_pool"


def test_an_alias_in_a_rule_matches_the_canonical_op():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.MaxPool2d(2)
            self.bn = nn.BatchNorm2d(C)

        def forward(self, x):
            return F.max_pool2d(self.bn(self.pool(x)), 2)

    alias_rule = seinject.parse_rule("name: t\npattern: [{kind: pool, fn: max_pool2d}]\n")
    assert alias_rule.pattern[0].fn == ("max_pool",)
    assert seinject.plan(Mixed().eval(), rule=alias_rule).matched == 2
    norm_rule = seinject.parse_rule("name: t\npattern: [{kind: norm, fn: batch_norm2d}, {kind: pool}]\n")
    assert seinject.plan(Mixed().eval(), rule=norm_rule).matched == 1


def test_a_misspelt_fn_is_an_error_not_a_silent_miss():
    with pytest.raises(RuleError, match=r"t.yaml:3: unknown fn 'hardswsh' for kind act \(did you mean 'hardswish'\?\)"):
        seinject.parse_rule("name: t\npattern:\n  - {kind: act, fn: hardswsh}\n", "t.yaml")
