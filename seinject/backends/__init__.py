"""Backends: turn a model into a GraphView and splice SE blocks into it (torch.fx, ONNX)."""
