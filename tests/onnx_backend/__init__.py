"""Tests of the ONNX backend (seinject.onnx) and of the `seinject onnx` command."""
