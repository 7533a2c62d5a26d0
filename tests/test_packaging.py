"""Packaging: the wheel ships the built-in rules; importing seinject stays light."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_the_package_and_every_builtin_rule(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path), str(ROOT)], check=True)
    wheel = next(tmp_path.glob("seinject-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    rules = sorted(p.name for p in (ROOT / "rules").glob("*.yaml"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("seinject/rules/")) == rules
    assert "seinject/__init__.py" in names and "seinject/torch/block.py" in names and "seinject/onnx/block.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "seinject = seinject.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_import_loads_neither_torch_nor_onnx():
    code = "import sys, seinject; print(sorted(m for m in ('torch', 'onnx', 'networkx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
