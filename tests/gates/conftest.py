"""Fixtures for the gate tests: the ONNX exports of the fixture models (shared with tests/onnx_backend)."""

from tests.onnx_backend.conftest import exported  # noqa: F401
