"""Test configuration: makes `tests.models` and `tests.helpers` importable from any directory, and
the `one_thread` fixture."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module: small convs and steps run several times faster than with
    two threads spinning against each other on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
