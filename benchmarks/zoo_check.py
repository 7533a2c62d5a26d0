"""Hand check of every built-in rule on real torchvision/timm architectures (not part of the tests).

Needs an environment with torchvision and timm (see README, "Trying the rules on real
architectures"); builds each model with random weights (no downloads), applies every rule,
and prints sites found, max |Δ| at identity (eval and train), SE params and left-out parts.

    ../zoo/bin/python benchmarks/zoo_check.py [--models resnet50,densenet121] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import seinject  # noqa: E402

TORCHVISION = ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v2",
               "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf", "regnet_x_400mf",
               "densenet121", "inception_v3", "googlenet", "vgg16", "vgg16_bn", "convnext_tiny",
               "shufflenet_v2_x1_0", "mnasnet1_0"]
TIMM = ["resnet50", "efficientnet_b0", "convnext_tiny", "mobilenetv3_large_100", "regnety_002"]


def build(source: str, name: str):
    if source == "tv":
        import torchvision.models as tvm

        kwargs = {"aux_logits": False, "init_weights": True} if name in ("inception_v3", "googlenet") else {}
        return getattr(tvm, name)(weights=None, **kwargs)
    import timm

    return timm.create_model(name, pretrained=False)


def check(model, rule: str, x: torch.Tensor) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        new = seinject.apply(model, rule=rule)
        seconds = time.perf_counter() - start
    report = seinject.report(new)
    diffs = []
    for mode in (False, True):
        model.train(mode)
        new.train(mode)
        with torch.no_grad():
            torch.manual_seed(0)
            a = model(x)
            torch.manual_seed(0)
            b = new(x)
        a = a[0] if isinstance(a, tuple) else a
        b = b[0] if isinstance(b, tuple) else b
        diffs.append(float((a - b).abs().max()))
    model.eval()
    return {"sites": len(report.inserted), "skipped": len(report.skipped),
            "left_out": [p.name for p in report.left_out], "max_diff": max(diffs),
            "se_params": report.added_params, "seconds": round(seconds, 3),
            "same_class": type(new).__mro__[1] is type(model) or type(new) is type(model)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    wanted = set(filter(None, args.models.split(",")))
    results = {}
    for source, names in (("tv", TORCHVISION), ("timm", TIMM)):
        for name in names:
            key = f"{source}:{name}"
            if wanted and name not in wanted and key not in wanted:
                continue
            torch.manual_seed(0)
            model = build(source, name).eval()
            size = 299 if "inception" in name else 96
            x = torch.randn(2, 3, size, size)
            row = {}
            for rule in seinject.list_rules():
                try:
                    row[rule] = check(model, rule, x)
                except Exception as exc:  # report and go on: this is a survey
                    row[rule] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            results[key] = row
            cells = [f"{r}={v.get('sites', 'ERR')}" + ("" if v.get("max_diff", 1) == 0 else f"(Δ{v.get('max_diff', v.get('error'))})")
                     for r, v in row.items()]
            print(f"{key:28s} " + " ".join(cells), flush=True)
            left = sorted({p for v in row.values() for p in v.get("left_out", [])})
            if left:
                print(f"{'':28s} left out: {', '.join(left)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
