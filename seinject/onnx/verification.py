"""Verify a rewritten model: onnx.checker (full_check) and onnxruntime outputs against the original.

Both models run in onnxruntime on the same seeded random inputs. Symbolic dims take
`input_shapes` when given, else 2 for the first (batch) dim and 64 for the others.
Sessions use graph optimization level "basic" by default: the comparison then measures
seinject's change alone (at "all", ORT's NCHWc layout pass picks different kernels
around any inserted Mul, which moves outputs by float rounding, ~1e-7 relative).

Budget: one random input holds at most MAX_INPUT_ELEMENTS (2**28) elements and
MAX_INPUT_BYTES (1 GiB); the count is taken with Python ints before anything is
allocated (ConfigError naming the input). Intermediate tensors inside onnxruntime are
not bounded by this. atol and rtol must be finite numbers >= 0 (ConfigError).

Example:
    >>> import onnx
    >>> m = onnx.parser.parse_model('''
    ...   <ir_version: 8, opset_import: ["" : 17]>
    ...   g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }''')
    >>> compare(m, m).max_abs_diff
    0.0
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import ConfigError, VerificationError
from ..limits import MAX_INPUT_BYTES, MAX_INPUT_ELEMENTS
from ..suggest import short

SYMBOLIC_BATCH = 2
SYMBOLIC_OTHER = 64
OPT_LEVELS = ("disable", "basic", "extended", "all")
_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
          "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


@dataclass
class Comparison:
    """Result of running both models: max |new - old| over all outputs, the input shapes used."""

    max_abs_diff: float
    input_shapes: dict[str, tuple] = field(default_factory=dict)
    worst_output: str | None = None
    within_tolerance: bool = True


def check_tolerances(atol: Any, rtol: Any) -> None:
    """ConfigError unless atol and rtol are finite numbers >= 0.

    Example:
        >>> check_tolerances(1e-6, float("nan"))
        Traceback (most recent call last):
        ...
        seinject.errors.ConfigError: rtol (--rtol) must be a finite number >= 0, got nan
    """
    for name, value in (("atol", atol), ("rtol", rtol)):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok or not math.isfinite(float(value)) or value < 0:
            raise ConfigError(f"{name} (--{name}) must be a finite number >= 0, got {short(value)}")


def itemsize(elem_type: int) -> int:
    """Bytes per element of an ONNX element type (8 when unknown).

    Example:
        >>> itemsize(1), itemsize(10), itemsize(0)
        (4, 2, 8)
    """
    try:
        return max(1, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except Exception:  # unknown or non-numeric type: assume the widest
        return 8


def check_input_budget(name: str, dims: "tuple | list", size: int = 4) -> None:
    """ConfigError when one verification input of these dims would exceed the budget (nothing allocated).

    Example:
        >>> check_input_budget("x", (1, 3, 30000, 30000))
        Traceback (most recent call last):
        ...
        seinject.errors.ConfigError: verification input 'x' of shape 1x3x30000x30000 holds 2,700,000,000 ...
    """
    try:
        dims = [operator.index(d) for d in dims]
    except TypeError:
        raise ConfigError(f"input shape for {short(name)} must be whole numbers, got {short(dims)}") from None
    if any(d < 0 for d in dims):
        raise ConfigError(f"input shape for {short(name)}: dims must not be negative, got {short(dims)}")
    count = math.prod(dims)
    if count > MAX_INPUT_ELEMENTS or count * size > MAX_INPUT_BYTES:
        shape = "x".join(str(d) for d in dims)
        shape = shape if len(shape) <= 80 else shape[:77] + "..."
        raise ConfigError(f"verification input {short(name)} of shape {shape} holds {count:,} elements "
                          f"({count * size / 2**30:.3g} GiB); one input may hold at most {MAX_INPUT_ELEMENTS:,} "
                          f"elements and {MAX_INPUT_BYTES // 2**30} GiB: give a smaller --input-shape "
                          "(input_shapes=) or skip verification (--no-verify)")


def check(path: "str | Path", original: "str | Path | None" = None, full: bool = True) -> str:
    """onnx.checker.check_model(full_check=True) on a file (external data resolved beside it);
    full=False runs the structural checks only (names defined once, ops known), which is cheap.

    When the rewritten model fails and the original fails the same way, the problem
    was there before: returns a note instead of raising VerificationError.

    Example:
        >>> import tempfile, onnx.helper as h
        >>> path = Path(tempfile.mkdtemp()) / "m.onnx"
        >>> onnx.save(h.make_model(h.make_graph([], "g", [], [])), path)
        >>> check(path)
        ''
    """
    problem = _checker_problem(path, full)
    if problem is None:
        return ""
    if original is not None and _checker_problem(original, full) == problem:
        return f"onnx.checker: the input fails it already ({problem})"
    raise VerificationError(f"{path}: onnx.checker rejected the rewritten model: {problem}")


def _checker_problem(path: "str | Path", full: bool = True) -> str | None:
    try:
        onnx.checker.check_model(str(path), full_check=full)
    except Exception as exc:  # checker raises ValidationError, InferenceError and others
        return _first_line(exc)
    return None


def compare(original: Any, rewritten: Any, input_shapes: dict[str, tuple] | None = None, *,
            atol: float = 1e-6, rtol: float = 1e-5, seed: int = 0, opt_level: str = "basic",
            expect_equal: bool = True) -> Comparison:
    """Run both models (paths or ModelProtos) on the same random inputs; compare every output.

    Raises VerificationError when a model cannot run, or when expect_equal and some
    output differs by more than atol + rtol·|old|.

    Example:
        >>> import onnx
        >>> a = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[2, 3] x) => (float[2, 3] y) { y = Relu(x) }''')
        >>> b = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[2, 3] x) => (float[2, 3] y) { y = Abs(x) }''')
        >>> compare(a, b)
        Traceback (most recent call last):
        ...
        seinject.errors.VerificationError: outputs differ: max |new - old| = ... on output 'y' (atol 1e-06, rtol 1e-05)
    """
    if opt_level not in OPT_LEVELS:
        raise ConfigError(f"onnxruntime optimization level must be one of {', '.join(OPT_LEVELS)}, "
                          f"got {short(opt_level)}")
    check_tolerances(atol, rtol)
    old = _session(original, "original", opt_level)
    new = _session(rewritten, "rewritten", opt_level)
    feeds, shapes = random_inputs(old, input_shapes or {}, seed)
    old_out = _run(old, feeds, "original")
    new_out = _run(new, feeds, "rewritten")
    names = [o.name for o in old.get_outputs()]
    worst, worst_name, ok = 0.0, None, True
    for name, a, b in zip(names, old_out, new_out):
        diff, close = _difference(np.asarray(a), np.asarray(b), atol, rtol)
        ok = ok and close
        if diff > worst or worst_name is None:
            worst, worst_name = diff, name
    result = Comparison(worst, shapes, worst_name, ok)
    if expect_equal and not ok:
        raise VerificationError(f"outputs differ: max |new - old| = {worst:.3g} on output {worst_name!r} "
                                f"(atol {atol:g}, rtol {rtol:g})")
    return result


def _difference(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> tuple[float, bool]:
    if a.shape != b.shape:
        return float("inf"), False
    if a.dtype.kind not in "fc":
        equal = bool(np.array_equal(a, b))
        return (0.0 if equal else float("inf")), equal
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    same_nan = np.array_equal(np.isnan(a64), np.isnan(b64))
    mask = ~np.isnan(a64)
    diff = np.abs(a64[mask] - b64[mask])
    worst = float(diff.max()) if diff.size else 0.0
    close = same_nan and bool(np.all(diff <= atol + rtol * np.abs(a64[mask])))
    return (worst if same_nan else float("inf")), close


def _session(model: Any, label: str, opt_level: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    options.log_severity_level = 3
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
    else:
        source = bytes(model) if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise VerificationError(f"onnxruntime cannot load the {label} model: {_first_line(exc)}") from None


def random_inputs(session, input_shapes: dict[str, tuple], seed: int = 0) -> tuple[dict, dict]:
    """Seeded random feeds for a session's inputs, and the shapes chosen for them.

    Example:
        >>> import onnx, onnxruntime as ort
        >>> m = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[N, 3, H, W] x) => (float[N, 3, H, W] y) { y = Relu(x) }''')
        >>> s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        >>> random_inputs(s, {})[1]
        {'x': (2, 3, 64, 64)}
    """
    rng = np.random.default_rng(seed)
    feeds, shapes = {}, {}
    unknown = set(input_shapes) - {i.name for i in session.get_inputs()}
    if unknown:
        names = ", ".join(i.name for i in session.get_inputs())
        raise ConfigError(f"--input-shape names unknown input(s) {', '.join(sorted(unknown))}; inputs: {names}")
    for value in session.get_inputs():
        shape = input_shapes.get(value.name)
        if shape is None:
            shape = tuple(d if isinstance(d, int) and d >= 0 else (SYMBOLIC_BATCH if k == 0 else SYMBOLIC_OTHER)
                          for k, d in enumerate(value.shape))
        dtype = _NUMPY.get(value.type)
        if dtype is None:
            raise VerificationError(f"input {value.name!r} has type {value.type}, which seinject cannot fill "
                                    "with random data; use --no-verify")
        check_input_budget(value.name, shape, np.dtype(dtype).itemsize)
        if np.dtype(dtype).kind == "f":
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[value.name] = np.zeros(shape, dtype=dtype)
        shapes[value.name] = tuple(int(d) for d in shape)
    return feeds, shapes


def _run(session, feeds: dict, label: str) -> list:
    try:
        return session.run(None, feeds)
    except Exception as exc:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in feeds.items())
        raise VerificationError(f"onnxruntime failed to run the {label} model on inputs {shapes}: "
                                f"{_first_line(exc)} (set shapes with --input-shape NAME:D0,D1,...)") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__
