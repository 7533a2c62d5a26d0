"""Shared checks of the hostile-input corpus: every case runs the CLI or the Python API on bad input
and asserts the exit code or exception type, the message, that the input files are byte-identical
afterwards and that nothing was left behind in the folder.

Example (inside a test):
    def test_something(folder, cli):
        code, err = cli("onnx", str(folder.path / "in.onnx"), str(folder.path / "out.onnx"), "--every", "0")
        assert code == 2 and "every" in err
        folder.assert_untouched()
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from seinject.cli import main


def _digest(folder: Path) -> dict[str, str]:
    """relative path → sha256 of every regular file below folder (hidden files included)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


class Folder:
    """A test folder whose content is recorded by `snapshot()` and compared by `assert_untouched()`."""

    def __init__(self, path: Path):
        self.path = path
        self.before: dict[str, str] = {}

    def snapshot(self) -> "Folder":
        self.before = _digest(self.path)
        return self

    def assert_untouched(self, created: tuple[str, ...] = ()) -> None:
        """Every file recorded is byte-identical; the only new files are `created` (relative names)."""
        after = _digest(self.path)
        changed = sorted(k for k, v in self.before.items() if after.get(k) != v)
        new = sorted(set(after) - set(self.before) - set(created))
        assert not changed, f"input files changed or removed: {changed}"
        assert not new, f"files left behind: {new}"


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    """The test's own folder; call .snapshot() once the inputs are in place."""
    return Folder(tmp_path)


@pytest.fixture
def cli(capsys):
    """Run the seinject command in-process: returns (exit code, stderr)."""

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        return code, capsys.readouterr().err

    return run


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every hostile-input test module runs with one torch thread (tests/conftest.py)."""
    yield