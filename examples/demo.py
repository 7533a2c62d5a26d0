"""End-to-end demo on a bundled model: plan, apply, check identity, fine-tune a step, remove.

Run with `bash scripts/demo.sh` (sets up .venv first). Uses the in-repo ResNet-50
(torchvision's structure, random weights standing in for a checkpoint): no downloads.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import seinject  # noqa: E402
from tests.models import resnet50  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    model = resnet50().eval()
    checkpoint = Path(tempfile.mkdtemp()) / "resnet50.pt"
    torch.save(model.state_dict(), checkpoint)

    print("== plan: standard SE (SE-ResNet-50), stage 4 only")
    print(seinject.plan(model, rule="residual_branch", ratio=16, divisor=8, stages=[4]))

    print("\n== apply: standard SE on every block, the paper's settings")
    se_model = seinject.apply(model, rule="residual_branch", ratio=16, divisor=8)
    print(seinject.report(se_model))

    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = (se_model(x) - model(x)).abs().max().item()
    print(f"\nmax |SE model - original| at init: {diff}")

    missing = se_model.load_state_dict(torch.load(checkpoint), strict=False)
    print(f"original checkpoint loads: {len(missing.missing_keys)} SE keys missing, "
          f"{len(missing.unexpected_keys)} unexpected")

    se_params = [p for n, p in se_model.named_parameters() if ".se." in n]
    optimizer = torch.optim.SGD(se_params, lr=0.1)
    se_model.train()
    loss = torch.nn.functional.cross_entropy(se_model(x), torch.tensor([1, 2]))
    loss.backward()
    optimizer.step()
    print(f"one fine-tuning step on the SE parameters only: loss {loss.item():.4f}")

    restored = seinject.remove(seinject.apply(model, rule="after_residual"))
    same = list(restored.state_dict()) == list(model.state_dict())
    print(f"remove() gives back the original state_dict keys: {same}")


if __name__ == "__main__":
    main()
