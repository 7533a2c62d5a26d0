"""End-to-end demo on a bundled model: plan, apply, check identity, fine-tune, save and load the SE weights, remove.

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

    # frozen norm layers stay in eval mode: the SE weights are all that training changes
    print(f"\n== fine-tune the SE blocks only: {seinject.mark_trainable(se_model, freeze_norm_stats=True)}")
    optimizer = torch.optim.AdamW([p for _, p in seinject.se_parameters(se_model)], lr=1e-2)
    se_model.train()
    for step in range(2):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(se_model(x), torch.tensor([1, 2]))
        loss.backward()
        optimizer.step()
        print(f"step {step + 1}: loss {loss.item():.4f}")

    se_file = checkpoint.with_name("se.safetensors")
    seinject.save(se_model, se_file)
    fresh = resnet50()
    fresh.load_state_dict(torch.load(checkpoint))
    reloaded = seinject.load(fresh, se_file).eval()
    se_model.eval()
    with torch.no_grad():
        same_outputs = torch.equal(reloaded(x), se_model(x))
    print(f"saved {se_file.stat().st_size / 1e6:.1f} MB of SE weights and the rule; loaded onto a fresh "
          f"ResNet-50: outputs equal: {same_outputs}")

    print()
    restored = seinject.remove(seinject.apply(model, rule="after_residual"))
    same = list(restored.state_dict()) == list(model.state_dict())
    print(f"remove() gives back the original state_dict keys: {same}")


if __name__ == "__main__":
    main()
