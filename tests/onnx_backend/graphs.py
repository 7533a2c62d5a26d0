"""Small ONNX graphs built in-repo (onnx.helper + numpy, seeded) for the ONNX tests and benchmark, and ORT helpers."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


class Builder:
    """Collects nodes and initializers; conv() adds a Conv with seeded weights."""

    def __init__(self, seed: int = 0):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value, name: str | None = None, dtype=np.float32) -> str:
        name = name or self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def conv(self, x: str, cin: int, cout: int, k: int = 3, rank: int = 2, stride: int = 1, groups: int = 1,
             name: str | None = None, bias: bool = True, weight: str | None = None) -> str:
        out = name or self.name("conv")
        if weight is None:
            scale = 1.0 / np.sqrt(cin // groups * k ** rank)
            weight = self.const(self.rng.standard_normal((cout, cin // groups) + (k,) * rank) * scale, f"{out}.weight")
        inputs = [x, weight] + ([self.const(self.rng.standard_normal(cout) * 0.1, f"{out}.bias")] if bias else [])
        self.nodes.append(helper.make_node("Conv", inputs, [out], name=out, kernel_shape=[k] * rank,
                                           pads=[k // 2] * (2 * rank), strides=[stride] * rank, group=groups))
        return out

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        out = name or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def model(self, inputs, outputs, opset: int = 17, ir_version: int | None = None) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "g", inputs, outputs, initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="seinject-tests")
        model.ir_version = ir_version or _ir_for(opset)
        return model


def _ir_for(opset: int) -> int:
    """An IR version that onnxruntime accepts for this opset."""
    return {11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}.get(opset, 10)


def tensor(name: str, shape, elem=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def residual_net(blocks: int = 2, channels: int = 8, rank: int = 2, opset: int = 17, dynamic: bool = True,
                 spatial: int = 8, act: str = "Relu") -> onnx.ModelProto:
    """stem conv → act → `blocks` basic residual blocks → global pool → flatten → Gemm.

        x ─ stem ─ act ─┬─ convA ─ act ─ convB ─┐
                        └──────────────────────(+)─ act ─ ...  (block i: nodes "b{i}.*")
    """
    b = Builder()
    h = b.op(act, [b.conv("x", 3, channels, rank=rank, name="stem")], name="stem.act")
    for i in range(blocks):
        y = b.op(act, [b.conv(h, channels, channels, rank=rank, name=f"b{i}.convA")], name=f"b{i}.actA")
        y = b.conv(y, channels, channels, rank=rank, name=f"b{i}.convB")
        h = b.op(act, [b.op("Add", [y, h], name=f"b{i}.add")], name=f"b{i}.act")
    pooled = b.op("GlobalAveragePool", [h], name="pool")
    flat = b.op("Flatten", [pooled], name="flatten", axis=1)
    b.op("Gemm", [flat, b.const(b.rng.standard_normal((10, channels)), "fc.weight"),
                  b.const(np.zeros(10), "fc.bias")], name="logits", transB=1)
    dims = ["N", 3] + (["S"] * rank if dynamic else [spatial] * rank)
    return b.model([tensor("x", dims)], [tensor("logits", ["N" if dynamic else 2, 10])], opset=opset)


def synthetic_resnet(blocks: int, channels: int = 4) -> onnx.ModelProto:
    """A long chain of residual blocks (5 nodes each) with shared 1×1 weights: graphs of any size, small files."""
    b = Builder()
    w = b.const(np.eye(channels).reshape(channels, channels, 1, 1) * 0.5, "w")
    h = b.op("Relu", [b.conv("x", channels, channels, k=1, weight=w, bias=False, name="stem")], name="stem.relu")
    for i in range(blocks):
        y = b.op("Relu", [b.conv(h, channels, channels, k=1, weight=w, bias=False, name=f"b{i}.c1")], name=f"b{i}.r1")
        y = b.conv(y, channels, channels, k=1, weight=w, bias=False, name=f"b{i}.c2")
        h = b.op("Relu", [b.op("Add", [y, h], name=f"b{i}.add")], name=f"b{i}.r2")
    return b.model([tensor("x", ["N", channels, "H", "W"])], [tensor(h, ["N", channels, "H", "W"])])


def text_model(body: str, opset: int = 17) -> onnx.ModelProto:
    """A model from ONNX text (onnx.parser), with the header filled in."""
    return onnx.parser.parse_model(f'<ir_version: {_ir_for(opset)}, opset_import: ["" : {opset}]>\n{body}')


def run(model, x: np.ndarray, level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC) -> list[np.ndarray]:
    """Outputs of a model (ModelProto or path) on x, its only input, in onnxruntime."""
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def max_diff(a, b, x) -> float:
    """Max |a(x) - b(x)| over all outputs."""
    return max(float(np.abs(p - q).max()) for p, q in zip(run(a, x), run(b, x)))
