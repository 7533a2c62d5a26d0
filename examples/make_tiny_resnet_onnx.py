"""Make examples/tiny_resnet.onnx: tests.models.resnet_tiny (seed 0, eval mode) exported to ONNX.

Usage:
    .venv/bin/python examples/make_tiny_resnet_onnx.py          # writes examples/tiny_resnet.onnx
    seinject onnx examples/tiny_resnet.onnx /tmp/tiny_se.onnx   # then try the command on it

The model: 4 residual stages of one BasicBlock each (8, 16, 32, 64 channels), input
x: N×3×H×W (batch and spatial size dynamic), output logits: N×10. BatchNorm is folded
into the convs by the exporter, as in any eval-mode export. About 80k parameters.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import torch  # noqa: E402

from tests.models import resnet_tiny  # noqa: E402

OUT = Path(__file__).resolve().parent / "tiny_resnet.onnx"


def main() -> None:
    torch.manual_seed(0)
    model = resnet_tiny().eval()
    x = torch.randn(1, 3, 32, 32)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; its names are the clearest
        torch.onnx.export(model, (x,), str(OUT), dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}, "logits": {0: "N"}})
    exported = onnx.load(OUT)
    exported.producer_name = "seinject examples/make_tiny_resnet_onnx.py"
    exported.doc_string = "tests.models.resnet_tiny (torch.manual_seed(0)), exported for the seinject examples"
    onnx.checker.check_model(exported, full_check=True)
    onnx.save(exported, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {len(exported.graph.node)} nodes)")


if __name__ == "__main__":
    main()
