"""Coverage over the timm and torchvision catalogues (run in the ../zoo environment; not a test).

    ../zoo/bin/python benchmarks/catalogue.py [--source timm,torchvision] [--every N] [--seconds 120]
                                              [--json docs/coverage/catalogue.json] [--md docs/coverage/catalogue.md]

For every model (every N-th with --every): build it with random weights (no downloads), skip it
when it has no conv layer, run it once, then apply the built-in rules in a fixed order and keep the
first that finds sites. Records per model: the rule, sites, max |Δ| of the outputs at identity (eval
mode), whether the model kept its class, parts left out with reasons, apply time; and the reason for
models excluded (no conv, does not build or run on CPU within --seconds, needs an input it does
not document) and for failures (an exception from seinject, outputs that differ). Results are written
after every model, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import seinject  # noqa: E402

RULES = ("after_residual", "inverted_residual", "residual_branch", "after_concat", "conv_block")
VIDEO = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s", "swin3d_b")


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def torchvision_models() -> list[tuple[str, str]]:
    import torchvision.models as tvm

    out = [("torchvision", name) for name in tvm.list_models(module=tvm)]
    for module, tag in ((tvm.detection, "detection"), (tvm.segmentation, "segmentation"), (tvm.video, "video")):
        out += [(f"torchvision.{tag}", name) for name in tvm.list_models(module=module)]
    return out


def timm_models() -> list[tuple[str, str]]:
    import timm

    return [("timm", name) for name in timm.list_models()]


def build(source: str, name: str):
    """(model, example input) for one catalogue entry."""
    if source == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
        size = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))  # some need exactly theirs
        return model, torch.randn(1, *size)
    import torchvision.models as tvm

    family = source.partition(".")[2]
    module = {"": tvm, "detection": tvm.detection, "segmentation": tvm.segmentation, "video": tvm.video}[family]
    kwargs = {"weights": None}
    if family == "detection":
        kwargs["weights_backbone"] = None
    model = tvm.get_model(name, **kwargs) if family == "" else getattr(module, name)(**kwargs)
    if family == "video":
        return model, torch.randn(1, 3, 16 if name.startswith(("mvit", "s3d")) else 8, 112 if not name.startswith(("mvit", "swin3d")) else 224, 112 if not name.startswith(("mvit", "swin3d")) else 224)
    if family == "detection":
        return model, [torch.rand(3, 160, 160)]
    size = 299 if name == "inception_v3" else 224
    return model, torch.randn(1, 3, size, size)


def tensors(out) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def check(source: str, name: str, seconds: int) -> dict:
    row: dict = {"source": source, "model": name}
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        torch.manual_seed(0)
        model, x = build(source, name)
        model.eval()
        if not any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules()):
            return {**row, "status": "excluded", "why": "no conv layer"}
        args = (x,)
        with torch.no_grad():
            before = tensors(model(*args))
        for rule in RULES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if not len(seinject.plan(model, rule)):
                    continue
                start = time.perf_counter()
                new = seinject.apply(model, rule)
                row["apply_s"] = round(time.perf_counter() - start, 3)
            report = seinject.report(new)
            with torch.no_grad():
                after = tensors(new(*args))
            diff = max((float((a.double() - b.double()).abs().max()) for a, b in zip(after, before)
                        if a.shape == b.shape and a.numel()), default=0.0)
            same = len(after) == len(before) and all(a.shape == b.shape for a, b in zip(after, before))
            row.update(rule=rule, sites=len(report), max_diff=diff if same else None,
                       same_class=type(new) is type(model) or isinstance(new, type(model)),
                       left_out=[f"{p.name}: {p.reason[:120]}" for p in report.left_out])
            row["status"] = "ok" if same and diff == 0.0 else "differs"
            return row
        return {**row, "status": "no sites", "why": "no built-in rule matched"}
    except Timeout:
        return {**row, "status": "excluded", "why": f"over {seconds} s on CPU"}
    except seinject.SEInjectError as exc:
        return {**row, "status": "typed error", "why": f"{type(exc).__name__}: {str(exc)[:200]}"}
    except Exception as exc:  # noqa: BLE001 - recorded, the walk goes on
        where = "seinject" if "seinject" in traceback.format_exc() else "model"
        status = "raw exception" if where == "seinject" else "excluded"
        return {**row, "status": status, "why": f"{where}: {type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        signal.alarm(0)


def summary(rows: list[dict]) -> str:
    checked = [r for r in rows if r["status"] != "excluded"]
    ok = [r for r in checked if r["status"] == "ok"]
    lines = ["| source | models | excluded | checked | rewritten, identity kept | no sites | differs | typed error | raw exception |",
             "|---|---|---|---|---|---|---|---|---|"]
    for source in sorted({r["source"] for r in rows}):
        part = [r for r in rows if r["source"] == source]
        count = lambda s: sum(r["status"] == s for r in part)  # noqa: E731
        lines.append(f"| {source} | {len(part)} | {count('excluded')} | {len(part) - count('excluded')} | {count('ok')} "
                     f"| {count('no sites')} | {count('differs')} | {count('typed error')} | {count('raw exception')} |")
    share = 100.0 * len(ok) / len(checked) if checked else 0.0
    lines.append(f"\n{len(ok)} of {len(checked)} checked models rewritten with identity kept ({share:.1f} %).")
    lines.append("\n| source | model | status | rule | sites | max abs diff | apply s | why / left out |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        why = r.get("why") or "; ".join(r.get("left_out", []))
        lines.append(f"| {r['source']} | {r['model']} | {r['status']} | {r.get('rule', '')} | {r.get('sites', '')} "
                     f"| {r.get('max_diff', '')} | {r.get('apply_s', '')} | {why[:160].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="timm,torchvision")
    parser.add_argument("--every", type=int, default=1, help="check every N-th model (a quick sample)")
    parser.add_argument("--seconds", type=int, default=120, help="time limit per model (build, run, apply)")
    parser.add_argument("--json", default=str(ROOT / "docs/coverage/catalogue.json"))
    parser.add_argument("--md", default=str(ROOT / "docs/coverage/catalogue.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    entries = []
    if "torchvision" in args.source:
        entries += torchvision_models()
    if "timm" in args.source:
        entries += timm_models()
    entries = entries[:: args.every]
    rows = []
    for k, (source, name) in enumerate(entries):
        start = time.perf_counter()
        rows.append(check(source, name, args.seconds))
        print(f"[{k + 1}/{len(entries)}] {source}:{name} {rows[-1]['status']} "
              f"{rows[-1].get('rule', rows[-1].get('why', ''))} ({time.perf_counter() - start:.1f} s)", flush=True)
        write(Path(args.json), json.dumps(rows, indent=1))
        write(Path(args.md), f"# Catalogue coverage\n\n`{' '.join(sys.argv)}`\n\n" + summary(rows))


def write(path: Path, text: str) -> None:
    """Whole or not at all: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    temp.replace(path)


if __name__ == "__main__":
    main()
