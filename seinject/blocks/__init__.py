"""SE building blocks: the torch module (blocks.se) and the ONNX subgraph builder (blocks.onnx_se).

Loaded lazily, so that the ONNX builder does not import torch and the torch module does not import onnx.
"""

from typing import Any

__all__ = ["SqueezeExcite"]


def __getattr__(name: str) -> Any:
    if name == "SqueezeExcite":
        from ..torch.block import SqueezeExcite

        return SqueezeExcite
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
