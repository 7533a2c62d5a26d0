"""seinject.onnx: insert SE blocks into ONNX models, with the same YAML rules as the torch backend.

Needs the `onnx` extra (onnx, onnxruntime, numpy); `import seinject` alone does not import onnx.

Example:
    >>> import onnx, seinject.onnx
    >>> model = onnx.parser.parse_model('''
    ...   <ir_version: 8, opset_import: ["" : 17]>
    ...   g (float[N, 2, 4, 4] x) => (float[N, 2, 4, 4] y) <float[2, 2, 1, 1] w = {1.0, 0.5, 0.5, 1.0}> {
    ...     c = Conv(x, w)
    ...     a = Add(c, x)
    ...     y = Relu(a)
    ...   }''')
    >>> new = seinject.onnx.apply(model, rule="after_residual", ratio=4)
    >>> sorted({n.op_type for n in new.graph.node} - {n.op_type for n in model.graph.node})
    ['Clip', 'GlobalAveragePool', 'IsNaN', 'Mul', 'Sigmoid', 'Where']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..graph.report import ApplyReport, Plan

__all__ = ["apply", "plan", "apply_file", "verify", "Plan", "ApplyReport"]


def plan(model: Any, rule: Any = "after_residual", *, input_shapes: "dict | str | None" = None,
         **overrides: Any) -> Plan:
    """Dry run: where `rule` would put SE blocks in an ONNX model (a path, bytes, ModelProto,
    onnx_graphsurgeon.Graph or onnx_ir.Model); nothing is changed or written.

    input_shapes ({input name: dims}; "auto": none given) fixes symbolic dims for shape
    inference, the others taking 2 for the batch dim and 64 otherwise, as verification
    does; MACs need the spatial size (without input_shapes a site's `macs` is None where it is
    symbolic). Overrides are the rule's `se:` settings and filters, as in apply.

    Example:
        >>> import onnx
        >>> model = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[N, 2, 8, 8] x) => (float[N, 2, 8, 8] y) <float[2, 2, 1, 1] w = {1.0, 0.5, 0.5, 1.0}> {
        ...     c = Conv(x, w)
        ...     y = Relu(c)
        ...   }''')
        >>> p = plan(model, rule="conv_block")
        >>> [(s.name, s.channels, s.hidden) for s in p], p.added_macs
        ([('y', 2, 1)], 260)
    """
    from .api import plan as _plan

    return _plan(model, rule, input_shapes=input_shapes, **overrides)


def apply(model: Any, rule: Any = "after_residual", *, inplace: bool = False, strict: bool = False,
          seed: int = 0, input_shapes: dict | None = None, verify: bool = False,
          return_report: bool = False, **overrides: Any) -> Any:
    """Insert SE blocks where `rule` matches; returns the rewritten model as the type it was given
    (a ModelProto for a ModelProto or a path, bytes for bytes, a Graph for an onnx_graphsurgeon
    Graph, an onnx_ir Model for one). A ModelProto is copied unless inplace=True.

    Keyword overrides change the rule's `se:` settings (ratio, divisor, min_hidden, act,
    gate, init) and filters (include, exclude, stages, first, last, every, offset,
    min_channels, max_channels, outside_residual). seed drives init="random".
    strict=True raises NoSitesError when nothing is inserted (else a SEInjectWarning).
    verify=True runs both models in onnxruntime and fails on any difference (identity init).
    return_report=True returns (model, ApplyReport).

    Example:
        >>> import onnx, numpy as np, onnxruntime as ort
        >>> model = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[N, 2, H, W] x) => (float[N, 2, H, W] y) <float[2, 2, 1, 1] w = {1.0, 0.5, 0.5, 1.0}> {
        ...     c = Conv(x, w)
        ...     y = Relu(c)
        ...   }''')
        >>> new, report = apply(model, rule="conv_block", ratio=4, return_report=True)
        >>> [block.module for block in report], report.added_params
        (['seinject/y'], 7)
        >>> x = np.random.randn(2, 2, 5, 7).astype(np.float32)
        >>> def run(m):
        ...     session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        ...     return session.run(None, {"x": x})[0]
        >>> float(np.abs(run(new) - run(model)).max())
        0.0
    """
    from .api import apply as _apply

    return _apply(model, rule, inplace=inplace, strict=strict, seed=seed, input_shapes=input_shapes,
                  verify=verify, return_report=return_report, **overrides)


def apply_file(src: "str | Path", dst: "str | Path", rule: Any = "after_residual", *, verify: bool = True,
               overwrite: bool = False, strict: bool = False, seed: int = 0,
               input_shapes: dict | None = None, atol: float = 1e-6, rtol: float = 1e-5,
               opt_level: str = "basic", external_data: bool | None = None, **overrides: Any) -> ApplyReport:
    """Rewrite the file `src` into `dst` as the `seinject onnx` command does; returns the report.

    src is never modified. dst is written to a temporary file beside it, checked
    (onnx.checker full_check, onnxruntime old vs new on random inputs, unless
    verify=False) and only then moved into place; on any failure nothing is left behind.
    dst equal to src needs overwrite=True. External data (inputs that have it, or over
    ~1.8 GB of weights, or external_data=True) goes to a new file "<dst name>.data".
    Nothing matched: no file written (NoSitesError when strict=True).

    Example:
        >>> import onnx, tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp())
        >>> onnx.save(onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[N, 2, 8, 8] x) => (float[N, 2, 8, 8] y) <float[2, 2, 1, 1] w = {1.0, 0.5, 0.5, 1.0}> {
        ...     c = Conv(x, w)
        ...     y = Relu(c)
        ...   }'''), folder / "in.onnx")
        >>> report = apply_file(folder / "in.onnx", folder / "out.onnx", rule="conv_block")
        >>> report.verified, report.max_abs_diff, sorted(p.name for p in folder.iterdir())
        (True, 0.0, ['in.onnx', 'out.onnx'])
    """
    from .api import apply_file as _apply_file

    return _apply_file(src, dst, rule, verify=verify, overwrite=overwrite, strict=strict, seed=seed,
                       input_shapes=input_shapes, atol=atol, rtol=rtol, opt_level=opt_level,
                       external_data=external_data, **overrides)


def verify(original: Any, rewritten: Any, input_shapes: dict | None = None, *, atol: float = 1e-6,
           rtol: float = 1e-5, seed: int = 0) -> float:
    """Max |rewritten - original| over all outputs in onnxruntime on random inputs (paths or ModelProtos);
    raises VerificationError when it exceeds atol + rtol·|original|.

    Example:
        >>> import onnx
        >>> m = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
        ...   g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }''')
        >>> verify(m, m)
        0.0
    """
    from .verification import compare

    return compare(original, rewritten, input_shapes, atol=atol, rtol=rtol, seed=seed).max_abs_diff
