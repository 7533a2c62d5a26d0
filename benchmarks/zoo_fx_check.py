"""Hand check that torchvision's fx tools work on rewritten torchvision models (not part of the tests).

Needs an environment with torchvision (see README, "Trying the rules on real architectures").
For each model: apply a rule, then torchvision's `create_feature_extractor` on the rewritten
model, and compare each returned feature map with the same extractor on the original
(blocks at identity: equal) and after perturbing every SE block (the SE blocks are in the
extracted graph: the features change).

    ../zoo/bin/python benchmarks/zoo_fx_check.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import seinject  # noqa: E402
from seinject.blocks import SqueezeExcite  # noqa: E402

CASES = [("resnet50", "residual_branch", {"layer2": "c3", "layer4": "c5"}),
         ("mobilenet_v3_large", "inverted_residual", {"features.6": "p3", "features.16": "p5"}),
         ("efficientnet_b0", "after_residual", {"features.4": "p3", "features.7": "p5"}),
         ("convnext_tiny", "residual_branch", {"features.3": "p3", "features.7": "p5"}),
         ("vgg16_bn", "conv_block", {"features.23": "p4", "features.43": "p5"})]


def main() -> int:
    import torchvision.models as tvm
    from torchvision.models.feature_extraction import create_feature_extractor

    failures = 0
    x = torch.randn(2, 3, 96, 96)
    for name, rule, nodes in CASES:
        torch.manual_seed(0)
        original = getattr(tvm, name)(weights=None).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rewritten = seinject.apply(original, rule=rule).eval()
        blocks = len(seinject.report(rewritten))
        with torch.no_grad():
            want = create_feature_extractor(original, nodes)(x)
            got = create_feature_extractor(rewritten, nodes)(x)
            same = all(torch.equal(got[k], want[k]) for k in nodes.values())
            for module in rewritten.modules():
                if isinstance(module, SqueezeExcite):
                    module.fc2.bias.fill_(1.0)
            moved = create_feature_extractor(rewritten, nodes)(x)
            changed = any(not torch.equal(moved[k], want[k]) for k in nodes.values())
        ok = same and changed and blocks > 0
        failures += not ok
        print(f"tv:{name:<20} {rule:<18} blocks={blocks:<3} features equal at identity: {same}; "
              f"change when SE moves: {changed}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
