"""Coverage over the timm and torchvision catalogues (run in the ../zoo environment; not a test).

    ../zoo/bin/python benchmarks/catalogue.py [--source timm,torchvision] [--every N] [--seconds 60]
                                              [--workers 2] [--json docs/coverage/catalogue.json]
                                              [--md docs/coverage/catalogue.md]

For every model (every N-th with --every): trace its structure once (timm models on the meta device:
no weights, no time) and match the built-in rules on that trace in a fixed order; the first that
finds sites is the model's rule. A model that no rule fits is excluded as not a CNN when it has no
conv block either: no conv → [norm →] act chain (benchmarks/rules/conv_chain.yaml; ViTs and other
transformers, MLP and LSTM mixers whose convs only embed, pool or downsample tokens); with a conv
block it counts as "no sites". Then build the model with random weights (no downloads; drawn by
benchmarks/cheap_init.py at each initialiser's scale, for speed), run it, apply the rule in place (a
large model is not copied) and run it again. Records per model: the rule, sites, max |Δ| of the
outputs at identity (eval mode), whether the model kept its class, parts left out with reasons,
apply time; the reason for models excluded (not a CNN, does not build or run on CPU within
--seconds) and for failures (an exception from seinject, outputs that differ, an inserted block
that does not run in that forward). Classification models
run at 128×128 (convolutional nets take any size; a model that refuses it runs at its own configured
size). Models are checked by --workers processes with one thread each; results are written after
every model, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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

sys.path.insert(0, str(ROOT / "benchmarks"))
from cheap_init import cheap_init  # noqa: E402
from seinject.graph.matcher import match  # noqa: E402
from seinject.rule.overrides import resolve_rule  # noqa: E402
from seinject.torch.view import build_view  # noqa: E402

CHAIN_RULE = ROOT / "benchmarks" / "rules" / "conv_chain.yaml"  # does the model have conv blocks at all?
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
    if family in ("detection", "segmentation"):
        kwargs["weights_backbone"] = None  # else torchvision fetches ImageNet weights for the backbone
    model = tvm.get_model(name, **kwargs) if family == "" else getattr(module, name)(**kwargs)
    if family == "video":
        frames = 16 if name.startswith(("mvit", "s3d")) else 8
        side = 224 if name.startswith(("mvit", "swin3d", "s3d")) else 112  # S3D ends in a 7×7 average pool
        return model, torch.randn(1, 3, frames, side, side)
    if family == "detection":
        return model, [torch.rand(3, 160, 160)]
    size = 299 if name == "inception_v3" else 224
    return model, torch.randn(1, 3, size, size)


def _small(x: torch.Tensor) -> torch.Tensor:
    """A 128×128 version of an N×C×H×W input larger than that (convolutional nets take any size)."""
    if x.dim() == 4 and x.shape[-1] > 128 and x.shape[-2] > 128:
        return torch.randn(*x.shape[:2], 128, 128)
    return x


def tensors(out) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def survey(model: torch.nn.Module) -> tuple[str | None, str | None]:
    """(why the model is excluded, or None; the first built-in rule that finds sites, or None), from
    one trace of its structure (a model on the meta device will do). A model that some rule finds
    sites in is checked; one that none does is excluded when it has no conv block either (no conv →
    [norm →] act chain, benchmarks/rules/conv_chain.yaml), and counts as "no sites" when it has one."""
    convs = sum(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())
    if not convs:
        return "not a CNN: no conv layer", None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view = build_view(model).view
        rule = next((r for r in RULES if match(resolve_rule(r, {}), view).sites), None)
        if rule is None and not match(resolve_rule(str(CHAIN_RULE), {}), view).matched:
            return (f"not a CNN: {convs} conv layer(s), no conv → [norm →] act chain and no site for any rule "
                    "(the convs embed, pool or downsample tokens)"), None
    return None, rule


def check(source: str, name: str, seconds: int) -> dict:
    row: dict = {"source": source, "model": name}
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        surveyed = None
        if source == "timm":  # the architecture on the meta device (no weights, no time): a CNN at all?
            import timm

            with torch.device("meta"):
                skeleton = timm.create_model(name, pretrained=False)
            surveyed = survey(skeleton)
            del skeleton
            if surveyed[0]:
                return {**row, "status": "excluded", "why": surveyed[0]}
        torch.manual_seed(0)
        with cheap_init():  # random weights at each initialiser's scale, without the RNG's cost
            model, x = build(source, name)
        model.eval()
        not_a_cnn, rule = surveyed or survey(model)
        if not_a_cnn:
            return {**row, "status": "excluded", "why": not_a_cnn}
        if rule is None:
            return {**row, "status": "no sites", "why": "no built-in rule finds a site, though it has a conv → "
                    "[norm →] act chain"}
        args = (_small(x) if source in ("timm", "torchvision") else x,)
        try:
            with torch.no_grad():
                before = tensors(model(*args))
        except Exception:  # noqa: BLE001 - needs its own input size
            args = (x,)
            with torch.no_grad():
                before = tensors(model(*args))
        original = type(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            new = seinject.apply(model, rule, inplace=True)  # in place: no copy of a large model
            row["apply_s"] = round(time.perf_counter() - start, 3)
        report = seinject.report(new)
        ran: set[str] = set()  # every inserted block must run: a rewrite that drops one is a failure
        hooks = [block.register_forward_hook(lambda *a, name=name: ran.add(name))
                 for name, block in seinject.se_modules(new)]
        with torch.no_grad():
            after = tensors(new(*args))
        for hook in hooks:
            hook.remove()
        diff = max((float((a.double() - b.double()).abs().max()) for a, b in zip(after, before)
                    if a.shape == b.shape and a.numel()), default=0.0)
        same = len(after) == len(before) and all(a.shape == b.shape for a, b in zip(after, before))
        row.update(rule=rule, sites=len(report), max_diff=diff if same else None,
                   same_class=isinstance(new, original),
                   left_out=[f"{p.name}: {p.reason[:120]}" for p in report.left_out])
        row["status"] = "ok" if same and diff == 0.0 else "differs"
        idle = sorted({name for name, _ in seinject.se_modules(new)} - ran)
        if idle:
            row.update(status="differs", why=f"{len(idle)} inserted block(s) never ran: {', '.join(idle[:3])}")
        if not len(report):
            row.update(status="no sites", why=f"{rule} found sites on the structure; the splice skipped every one")
        return row
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
    parser.add_argument("--seconds", type=int, default=60, help="time limit per model (build, run, apply)")
    parser.add_argument("--workers", type=int, default=2, help="processes checking models side by side")
    parser.add_argument("--json", default=str(ROOT / "docs/coverage/catalogue.json"))
    parser.add_argument("--md", default=str(ROOT / "docs/coverage/catalogue.md"))
    parser.add_argument("--only", default="", help="check only models whose 'source:name' starts with this")
    parser.add_argument("--names", default="", help="check only these comma-separated 'source:name' entries")
    parser.add_argument("--merge", nargs="*", default=[],
                        help="only re-summarise: read these JSON files (later rows replace earlier ones of the "
                             "same model) and write --json and --md")
    parser.add_argument("--runs", nargs="*", default=[], help="with --merge: one line per run, for the header")
    args = parser.parse_args()
    if args.merge:
        merged: dict = {}
        for path in args.merge:
            for row in json.loads(Path(path).read_text()):
                merged[(row["source"], row["model"])] = row
        rows = list(merged.values())
        write(Path(args.json), json.dumps(rows, indent=1))
        runs = "\n".join(f"- {line}" for line in args.runs) or f"{len(args.merge)} run(s) of `benchmarks/catalogue.py`"
        write(Path(args.md), f"# Catalogue coverage\n\nMerged from:\n{runs}\n\n" + summary(rows))
        return
    entries = []
    if "torchvision" in args.source:
        entries += torchvision_models()
    if "timm" in args.source:
        entries += timm_models()
    entries = [e for e in entries if f"{e[0]}:{e[1]}".startswith(args.only)][:: args.every]
    if args.names:
        wanted = set(args.names.split(","))
        entries = [e for e in entries if f"{e[0]}:{e[1]}" in wanted]
    rows: list[dict] = []
    began = time.perf_counter()
    jobs = [(source, name, args.seconds) for source, name in entries]
    with multiprocessing.get_context("spawn").Pool(args.workers, initializer=_worker, maxtasksperchild=100) as pool:
        for k, row in enumerate(pool.imap(_check_job, jobs)):
            rows.append(row)
            print(f"[{k + 1}/{len(entries)}] {row['source']}:{row['model']} {row['status']} "
                  f"{row.get('rule', row.get('why', ''))} ({row['seconds']:.1f} s)", flush=True)
            total = time.perf_counter() - began
            header = (f"# Catalogue coverage\n\n`{' '.join(sys.argv)}` ({len(rows)} of {len(entries)} models, "
                      f"{total / 60:.1f} min with {args.workers} worker(s) of one thread each)\n\n")
            write(Path(args.json), json.dumps(rows, indent=1))
            write(Path(args.md), header + summary(rows))


def _worker() -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")


def _check_job(job: tuple) -> dict:
    start = time.perf_counter()
    row = check(*job)
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def write(path: Path, text: str) -> None:
    """Whole or not at all: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    temp.replace(path)


if __name__ == "__main__":
    main()
