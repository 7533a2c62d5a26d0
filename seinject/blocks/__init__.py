"""SE building blocks: the torch module (the ONNX subgraph builder lives beside it)."""

from .se import SqueezeExcite

__all__ = ["SqueezeExcite"]
