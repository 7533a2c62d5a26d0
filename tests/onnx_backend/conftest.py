"""Session fixtures for the ONNX tests: each fixture model is exported once per exporter per session."""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
except ImportError:  # the onnx extra is not installed: nothing here can run
    collect_ignore_glob = ["test_*.py"]


def export(name: str, exporter: str, folder: Path, dynamic: bool = False, opset: int | None = None) -> Path:
    """Export tests.models.ALL_FIXTURES[name] in eval mode with torch.onnx.export (dynamo True/False)."""
    import torch

    from tests.models import ALL_FIXTURES

    builder, shape = ALL_FIXTURES[name]
    torch.manual_seed(0)
    model = builder().eval()
    x = torch.randn(*shape)
    path = folder / f"{name}-{exporter}{'-dyn' if dynamic else ''}{opset or ''}.onnx"
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            axes = {"x": {0: "N", **{d: f"S{d}" for d in range(2, len(shape))}}} if dynamic else None
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset or 17,
                              input_names=["x"], output_names=["y"], dynamic_axes=axes)
        else:
            dims = None
            if dynamic:
                batch = torch.export.Dim("N", min=1, max=64)
                dims = ({0: batch, **{d: torch.export.Dim(f"S{d}", min=16, max=512) for d in range(2, len(shape))}},)
            torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=dims,
                              **({"opset_version": opset} if opset else {}))
    return path


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(name, exporter="legacy"|"dynamo", dynamic=False, opset=None) → path, cached per session."""
    folder = tmp_path_factory.mktemp("exports")
    cache: dict[tuple, Path] = {}

    def get(name: str, exporter: str = "legacy", dynamic: bool = False, opset: int | None = None) -> Path:
        key = (name, exporter, dynamic, opset)
        if exporter == "dynamo":
            pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
        if key not in cache:
            cache[key] = export(name, exporter, folder, dynamic, opset)
        return cache[key]

    return get
