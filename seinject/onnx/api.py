"""plan / apply / apply_file for ONNX models: load, view, match, splice, save, verify, report.

The steps are the torch backend's: rule and overrides → Rule (seinject.rule.overrides),
model → GraphView (view.py), Rule × view → sites (seinject.graph.matcher), sites → new graph
(splice.py). apply_file adds the safe write: temporary file, verification, move.

apply_file refuses, before anything is written: an OUT that is a device, FIFO, socket or
folder (symlinks are followed, the target is checked and written), OUT equal to IN without
overwrite (same path or same inode), OUT that is one of IN's external data files (always),
OUT's data file that is IN or one of IN's data files (unless IN itself is being replaced),
atol/rtol that are not finite numbers >= 0, input shapes of the wrong rank, and
verification inputs over the budget in seinject.onnx.verification (2**28 elements, 1 GiB each).

Example:
    >>> import onnx
    >>> model = onnx.parser.parse_model('''
    ...   <ir_version: 8, opset_import: ["" : 17]>
    ...   g (float[N, 2, 4, 4] x) => (float[N, 2, 4, 4] y) <float[2, 2, 1, 1] w = {1.0, 0.5, 0.5, 1.0}> {
    ...     c = Conv(x, w)
    ...     a = Add(c, x)
    ...     y = Relu(a)
    ...   }''')
    >>> [site.name for site in plan(model)]
    ['y']
"""

from __future__ import annotations

import copy
import logging
import math
import operator
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import onnx

from ..errors import ConfigError, NoSitesError, SEInjectWarning, UsageError
from ..graph.matcher import match
from ..graph.report import ApplyReport, Plan
from ..graph.site import Site
from ..limits import MAX_RANK
from ..rule.overrides import resolve_rule
from ..rule.schema import Rule
from ..safe_write import resolve_output, same_as_any
from ..suggest import short
from .load import (EXTERNAL_THRESHOLD, PROTOBUF_LIMIT, LoadedModel, StagedOutput, load_model,
                   read_external_data, same_file, tensor_bytes)
from .splice import splice
from .verification import (OPT_LEVELS, SYMBOLIC_BATCH, SYMBOLIC_OTHER, check, check_input_budget, check_tolerances,
                     compare, itemsize)
from .view import OnnxGraph, build_view

log = logging.getLogger("seinject")


def plan(model: Any, rule: "str | Rule" = "after_residual", *, input_shapes: "dict | str | None" = None,
         **overrides: Any) -> Plan:
    """Where `rule` would insert SE blocks; nothing is changed. See seinject.onnx.plan."""
    resolved = resolve_rule(rule, overrides)
    loaded, _ = _coerce(model, inplace=True, with_data=False)
    auto = input_shapes == "auto"
    shapes = concrete_input_shapes(loaded.model, None if auto else input_shapes) if input_shapes else None
    graph = build_view(loaded.model, shapes)
    return _plan_of(loaded, graph, resolved)


def apply(model: Any, rule: "str | Rule" = "after_residual", *, inplace: bool = False, strict: bool = False,
          seed: int = 0, input_shapes: dict | None = None, verify: bool = False,
          return_report: bool = False, **overrides: Any) -> Any:
    """Insert SE blocks; returns the model as the type it was given. See seinject.onnx.apply."""
    resolved = resolve_rule(rule, overrides)
    loaded, restore = _coerce(model, inplace=inplace)
    input_shapes = named_input_shapes(loaded.model, input_shapes)
    if verify and tensor_bytes(loaded.model) > PROTOBUF_LIMIT - 2**26:
        raise UsageError("verify=True runs the models from memory, which protobuf limits to 2 GB; "
                         "use seinject.onnx.apply_file for this model")
    if verify:
        budget(loaded.model, concrete_input_shapes(loaded.model, input_shapes))
    original = loaded.model.SerializeToString() if verify else None
    report = _rewrite(loaded, resolved, input_shapes, seed, strict, stacklevel=4)
    if verify and report.inserted:
        result = compare(original, loaded.model, input_shapes, seed=seed,
                         expect_equal=report.init == "identity")
        report.max_abs_diff, report.verified = result.max_abs_diff, True
    out = restore(loaded.model)
    return (out, report) if return_report else out


def apply_file(src: "str | Path", dst: "str | Path", rule: "str | Rule" = "after_residual", *,
               verify: bool = True, overwrite: bool = False, strict: bool = False, seed: int = 0,
               input_shapes: dict | None = None, atol: float = 1e-6, rtol: float = 1e-5,
               opt_level: str = "basic", external_data: bool | None = None, **overrides: Any) -> ApplyReport:
    """Rewrite the file src into dst, safely; returns the report. See seinject.onnx.apply_file."""
    src, dst = Path(src), Path(dst)
    if dst.is_dir():
        raise UsageError(f"output {short(dst)} is a folder; give a file name")
    target = resolve_output(dst)  # a device, FIFO or socket, or a missing folder: refused before reading
    check_tolerances(atol, rtol)
    if opt_level not in OPT_LEVELS:
        raise ConfigError(f"onnxruntime optimization level must be one of {', '.join(OPT_LEVELS)}, "
                          f"got {short(opt_level)}")
    if same_file(src, dst) and not overwrite:
        raise UsageError(f"output {short(dst)} is the input file; pass --overwrite (overwrite=True) to replace it")
    resolved = resolve_rule(rule, overrides)  # rule errors before the model is read
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_model(src, with_data=False)  # external data locations checked, not read yet
    if same_as_any(target, loaded.external_files):
        raise UsageError(f"output {short(dst)} is an external data file of the input {short(src)}; refused "
                         "(--overwrite replaces only the input model file itself)")
    read_external_data(loaded)
    seconds["load"] = time.perf_counter() - start
    shapes = concrete_input_shapes(loaded.model, input_shapes)
    if verify:
        budget(loaded.model, shapes)
    report = _rewrite(loaded, resolved, shapes, seed, strict, seconds=seconds, stacklevel=4)
    report.input_shapes = shapes
    if not report.inserted:
        report.verify_note = "nothing inserted, nothing written"
        return report
    external = external_data if external_data is not None else (
        loaded.has_external_data or tensor_bytes(loaded.model) > EXTERNAL_THRESHOLD)
    protected = {src.resolve(), *loaded.external_files}
    with StagedOutput(dst, external=external, protected=protected, replacing_input=same_file(src, dst)) as staged:
        start = time.perf_counter()
        staged.write(loaded.model)
        seconds["save"] = time.perf_counter() - start
        if verify:
            start = time.perf_counter()
            checker_note = check(staged.temp_model, src)
            identity = report.init == "identity"
            result = compare(src, staged.temp_model, shapes, atol=atol, rtol=rtol, seed=seed,
                             opt_level=opt_level, expect_equal=identity)
            seconds["verify"] = time.perf_counter() - start
            report.max_abs_diff, report.verified = result.max_abs_diff, True
            report.verify_note = "; ".join(filter(None, [_shape_note(result.input_shapes, opt_level, identity),
                                                         checker_note]))
        else:  # a structural onnx.checker pass still runs: an invalid file is never written
            report.verify_note = "; ".join(filter(None, ["--no-verify", check(staged.temp_model, src, full=False)]))
        report.output = str(staged.commit())
    report.seconds = seconds
    return report


def _rewrite(loaded: LoadedModel, resolved: Rule, input_shapes, seed: int, strict: bool,
             seconds: dict | None = None, stacklevel: int = 3) -> ApplyReport:
    seconds = seconds if seconds is not None else {}
    start = time.perf_counter()
    graph = build_view(loaded.model, input_shapes)
    seconds["view"] = time.perf_counter() - start
    start = time.perf_counter()
    planned = _plan_of(loaded, graph, resolved)
    seconds["match"] = time.perf_counter() - start
    start = time.perf_counter()
    done = splice(graph, planned.sites, resolved.se, seed)
    seconds["splice"] = time.perf_counter() - start
    report = ApplyReport(plan=planned, inserted=done.inserted, splice_skipped=done.skipped, init=resolved.se.init,
                         seconds=seconds)
    where = str(loaded.path) if loaded.path else "the model"
    if not done.inserted:
        message = (f"rule {resolved.name!r} inserted no SE block into {where}: "
                   + ("; ".join(report.summary_lines(grouped=True)) or "no match"))
        if strict:
            raise NoSitesError(message)
        warnings.warn(message, SEInjectWarning, stacklevel=stacklevel)
    log.info("%s", report.trainable_line())
    return report


def _shape_note(shapes: dict, opt_level: str, identity: bool) -> str:
    dims = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in shapes.items())
    kind = "onnx.checker full_check + onnxruntime" + (f" (opt {opt_level})" if opt_level != "basic" else "")
    return f"{kind} on {dims}" + ("" if identity else "; init=random: outputs differ by design")


def concrete_input_shapes(model: onnx.ModelProto, given: dict | None = None) -> dict[str, tuple]:
    """Every graph input's shape with symbolic dims filled (given shapes win; batch 2, others 64).

    Example:
        >>> import onnx
        >>> m = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[N, 3, H, W] x) => (float[N, 3, H, W] y) { y = Relu(x) }''')
        >>> concrete_input_shapes(m)
        {'x': (2, 3, 64, 64)}
    """
    given = dict(named_input_shapes(model, given) or {})
    initializers = {t.name for t in model.graph.initializer}
    out: dict[str, tuple] = {}
    for value in model.graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        if value.name in given:
            out[value.name] = tuple(int(d) for d in given.pop(value.name))
            continue
        dims = value.type.tensor_type.shape.dim
        out[value.name] = tuple(d.dim_value if d.HasField("dim_value") else
                                (SYMBOLIC_BATCH if k == 0 else SYMBOLIC_OTHER) for k, d in enumerate(dims))
    return out


def named_input_shapes(model: onnx.ModelProto, given: dict | None) -> dict | None:
    """Input shapes keyed by input name (the key '' stands for the model's only input), checked:
    whole dims >= 1, the rank and fixed dims the model declares, and at most the verification
    budget of elements (ConfigError naming the input otherwise).

    Example:
        >>> import onnx
        >>> m = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[N, 3] x) => (float[N, 3] y) { y = Relu(x) }''')
        >>> named_input_shapes(m, {"": (1, 3)})
        {'x': (1, 3)}
        >>> named_input_shapes(m, {"x": (1, 3, 8)})
        Traceback (most recent call last):
        ...
        seinject.errors.ConfigError: input shape for 'x' has 3 dims; the model declares rank 2 (N, 3)
    """
    if not given:
        return given
    if not isinstance(given, dict):
        raise ConfigError(f"input shapes must be a dict of input name → shape, got {type(given).__name__}")
    initializers = {t.name for t in model.graph.initializer}
    declared = {v.name: v for v in model.graph.input if v.name not in initializers}
    inputs = list(declared)
    out = dict(given)
    if "" in out:
        if len(inputs) != 1:
            raise ConfigError(f"an input shape without a name needs a model with one input; "
                              f"this one has {len(inputs)}: {short(', '.join(inputs))} (use NAME:D0,D1,...)")
        out[inputs[0]] = out.pop("")
    unknown = sorted(str(k) for k in set(out) - set(inputs))
    if unknown:
        raise ConfigError(f"input shape given for unknown input(s) {short(', '.join(unknown))[1:-1]}; "
                          f"the model's inputs: {short(', '.join(inputs))[1:-1]}")
    return {k: _checked_shape(k, v, declared[k]) for k, v in out.items()}


def _checked_shape(name: str, shape: Any, value: onnx.ValueInfoProto) -> tuple[int, ...]:
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__"):
        raise ConfigError(f"input shape for {short(name)} must be a list of whole numbers, got {short(shape)}")
    if len(shape) > MAX_RANK:
        raise ConfigError(f"input shape for {short(name)} has {len(shape)} dims; at most {MAX_RANK}")
    dims = []
    for d in shape:
        try:
            if isinstance(d, bool):
                raise TypeError
            dims.append(operator.index(d))
        except TypeError:
            raise ConfigError(f"input shape for {short(name)}: dim {short(d)} is not a whole number") from None
        if dims[-1] < 1:
            raise ConfigError(f"input shape for {short(name)}: dims must be >= 1, got {dims[-1]}")
    ttype = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if ttype is not None and ttype.HasField("shape"):
        declared = list(ttype.shape.dim)
        text = ", ".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in declared)
        if len(dims) != len(declared):
            raise ConfigError(f"input shape for {short(name)} has {len(dims)} dims; the model declares rank "
                              f"{len(declared)} ({short(text, 80)[1:-1]})")
        for k, (d, want) in enumerate(zip(dims, declared)):
            if want.HasField("dim_value") and want.dim_value > 0 and d != want.dim_value:
                raise ConfigError(f"input shape for {short(name)}: dim {k} is {want.dim_value} in the model, "
                                  f"got {d}")
    elem_type = ttype.elem_type if ttype is not None else 0
    check_input_budget(name, dims, itemsize(elem_type))
    return tuple(dims)


def budget(model: onnx.ModelProto, shapes: dict[str, tuple]) -> None:
    """ConfigError when one verification input (given or filled in from the model) is over the budget.

    Example:
        >>> import onnx
        >>> m = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[1, 3, 30000, 30000] x) => (float[1, 3, 30000, 30000] y) { y = Relu(x) }''')
        >>> budget(m, concrete_input_shapes(m))
        Traceback (most recent call last):
        ...
        seinject.errors.ConfigError: verification input 'x' of shape 1x3x30000x30000 holds 2,700,000,000 ...
    """
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.input if v.type.HasField("tensor_type")}
    for name, dims in shapes.items():
        check_input_budget(name, dims, itemsize(types.get(name, 0)))


def _plan_of(loaded: LoadedModel, graph: OnnxGraph, resolved: Rule) -> Plan:
    """Match the rule on the view; sites carry their MACs, model_params counts the model before any change."""
    found = match(resolved, graph.view)
    return Plan(rule=resolved.name, sites=[replace(s, macs=_macs(graph, s, resolved)) for s in found.sites],
                skipped=found.skipped, matched=found.matched, model_params=_param_count(loaded.model),
                input=str(loaded.path) if loaded.path else None, counts_macs=True)


def _macs(graph: OnnxGraph, site: Site, rule: Rule) -> int | None:
    dims = graph.shapes.get(site.node, (None, None))[0]
    if not dims or len(dims) < 3 or not all(isinstance(d, int) for d in dims[2:]):
        return None
    return rule.se.added_macs(site.channels, tuple(dims[2:]))


def _param_count(model: onnx.ModelProto) -> int:
    """Elements of floating-point initializers that are not scalars: the model's parameters."""
    floating = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                onnx.TensorProto.BFLOAT16}
    return sum(math.prod(t.dims) for t in model.graph.initializer if t.data_type in floating and len(t.dims))


def _coerce(model: Any, inplace: bool, with_data: bool = True) -> tuple[LoadedModel, Callable[[onnx.ModelProto], Any]]:
    """A LoadedModel for any accepted input, and the function that turns the result back into its type."""
    module = type(model).__module__
    if module.startswith("onnx_graphsurgeon"):
        import onnx_graphsurgeon as gs

        return load_model(gs.export_onnx(model)), gs.import_onnx
    if module.startswith("onnx_ir"):
        import onnx_ir

        return load_model(onnx_ir.serde.serialize_model(model)), onnx_ir.serde.deserialize_model
    if isinstance(model, onnx.ModelProto):
        target = model if inplace else copy.deepcopy(model)
        return load_model(target), lambda m: m
    if isinstance(model, (bytes, bytearray)):
        return load_model(model), lambda m: m.SerializeToString()
    return load_model(model, with_data), lambda m: m
