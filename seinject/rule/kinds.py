"""The backend-neutral op vocabulary that rules are written in.

Both backends label every op with one of these kinds, so a YAML rule means the
same on a torch.fx graph and on an ONNX graph (nn.Conv2d, F.conv2d and ONNX Conv
are all "conv"; `+`, `+=`, torch.add, Tensor.add_ and ONNX Add are all "add").

Example:
    >>> "conv" in KINDS
    True
"""

from __future__ import annotations

KINDS = (
    "conv",      # convolution, any dimensionality, grouped/depthwise/transposed
    "norm",      # batch/group/layer/instance norm
    "act",       # element-wise activation (attr fn: relu, silu, ...)
    "add",       # element-wise addition (attr residual when it joins a branch and a shortcut)
    "mul",       # element-wise multiplication
    "concat",    # concatenation (attr channel_concat when along the channel dim)
    "pool",      # max/avg pooling, adaptive or not
    "linear",    # fully connected / Gemm / MatMul with weights
    "dropout",   # dropout, drop-path: identity at inference
    "identity",  # nn.Identity and friends
    "reshape",   # view/reshape/flatten/permute/transpose: changes layout
    "shape",     # reads a shape (x.size(), x.shape); not a feature map
    "se",        # an SE block already in the model
    "input",     # a graph input
    "other",     # anything else
)

# Kinds whose output has the layout and channel count of their first input.
PASS_THROUGH = frozenset({"norm", "act", "dropout", "identity", "pool", "se"})
# Kinds whose output is never a feature map that SE could scale.
NOT_DATA = frozenset({"shape"})
