"""Hand check of seinject on torchvision's detection and segmentation models (not part of the tests).

Builds Faster R-CNN, RetinaNet and Mask R-CNN (ResNet-50 FPN) and FCN and DeepLabV3 (ResNet-50)
with random weights (weights=None, weights_backbone=None: nothing is downloaded), puts SE blocks
into the backbone with each rule, and checks on the WHOLE model, per (model, rule, target):

- sites inserted, parts left out, and the time `seinject.apply` takes (with `example_inputs`, so
  it includes apply's own verification runs of the target); for the whole model also `apply`
  without `example_inputs` on the model as built and never run (torchvision's MultiScaleRoIAlign
  sets `self.scales` on its first forward: tracing must not leave fx proxies there);
- eval mode: the whole model's outputs on a fixed input (detection: boxes, scores, labels, masks;
  segmentation: 'out' and 'aux') and the backbone's feature dict, compared with torch.equal to the
  plain model's: max |Δ| must be exactly 0;
- train mode, same seeds and the same BatchNorm state: the detection loss dict (segmentation:
  the outputs and torchvision's reference loss, CE(out) + 0.5 CE(aux)) must equal the plain
  model's, and so must every buffer the two share after that forward (BatchNorm running stats);
- fine-tuning: `seinject.mark_trainable` on the rewritten model, backward of the summed loss
  (every SE block's fc2 must get a non-zero gradient; how many blocks have a live fc1 layer, so that
  fc2.weight and later fc1 learn too, is recorded), one SGD step (eval outputs must change), then
  `seinject.save` of the rewritten target and `seinject.load` into a plain copy that took the same
  train-mode forward (so that its BatchNorm statistics moved alike): eval outputs must equal the
  trained model's exactly.

Targets: detection `backbone.body` (the ResNet, an IntermediateLayerGetter returning an
OrderedDict), `backbone` (BackboneWithFPN: body + FPN) and the whole detector (``<model>``);
segmentation `backbone` and the whole model. A target other than the whole model is rewritten
the way a user would: ``model.backbone.body = seinject.apply(model.backbone.body, rule=...,
example_inputs=...)``. Detection models are checked twice: as torchvision builds them without
weights (BatchNorm2d, every layer trainable) and as it builds them for pretrained weights
(``+frozen``: FrozenBatchNorm2d in the body, conv1 and layer1 frozen; random values here), the
layout a user fine-tunes; `--full` runs every rule on every target of both.

Inputs are small (detection: min_size = max_size = 128, one 128x128 image, at most 100-200 proposals
and 10 detections; segmentation: 2x3x64x64, two images because DeepLabV3's pooling branch has a
BatchNorm on a 1x1 map). Runtime on this 2-core CPU: the default run (27 rows) about 4 minutes
(223 s measured while other jobs shared the machine), `--quick` (after_residual, no +frozen, no
fine-tuning checks) about a minute. Torch runs one thread by default (`--threads`): on the shared
2-core machine two threads made a ResNet-50 forward six times slower.

    ../zoo/bin/python benchmarks/detection_check.py [--models fasterrcnn_resnet50_fpn,fcn_resnet50]
        [--rules after_residual,residual_branch] [--quick | --full] [--no-frozen] [--threads 1]
        [--json out.json] [--md docs/coverage/detection.md]

Anything that fails is recorded in its row (error with traceback in the JSON) and makes the script
exit with status 1; nothing is worked around.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import tempfile
import time
import traceback
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import seinject  # noqa: E402

DETECTION = ["fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn", "maskrcnn_resnet50_fpn"]
SEGMENTATION = ["fcn_resnet50", "deeplabv3_resnet50"]
RULES = ["after_residual", "residual_branch"]
WHOLE = "<model>"
DET_SIZE = 128
SEG_SIZE = 64
DETECTIONS = 10


# ---------------------------------------------------------------- models and inputs

def build(name: str, frozen: bool) -> nn.Module:
    """The torchvision model with random weights; frozen=True: the backbone layout torchvision builds
    when pretrained weights are given (FrozenBatchNorm2d, trainable_backbone_layers=3)."""
    torch.manual_seed(0)
    if name in DETECTION:
        from torchvision.models import detection

        kwargs = {"min_size": DET_SIZE, "max_size": DET_SIZE}
        # random weights score about 1/91 (softmax) or 0.01 (RetinaNet's prior): keep every detection,
        # but fewer proposals and detections than the defaults (1000-2000 proposals, 100 detections,
        # 512 sampled RoIs), so that the heads do not dominate the run time on a CPU
        if name.startswith("retinanet"):
            kwargs.update(score_thresh=0.0, topk_candidates=100, detections_per_img=DETECTIONS)
        else:
            kwargs.update(box_score_thresh=0.0, box_detections_per_img=DETECTIONS, box_batch_size_per_image=64,
                          rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=200,
                          rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=100)
        model = getattr(detection, name)(weights=None, weights_backbone=None, **kwargs)
        if frozen:
            _as_pretrained_layout(model.backbone.body)
        return model.eval()
    from torchvision.models import segmentation

    return getattr(segmentation, name)(weights=None, weights_backbone=None, aux_loss=True).eval()


def _as_pretrained_layout(body: nn.Module) -> None:
    """What torchvision's detection builders do when weights are given: FrozenBatchNorm2d instead of
    BatchNorm2d (same statistics) and only layer2-4 trainable (trainable_backbone_layers=3)."""
    from torchvision.ops import FrozenBatchNorm2d

    for parent in list(body.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, key).copy_(getattr(child, key).detach())
                setattr(parent, child_name, frozen)
    for param_name, param in body.named_parameters():
        if not param_name.startswith(("layer2", "layer3", "layer4")):
            param.requires_grad_(False)


def inputs(name: str):
    """(eval args, train args, the train targets or None, the backbone's input) for the model."""
    gen = torch.Generator().manual_seed(1)
    if name in DETECTION:
        image = torch.rand(3, DET_SIZE, DET_SIZE, generator=gen)
        boxes = torch.tensor([[20.0, 30.0, 120.0, 140.0], [60.0, 50.0, 200.0, 180.0]])
        target = {"boxes": boxes, "labels": torch.tensor([1, 5])}
        if name.startswith("maskrcnn"):
            masks = torch.zeros(2, DET_SIZE, DET_SIZE, dtype=torch.uint8)
            for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
                masks[i, y0:y1, x0:x1] = 1
            target["masks"] = masks
        return ([image],), ([image], [target]), None, None
    x = torch.randn(2, 3, SEG_SIZE, SEG_SIZE, generator=gen)
    labels = torch.randint(0, 21, (2, SEG_SIZE, SEG_SIZE), generator=gen)
    return (x,), (x,), labels, x


def backbone_input(model: nn.Module, name: str, eval_args) -> torch.Tensor:
    """What the backbone sees: for detection the transformed (normalised, resized, padded) batch."""
    if name in DETECTION:
        with torch.no_grad():
            images, _ = model.transform(eval_args[0])
        return images.tensors
    return eval_args[0]


# ---------------------------------------------------------------- comparisons

def tensors(result) -> "OrderedDict[str, torch.Tensor]":
    """Every tensor of a (nested) output, keyed by its path."""
    found: "OrderedDict[str, torch.Tensor]" = OrderedDict()

    def walk(value, key):
        if isinstance(value, torch.Tensor):
            found[key] = value.detach()
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")

    walk(result, "")
    return found


def max_diff(a: "OrderedDict[str, torch.Tensor]", b: "OrderedDict[str, torch.Tensor]") -> tuple[float, bool, str]:
    """(max |Δ| over all entries, all torch.equal, the first entry that differs or '')."""
    if list(a) != list(b):
        return math.inf, False, f"keys differ: {list(a)[:6]} vs {list(b)[:6]}"
    worst, first = 0.0, ""
    for key in a:
        x, y = a[key], b[key]
        if x.shape != y.shape or x.dtype != y.dtype:
            return math.inf, False, f"{key}: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}"
        if torch.equal(x, y):
            continue
        first = first or key
        gap = (x.double() - y.double()).abs().max().item() if x.numel() else 0.0
        worst = max(worst, gap if gap > 0 else math.inf)
    return worst, not first, first


def run_eval(model: nn.Module, args) -> "OrderedDict[str, torch.Tensor]":
    model.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        return tensors(model(*args))


def run_train(model: nn.Module, name: str, args, labels) -> tuple["OrderedDict[str, torch.Tensor]", torch.Tensor]:
    """(the loss dict or segmentation outputs + loss, the summed loss with its graph), in train mode."""
    model.train()
    torch.manual_seed(0)
    result = model(*args)
    if name in DETECTION:
        losses = OrderedDict(result)
    else:
        losses = OrderedDict(out=result["out"], aux=result["aux"])
        losses["loss"] = F.cross_entropy(result["out"], labels) + 0.5 * F.cross_entropy(result["aux"], labels)
        result = {"loss": losses["loss"]}
    total = sum(result.values())
    model.eval()
    return tensors(losses), total


def shared_buffers_equal(a: nn.Module, b: nn.Module) -> bool:
    """Every buffer the plain model has equals the rewritten model's buffer of that name."""
    new = dict(b.named_buffers())
    return all(torch.equal(t, new[k]) for k, t in a.named_buffers())


def features(model: nn.Module, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
    model.eval()
    with torch.no_grad():
        return tensors(model.backbone(x))


# ---------------------------------------------------------------- one check

def rewrite(plain: nn.Module, target: str, rule: str, example) -> tuple[nn.Module, nn.Module, float]:
    """(the whole rewritten model, the rewritten target module, apply seconds), the user's way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if target == WHOLE:
            start = time.perf_counter()
            new = seinject.apply(plain, rule=rule, example_inputs=example)
            return new, new, time.perf_counter() - start
        new = copy.deepcopy(plain)
        parent_name, _, attr = target.rpartition(".")
        parent = new.get_submodule(parent_name)
        start = time.perf_counter()
        setattr(parent, attr, seinject.apply(getattr(parent, attr), rule=rule, example_inputs=example))
        seconds = time.perf_counter() - start
    return new, new.get_submodule(target), seconds


def _first_sentence(reason: str) -> str:
    reason = reason.split(";")[0]
    cut = reason.find(". ")
    return (reason[:cut + 1] + ")" if 0 < cut < 120 else reason[:120]).replace("|", "/")


def _moved(param) -> bool:
    return param is not None and param.grad is not None and bool(param.grad.abs().sum() > 0)


def check(name: str, frozen: bool, plain: nn.Module, rule: str, target: str, ref: dict, fine_tune: bool) -> dict:
    row: dict = {"model": name + ("+frozen" if frozen else ""), "rule": rule, "target": target}
    eval_args, train_args, labels, x_backbone = ref["eval_args"], ref["train_args"], ref["labels"], ref["x_backbone"]
    example = eval_args if target == WHOLE else (x_backbone,)
    new, module, seconds = rewrite(plain, target, rule, example)
    report = seinject.report(module)
    row.update(sites=len(report.inserted), skipped=len(report.skipped), seconds=round(seconds, 2),
               left_out=[f"{p.name}: {_first_sentence(p.reason)}" for p in report.left_out],
               first_blocks=[b.module for b in report.inserted[:2]], se_params=report.added_params,
               verified=report.verified)
    # eval: the whole model's outputs and the backbone's features
    row["max_diff"], row["outputs_equal"], row["first_diff"] = max_diff(ref["eval"], run_eval(new, eval_args))
    row["n_outputs"] = {k: tuple(v.shape) for k, v in ref["eval"].items() if k.endswith(("boxes", "out"))}
    row["feature_diff"], row["features_equal"], _ = max_diff(ref["features"], features(new, x_backbone))
    if target == WHOLE:  # the model as built, never run, and no example_inputs: nothing runs it before tracing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            unrun = seinject.apply(copy.deepcopy(ref["never_run"]), rule=rule)
        try:
            row["never_run_equal"] = max_diff(ref["eval"], run_eval(unrun, eval_args))[1]
        except Exception as exc:
            row["never_run_equal"] = False
            row["never_run_error"] = f"{type(exc).__name__}: {exc}"[:300]
    # train: losses (same seeds, same BatchNorm state), then the BatchNorm state itself
    trained_plain = ref["train_model"]
    seinject.mark_trainable(new)  # requires_grad only: outputs are unchanged
    losses, total = run_train(new, name, train_args, labels)
    row["loss_diff"], row["losses_equal"], row["first_loss_diff"] = max_diff(ref["train"], losses)
    row["losses"] = {k: round(float(v), 5) for k, v in losses.items() if v.numel() == 1}
    row["buffers_equal"] = shared_buffers_equal(trained_plain, new)
    if not fine_tune:
        return row
    # fine-tuning: gradients reach every block, one step moves the outputs, save/load round-trips
    total.backward()
    blocks = seinject.se_modules(new)
    row["fc2_grads"] = f"{sum(_moved(b.fc2.weight) or _moved(b.fc2.bias) for _, b in blocks)}/{len(blocks)}"
    # fc2.weight gets gradient only where some fc1 unit is active (ReLU(fc1(squeezed)) > 0 somewhere)
    row["live_hidden"] = f"{sum(_moved(b.fc2.weight) for _, b in blocks)}/{len(blocks)}"
    row["dead_hidden"] = [n for n, b in blocks if not _moved(b.fc2.weight)]
    torch.optim.SGD([p for _, p in seinject.se_parameters(new)], lr=1.0).step()
    after = run_eval(new, eval_args)
    row["step_changes_outputs"] = not max_diff(ref["eval"], after)[1]
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = seinject.save(module, Path(folder) / "se.safetensors")
        # the train-mode forward moved BatchNorm2d statistics (in the heads too), which are not SE
        # weights: load into the plain model that took the same forward, whose buffers equal new's
        fresh = copy.deepcopy(trained_plain)
        if target == WHOLE:
            loaded = seinject.load(fresh, path)
        else:
            parent_name, _, attr = target.rpartition(".")
            parent = fresh.get_submodule(parent_name)
            setattr(parent, attr, seinject.load(getattr(parent, attr), path))
            loaded = fresh
        row["save_load_equal"] = max_diff(after, run_eval(loaded, eval_args))[1]
        row["file_kb"] = round(path.stat().st_size / 1024, 1)
    return row


def default_plan(name: str, frozen: bool, rules: list[str], full: bool) -> list[tuple[str, str]]:
    """(target, rule) pairs: each rule on the backbone's parts, the whole model with the first rule
    (every rule with full=True); +frozen: the target a fine-tuning user picks, `backbone`."""
    if name in DETECTION:
        parts = ["backbone"] if frozen and not full else ["backbone.body", "backbone"]
    else:
        parts = ["backbone"]
    pairs = [(t, r) for t in parts for r in rules]
    if not frozen:
        pairs += [(WHOLE, r) for r in (rules if full else rules[:1])]
    return pairs


def check_model(name: str, frozen: bool, pairs: list[tuple[str, str]], fine_tune: bool) -> list[dict]:
    start = time.perf_counter()
    plain = build(name, frozen)
    eval_args, train_args, labels, x_backbone = inputs(name)
    x_backbone = backbone_input(plain, name, eval_args)
    ref = {"eval_args": eval_args, "train_args": train_args, "labels": labels, "x_backbone": x_backbone,
           "never_run": copy.deepcopy(plain)}  # lazily set attributes (MultiScaleRoIAlign.scales) still unset
    ref["eval"] = run_eval(plain, eval_args)
    ref["features"] = features(plain, x_backbone)
    ref["train_model"] = copy.deepcopy(plain)  # train mode moves BatchNorm statistics: on a copy
    with torch.no_grad():
        ref["train"], _ = run_train(ref["train_model"], name, train_args, labels)
    rows = []
    for target, rule in pairs:
        try:
            rows.append(check(name, frozen, plain, rule, target, ref, fine_tune))
        except Exception as exc:  # a bug to report: keep the traceback, go on with the survey
            rows.append({"model": name + ("+frozen" if frozen else ""), "rule": rule, "target": target,
                         "error": f"{type(exc).__name__}: {exc}"[:500], "traceback": traceback.format_exc()})
        row = rows[-1]
        print(f"{row['model']:30s} {rule:16s} {target:14s} " + (
            f"ERROR {row['error'][:200]}" if "error" in row else
            f"sites={row['sites']} Δ={row['max_diff']:g} feat Δ={row['feature_diff']:g} "
            f"losses_equal={row['losses_equal']} buffers_equal={row['buffers_equal']} "
            f"grads={row.get('fc2_grads', '-')} live={row.get('live_hidden', '-')} step={row.get('step_changes_outputs', '-')} "
            f"save/load={row.get('save_load_equal', '-')} unrun={row.get('never_run_equal', '-')} "
            f"{row['seconds']}s"), flush=True)
    print(f"{'':30s} ({time.perf_counter() - start:.1f} s for this model)", flush=True)
    return rows


# ---------------------------------------------------------------- output

def ok(row: dict) -> bool:
    return ("error" not in row and row["sites"] > 0 and row["outputs_equal"] and row["features_equal"]
            and row.get("never_run_equal", True)
            and row["losses_equal"] and row["buffers_equal"]
            and row.get("step_changes_outputs", True) and row.get("save_load_equal", True)
            and row.get("fc2_grads", "1/1").split("/")[0] == row.get("fc2_grads", "1/1").split("/")[1])


def markdown(rows: list[dict], command: str, seconds: float) -> str:
    import torchvision

    lines = [
        "# seinject on torchvision detection and segmentation models",
        "",
        f"Produced by `{command}` (torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread"
        f"{'s' if torch.get_num_threads() != 1 else ''}; {seconds:.0f} s in all).",
        "",
        f"Random weights (nothing downloaded). Detection: one {DET_SIZE}x{DET_SIZE} image (min_size = max_size = {DET_SIZE}, "
        f"score threshold 0, at most {DETECTIONS} detections, 100 test / 200 train proposals); `+frozen` is the layout torchvision builds for "
        "pretrained weights (FrozenBatchNorm2d in the body, conv1 and layer1 frozen). Segmentation: "
        f"2x3x{SEG_SIZE}x{SEG_SIZE}, `aux_loss=True`. Target `backbone.body` is the ResNet (IntermediateLayerGetter, an "
        "OrderedDict of stage outputs), `backbone` is BackboneWithFPN (body + FPN), `<model>` the whole "
        "model; a target is rewritten with `model.backbone.body = seinject.apply(model.backbone.body, "
        "rule=..., example_inputs=...)`.",
        "",
        "- **max |Δ|**: over every tensor of the whole model's eval output (boxes, scores, labels, masks; "
        "'out', 'aux') and of the backbone's feature dict, against the plain model; torch.equal.",
        "- **losses equal**: train mode, same seed, same BatchNorm state: the loss dict (segmentation: the "
        "outputs and CE(out) + 0.5 CE(aux)) and afterwards every BatchNorm buffer, torch.equal.",
        "- **fine-tune**: after `mark_trainable`, backward of the summed loss gives every block's fc2 a "
        "non-zero gradient, one SGD step changes the eval outputs, and `save` of the target + `load` "
        "into a plain copy that took the same train-mode forward (its BatchNorm statistics moved alike) "
        "gives the trained model's outputs exactly.",
        "- **unrun**: (`<model>` rows) `apply` without `example_inputs` on the model as built, never run "
        "(MultiScaleRoIAlign's lazily set `scales` still unset), then its eval outputs equal the plain model's.",
        "- **live fc1**: blocks where some fc1 unit is active on this input, so fc2.weight got gradient "
        "(otherwise only fc2.bias learns at first: the hidden layer is dead for this input).",
        "- **apply s**: `seinject.apply` on the target with `example_inputs` (its deep copy, trace, "
        "shape pass and its own verification runs included).",
        "",
        "| model | rule | target | sites | max \\|Δ\\| | losses equal | fine-tune | unrun | live fc1 | apply s | left out |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['rule']} | `{row['target']}` | ERROR | "
                         f"{row['error'][:160].replace('|', '/')} | | | | | | |")
            continue
        diff = max(row["max_diff"], row["feature_diff"])
        equal = "yes" if row["losses_equal"] and row["buffers_equal"] else (
            f"NO ({row['first_loss_diff'] or 'buffers'})")
        tuned = "fc2_grads" in row and row["step_changes_outputs"] and row["save_load_equal"] and (
            row["fc2_grads"].split("/")[0] == row["fc2_grads"].split("/")[1])
        tune = "—" if "fc2_grads" not in row else ("yes" if tuned else (
            f"NO: fc2 grads {row['fc2_grads']}, step {row['step_changes_outputs']}, save/load {row['save_load_equal']}"))
        left = ", ".join(p.split(":")[0] for p in row["left_out"]) or "—"
        unrun = {None: "—", True: "yes"}.get(row.get("never_run_equal"), f"NO: {row.get('never_run_error', 'differs')[:60]}")
        lines.append(f"| {row['model']} | {row['rule']} | `{row['target']}` | {row['sites']} | {diff:g} | "
                     f"{equal} | {tune} | {unrun} | {row.get('live_hidden', '—')} | {row['seconds']:.2f} | {left} |")
    lines += ["", f"{sum(ok(r) for r in rows)} of {len(rows)} rows pass every check.", ""]
    reasons = sorted({p for r in rows for p in r.get("left_out", [])})
    if reasons:
        lines += ["Parts left out (kept as they are; their submodules are rewritten on their own):", ""]
        lines += [f"- `{p.split(':')[0]}`: {p.split(':', 1)[1].strip()}" for p in reasons]
        lines.append("")
    dead = [(r, n) for r in rows for n in r.get("dead_hidden", [])]
    if dead:
        lines += ["Blocks whose fc1 units were all inactive on this input (fc2.weight got no gradient; fc2.bias "
                  "did): " + ", ".join(f"{r['model']} {r['rule']} `{n}`" for r, n in dead) + ". fc1 starts with "
                  "non-negative weights and bias 1, so a unit is inactive where the channel-weighted sum of the "
                  "squeezed map is below -1: residual_branch squeezes the residual branch before the add (signed "
                  "values), after_residual the map after the final ReLU (non-negative). With random weights and "
                  "FrozenBatchNorm2d (no normalisation in effect) those maps grow with depth.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: all five)")
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--quick", action="store_true", help="after_residual only, no +frozen, no fine-tune step")
    parser.add_argument("--no-frozen", action="store_true", help="skip the +frozen detection variants")
    parser.add_argument("--full", action="store_true", help="every rule on every target (about 2x longer)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine two threads ran 6x slower)")
    parser.add_argument("--json", default=None, help="write every row (with tracebacks) here")
    parser.add_argument("--md", default=None, help="write the markdown table here (docs/coverage/detection.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wanted = [m for m in args.models.split(",") if m] or DETECTION + SEGMENTATION
    rules = ["after_residual"] if args.quick else [r for r in args.rules.split(",") if r]
    start = time.perf_counter()
    rows: list[dict] = []
    for name in wanted:
        if name not in DETECTION + SEGMENTATION:
            parser.error(f"unknown model {name!r}; known: {', '.join(DETECTION + SEGMENTATION)}")
        rows += check_model(name, False, default_plan(name, False, rules, args.full), not args.quick)
        if name in DETECTION and not (args.quick or args.no_frozen):
            rows += check_model(name, True, default_plan(name, True, rules, args.full), True)
    seconds = time.perf_counter() - start
    passed = sum(ok(r) for r in rows)
    print(f"{passed} of {len(rows)} rows pass every check; {seconds:.0f} s")
    shown = [a for i, a in enumerate(sys.argv[1:]) if a != "--json" and (i == 0 or sys.argv[i] != "--json")]
    command = " ".join(["../zoo/bin/python", "benchmarks/" + Path(__file__).name, *shown])  # --json left out
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(markdown(rows, command, seconds))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "seconds": round(seconds, 1), "rows": rows},
                                              indent=1, default=str))
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
