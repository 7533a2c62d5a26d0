"""Shapes and element types of every value, by onnx.shape_inference on a weightless copy of the graph.

The copy keeps every node and the dims of every initializer but not their data (small
tensors, which shape inference may read as shape arguments, are kept whole), so it
works the same on a 100 MB ResNet-50 and on a model over protobuf's 2 GB limit.

Example:
    >>> import onnx.helper as h
    >>> from onnx import TensorProto
    >>> g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g",
    ...                  [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
    ...                  [h.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    >>> infer(h.make_model(g))["y"]
    ((None, 3, 8, 8), 1)
"""

from __future__ import annotations

import onnx

SMALL = 64  # elements: initializers up to this size are kept whole (shape arguments, axes, scalars)

# name -> (dims with None for unknown/symbolic, elem_type)
ShapeMap = dict


def _numel(tensor: onnx.TensorProto) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count


def skeleton(model: onnx.ModelProto, input_shapes: dict[str, tuple] | None = None) -> onnx.ModelProto:
    """The model without initializer data (dims kept), graph inputs fixed to input_shapes.

    Example:
        >>> import onnx.helper as h
        >>> m = h.make_model(h.make_graph([], "g", [], []))
        >>> len(skeleton(m).graph.node)
        0
    """
    out = onnx.ModelProto()
    out.ir_version = model.ir_version
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    graph = out.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    for tensor in model.graph.initializer:
        if _numel(tensor) <= SMALL and tensor.data_location != onnx.TensorProto.EXTERNAL:
            graph.initializer.append(tensor)
        else:
            graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    for value in graph.input:
        shape = (input_shapes or {}).get(value.name)
        if shape is not None and value.type.HasField("tensor_type"):
            dims = value.type.tensor_type.shape.dim
            del dims[:]
            for d in shape:
                dims.add(dim_value=int(d))
    return out


def infer(model: onnx.ModelProto, input_shapes: dict[str, tuple] | None = None) -> ShapeMap:
    """Shapes and element types of inputs, outputs, initializers and inferred values.

    Shape inference failures leave the shapes the model already declares.

    Example:
        >>> import onnx.helper as h
        >>> infer(h.make_model(h.make_graph([], "g", [], [])))
        {}
    """
    skel = skeleton(model, input_shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(skel, check_type=False, strict_mode=False)
    except Exception:  # inference is a convenience: fall back to declared shapes
        inferred = skel
    shapes: ShapeMap = {}
    for tensor in model.graph.initializer:
        shapes[tensor.name] = (tuple(tensor.dims), tensor.data_type)
    graph = inferred.graph
    for value in (*graph.value_info, *graph.output, *graph.input):
        entry = _entry(value)
        if entry is not None:
            shapes[value.name] = entry
    return shapes


def _entry(value: onnx.ValueInfoProto):
    if not value.type.HasField("tensor_type"):
        return None
    ttype = value.type.tensor_type
    if not ttype.HasField("shape"):
        return (None, ttype.elem_type)
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim)
    return (dims, ttype.elem_type)
