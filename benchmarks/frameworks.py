"""Model code of other frameworks, as a user brings it: Hugging Face vision models and ultralytics YOLO.

Builds each model from the configuration its framework bundles, with random weights (nothing is
downloaded): Hugging Face ResNet, ConvNeXt, MobileNetV1/V2 (default configs: TF padding on),
EfficientNet, RegNet and PP-LCNet (transformers' `*Config()` classes), ultralytics YOLOv8n and
YOLO11n (their `*.yaml`). For each model and built-in rule it records:

- `plan` without example_inputs: sites, and parts left out (what a user gets without them);
- `apply` with example_inputs (one image at the framework's size): blocks inserted, sites that
  already have SE (the model's own channel attention), other skips, the stages the blocks are
  in, parts left out, and max |Δ| of every output in eval mode against the plain model (0 is
  identity kept);
- ultralytics only: the framework's own `fuse()` (BatchNorm folded into convs, every Conv's
  forward switched to forward_fuse) on the rewritten model: how many blocks still run, and max |Δ|
  against the plain model fused the same way.

    ../zoo/bin/python benchmarks/frameworks.py [--models hf_resnet,yolov8n] [--rules after_concat]
        [--json docs/coverage/frameworks.json] [--md docs/coverage/frameworks.md]

Needs transformers and ultralytics (the zoo environment in the README); they are never dependencies of
seinject. A row that fails records its error; the script then exits with status 1.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import platform
import sys
import time
import traceback
import warnings

import torch

import seinject

RULES = ("after_residual", "conv_block", "inverted_residual", "after_concat")


def hugging_face(name: str):
    import transformers as hf

    config, model = {
        "hf_resnet": ("ResNetConfig", "ResNetForImageClassification"),
        "hf_convnext": ("ConvNextConfig", "ConvNextForImageClassification"),
        "hf_mobilenet_v1": ("MobileNetV1Config", "MobileNetV1ForImageClassification"),
        "hf_mobilenet_v2": ("MobileNetV2Config", "MobileNetV2ForImageClassification"),
        "hf_efficientnet": ("EfficientNetConfig", "EfficientNetForImageClassification"),
        "hf_regnet": ("RegNetConfig", "RegNetForImageClassification"),
        "hf_pplcnet": ("PPLCNetConfig", "PPLCNetForImageClassification"),
    }[name]
    cfg = getattr(hf, config)()
    size = getattr(cfg, "image_size", 224)
    return getattr(hf, model)(cfg).eval(), torch.randn(1, getattr(cfg, "num_channels", 3), size, size)


def ultralytics(name: str):
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(f"{name}.yaml", verbose=False).eval(), torch.rand(1, 3, 320, 320)


MODELS = {name: hugging_face for name in ("hf_resnet", "hf_convnext", "hf_mobilenet_v1", "hf_mobilenet_v2",
                                          "hf_efficientnet", "hf_regnet", "hf_pplcnet")}
MODELS.update({"yolov8n": ultralytics, "yolo11n": ultralytics})


def tensors(output) -> list[torch.Tensor]:
    leaves, _ = torch.utils._pytree.tree_flatten(output)
    return [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]


def max_diff(a, b) -> float:
    pairs = list(zip(tensors(a), tensors(b)))
    if len(tensors(a)) != len(tensors(b)) or any(x.shape != y.shape for x, y in pairs):
        return float("inf")
    return max(((x - y).abs().max().item() for x, y in pairs if x.numel()), default=0.0)


def run_counting(model, x):
    """Outputs of one eval forward and how many seinject blocks ran in it."""
    ran = []
    handles = [m.register_forward_hook(lambda *a: ran.append(1)) for _, m in seinject.se_modules(model)]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return out, len(ran)


def check(name: str, rule: str) -> dict:
    torch.manual_seed(0)
    model, x = MODELS[name](name)
    row = {"model": name, "rule": rule}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bare = seinject.plan(model, rule)
        row["sites_without_inputs"] = len(bare.sites)
        row["left_out_without_inputs"] = len(bare.left_out)
        with torch.no_grad():
            reference = model(x)
        start = time.perf_counter()
        new = seinject.apply(model, rule, example_inputs=x, verify=False)
        row["apply_seconds"] = round(time.perf_counter() - start, 2)
    report = seinject.report(new)
    inserted = report.inserted if report is not None else []
    skipped = report.skipped if report is not None else []
    row["blocks"] = len(inserted)
    row["already_se"] = sum(s.reason == "already has SE" for s in skipped)
    row["other_skips"] = dict(collections.Counter(s.reason.split(":")[0][:80] for s in skipped
                                                  if s.reason != "already has SE"))
    row["stages"] = sorted({b.site.stage for b in inserted}, key=lambda s: (s is None, s))
    row["left_out"] = [part.name for part in (report.left_out if report is not None else [])]
    out, ran = run_counting(new, x)
    row["max_abs_diff"] = max_diff(out, reference)
    row["blocks_ran"] = ran
    if hasattr(model, "fuse") and name.startswith("yolo"):
        fused_plain = copy.deepcopy(model).fuse(verbose=False)
        fused = copy.deepcopy(new).fuse(verbose=False)
        with torch.no_grad():
            plain_out = fused_plain(x)
        fused_out, fused_ran = run_counting(fused, x)
        row["fused_blocks_ran"] = fused_ran
        row["fused_max_abs_diff"] = max_diff(fused_out, plain_out)
    return row


def compact(rows: list[dict]) -> str:
    """One line per model: blocks per rule (sites without example_inputs in brackets, "already has SE"
    skips after a +), stages seen, worst max |Δ|, blocks running after ultralytics' fuse."""
    models = list(dict.fromkeys(row["model"] for row in rows))
    rules = list(dict.fromkeys(row["rule"] for row in rows))
    lines = ["| model | " + " | ".join(rules) + " | stages | max \\|Δ\\| | after fuse |",
             "|---|" + "---:|" * len(rules) + "---|---:|---|"]
    for model in models:
        mine = {row["rule"]: row for row in rows if row["model"] == model}
        if any("error" in row for row in mine.values()):
            lines.append(f"| {model} | error |")
            continue
        cells = []
        for rule in rules:
            row = mine[rule]
            cell = f"{row['blocks']} ({row['sites_without_inputs']})"
            cells.append(cell + (f" +{row['already_se']} SE" if row["already_se"] else ""))
        stages = sorted({s for row in mine.values() for s in row["stages"]}, key=lambda s: (s is None, s))
        worst = max(row["max_abs_diff"] for row in mine.values())
        fused = [row for row in mine.values() if "fused_blocks_ran" in row]
        fuse = (f"{sum(r['fused_blocks_ran'] for r in fused)}/{sum(r['blocks'] for r in fused)}" if fused else "n/a")
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {','.join(map(str, stages)) or '–'} | {worst:g} | {fuse} |")
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict], versions: dict) -> str:
    lines = ["# Framework models: Hugging Face and ultralytics", "",
             "Made by `../zoo/bin/python benchmarks/frameworks.py --md docs/coverage/frameworks.md "
             "--json docs/coverage/frameworks.json` (" + ", ".join(f"{k} {v}" for k, v in versions.items()) + "; "
             "random weights, models built from their frameworks' bundled configs). Blocks, skips, stages and "
             "identity are with `example_inputs` (one image: 224×224 for Hugging Face, 320×320 for YOLO); "
             "*no inputs* gives the sites `plan` finds without them. *fuse* is ultralytics' own "
             "`model.fuse()` on the rewritten model: blocks that still run / blocks, and max |Δ| against the "
             "plain model fused the same way.", "",
             "Per model: blocks per rule with example_inputs (in brackets: sites without them; +N SE: sites "
             "skipped as already having SE), the stages the blocks are in, the largest max |Δ|, and blocks "
             "that still run after ultralytics' fuse() / blocks.", "", compact(rows), "Per model and rule:", "",
             "| model | rule | blocks | no inputs | already SE | stages | left out | max \\|Δ\\| | fuse | other skips |",
             "|---|---|---:|---:|---:|---|---|---:|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['rule']} | error: {row['error'][:120]} | | | | | | | |")
            continue
        stages = ",".join("?" if s is None else str(s) for s in row["stages"]) or "–"
        fuse = (f"{row['fused_blocks_ran']}/{row['blocks']}, {row['fused_max_abs_diff']:.1e}"
                if "fused_blocks_ran" in row else "n/a")
        skips = "; ".join(f"{k} ({v})" for k, v in row["other_skips"].items()) or "–"
        lines.append(f"| {row['model']} | {row['rule']} | {row['blocks']} | {row['sites_without_inputs']} | "
                     f"{row['already_se']} | {stages} | {len(row['left_out']) or '–'} | {row['max_abs_diff']:.1e} | "
                     f"{fuse} | {skips} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    parser.add_argument("--md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        for rule in args.rules.split(","):
            try:
                row = check(name, rule)
            except Exception as exc:  # recorded, never worked around
                row = {"model": name, "rule": rule, "error": f"{type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc()}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "traceback"}), flush=True)
    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for package in ("transformers", "ultralytics"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            pass
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"versions": versions, "rows": rows}, handle, indent=1)
    if args.md:
        with open(args.md, "w") as handle:
            handle.write(markdown(rows, versions))
    bad = [r for r in rows if "error" in r or r.get("max_abs_diff", 0) != 0 or r.get("blocks_ran", 0) != r.get("blocks")
           or r.get("fused_blocks_ran", r.get("blocks")) != r.get("blocks")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
