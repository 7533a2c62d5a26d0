"""The README's "Training" section: every python snippet runs, in order, in one namespace.

The namespace holds `model` (a small trained-from-nothing ResNet standing in for the user's
pretrained model), `pretrained_model()` (a fresh copy of it) and `loader` (a few random
batches). A snippet that starts with `# tested in tests/FILE.py` needs processes or ports;
each of its lines must then appear in that test file, which runs it.
"""

import copy
import functools
import re
from pathlib import Path

import pytest
import torch

from tests.models import resnet_tiny

ROOT = Path(__file__).resolve().parents[1]


def training_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Training\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_training_section_has_snippets():
    assert len(training_snippets()) >= 5


def test_every_training_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # torch.compile's default backend compiles C++ for a minute on a CPU; the graph is the same
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch.manual_seed(0)
    base = resnet_tiny()
    generator = torch.Generator().manual_seed(0)
    namespace = {
        "model": copy.deepcopy(base),
        "pretrained_model": lambda: copy.deepcopy(base),
        "loader": [(torch.randn(4, 3, 32, 32, generator=generator), torch.randint(0, 10, (4,), generator=generator))
                   for _ in range(3)],
    }
    ran = 0
    for snippet in training_snippets():
        first = snippet.splitlines()[0]
        if first.startswith("# tested in "):
            source = (ROOT / first.removeprefix("# tested in ").strip()).read_text(encoding="utf-8")
            missing = [line.strip() for line in snippet.splitlines()[1:] if line.strip() not in source]
            assert not missing, f"README lines not in {first}: {missing}"
            continue
        exec(compile(snippet, "README.md (Training)", "exec"), namespace)
        ran += 1
    assert ran >= 4
    assert any(p.requires_grad for p in namespace["m"].fc.parameters())
    assert not any(p.requires_grad for p in namespace["m"].conv1.parameters())
