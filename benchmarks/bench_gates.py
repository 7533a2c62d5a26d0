"""Cost of each gate type on ResNet-50: parameters and MACs added, and single-thread CPU latency added.

For every type of seinject.rule.gates.BLOCKS, rule residual_branch with its default settings and
init="identity" (16 blocks, after each bottleneck's bn3):

- parameters added: the plan's count, checked against the inserted torch modules and the ONNX
  initializers the rewrite adds;
- MACs added at 224×224: the ONNX plan's count (static input shape), checked against
  SEConfig.added_macs on the site shapes the torch model produces;
- latency: the plain model exported once (legacy exporter, opset 17, batch 1, eval), each type
  added with seinject.onnx.apply, every model run in onnxruntime (CPUExecutionProvider, one
  intra-op thread, default graph optimisations); warm-up, then N rounds in which each model runs
  once (round-robin, so the machine's noise falls on all alike); the median per model, and the
  added latency as median(model) − median(plain). The same for the torch modules (eager,
  torch.set_num_threads(1), no_grad) unless --no-torch.

    .venv/bin/python benchmarks/bench_gates.py [--runs 30] [--warmup 3] [--quick] [--no-torch] [--json out.json]

Writes docs/gates/cost.md and docs/gates/cost.png (unless --no-write).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import seinject  # noqa: E402
import seinject.onnx as so  # noqa: E402
from seinject.rule.config import SEConfig  # noqa: E402
from seinject.rule.gates import BLOCKS  # noqa: E402

RULE = "residual_branch"
SIZE = 224


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, and its widest vector extension (NCHWc's block size follows it)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = next((f for f in ("avx512f", "avx2", "avx") if f in flags), None)
    return f"{name} ({vector.upper()})" if vector else name


def export(model: torch.nn.Module, path: Path) -> onnx.ModelProto:
    x = torch.randn(1, 3, SIZE, SIZE)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["logits"])
    return onnx.load(str(path))


def base_macs(model: torch.nn.Module) -> int:
    """Conv and Linear multiply-accumulates of the plain model at 1×3×224×224 (the usual convention)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() * k
        elif isinstance(module, torch.nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, SIZE, SIZE))
    for handle in handles:
        handle.remove()
    return total


def site_shapes(model: torch.nn.Module, names: list[str]) -> dict[str, tuple[int, ...]]:
    """The output shape (C, H, W) of each site module on a 1×3×224×224 input."""
    shapes, modules = {}, dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
               for n in names]
    with torch.no_grad():
        model(torch.zeros(1, 3, SIZE, SIZE))
    for handle in handles:
        handle.remove()
    return shapes


def onnx_added(plain: onnx.ModelProto, new: onnx.ModelProto, param_names: set[str]) -> tuple[int, int]:
    """Values of the initializers the rewrite added: those named like a torch block parameter
    (`seinject/<site>/fc1.weight`), and the rest (gains, clip bounds, shape and axes constants,
    BatchNorm running statistics)."""
    import math

    before = {t.name for t in plain.graph.initializer}
    params = constants = 0
    for t in new.graph.initializer:
        if t.name in before:
            continue
        if t.name.rsplit("/", 1)[-1] in param_names:
            params += math.prod(t.dims)
        else:
            constants += math.prod(t.dims)
    return params, constants


def elements_read(plain: onnx.ModelProto, new: onnx.ModelProto) -> int:
    """Elements of all inputs of the nodes the rewrite added (maps, vectors and weights), from ONNX
    shape inference on the static export: a proxy for the memory traffic the gates add."""
    import math

    inferred = onnx.shape_inference.infer_shapes(new)
    graph = inferred.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.value_info, *graph.input, *graph.output]}
    shapes.update({t.name: list(t.dims) for t in graph.initializer})
    before = {n.name for n in plain.graph.node}
    return sum(math.prod(shapes[i]) for n in new.graph.node if n.name not in before
               for i in n.input if i in shapes)


def session(model: onnx.ModelProto, optimized: Path | None = None, level=None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if level is not None:  # else onnxruntime's default, ORT_ENABLE_ALL
        options.graph_optimization_level = level
    if optimized is not None:  # to count the nodes onnxruntime runs after its graph optimisations
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def optimised_ops(model: onnx.ModelProto, folder: Path, name: str) -> dict[str, int]:
    """Node counts by op type of the graph onnxruntime runs (default optimisations, this CPU)."""
    import collections

    path = folder / f"{name}-optimised.onnx"
    session(model, path)
    return dict(collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node))


def round_robin(runners: dict, runs: int, warmup: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """CPU seconds of this thread and wall seconds of each runner's calls: `warmup` untimed rounds,
    then `runs` rounds, each runner once per round. With one thread, onnxruntime and torch compute in
    the calling thread, so its CPU time is the run's cost on a core of its own, while the wall time
    also counts the time spent waiting for a core on a shared machine."""
    for _ in range(warmup):
        for run in runners.values():
            run()
    cpu = {name: [] for name in runners}
    wall = {name: [] for name in runners}
    for _ in range(runs):
        for name, run in runners.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            run()
            cpu[name].append(time.thread_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return cpu, wall


def summarise(times: dict[str, list[float]]) -> dict[str, dict]:
    """Median and interquartile range per model; added = median − the plain model's median (and, for
    reference, the median of the per-round differences, which cancels noise common to a round)."""
    plain = statistics.median(times["plain"])
    out = {}
    for name, values in times.items():
        med = statistics.median(values)
        q = statistics.quantiles(values, n=4)
        paired = statistics.median(a - b for a, b in zip(values, times["plain"]))
        out[name] = {"median_ms": med * 1e3, "iqr_ms": (q[2] - q[0]) * 1e3, "min_ms": min(values) * 1e3,
                     "added_ms": (med - plain) * 1e3, "added_pct": 100 * (med - plain) / plain,
                     "paired_added_ms": paired * 1e3}
    return out


def measure(args) -> dict:
    from tests.models import resnet50

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = resnet50().eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    results = {"blocks": {}, "base": {"params": sum(p.numel() for p in model.parameters()),
                                      "macs": base_macs(model)}}
    with tempfile.TemporaryDirectory() as tmp:
        plain = export(model, Path(tmp) / "resnet50.onnx")
    onnx_models = {"plain": plain}
    torch_models = {"plain": model}
    for block in BLOCKS:
        entry = {"block": block}
        start = time.perf_counter()
        cfg = SEConfig(block=block)
        oplan = so.plan(plain, rule=RULE, block=block)
        new = so.apply(plain, rule=RULE, block=block)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tplan = seinject.plan(model, rule=RULE, block=block)
            tmodel = seinject.apply(model, rule=RULE, block=block).eval()
        shapes = site_shapes(model, [s.name for s in tplan])
        formula_macs = sum(cfg.added_macs(c, spatial) for c, *spatial in shapes.values())
        blocks = seinject.se_modules(tmodel)
        module_params = sum(p.numel() for _, m in blocks for p in m.parameters())
        onnx_block_params, onnx_constants = onnx_added(plain, new, {n for _, m in blocks for n, _ in
                                                                    m.named_parameters()})
        entry.update(
            sites=len(oplan), torch_sites=len(tplan), params=oplan.added_params, torch_plan_params=tplan.added_params,
            module_params=module_params, onnx_added_params=onnx_block_params, onnx_added_constants=onnx_constants,
            macs=oplan.added_macs, formula_macs=formula_macs,
            ops_added=len(new.graph.node) - len(plain.graph.node), elements_read=elements_read(plain, new),
            new_op_types=sorted({n.op_type for n in new.graph.node} - {n.op_type for n in plain.graph.node}),
            settings=describe(cfg, [c for c, *_ in shapes.values()]),
            seconds_to_rewrite=round(time.perf_counter() - start, 2))
        entry["params_consistent"] = (entry["params"] == entry["torch_plan_params"] == module_params
                                      == entry["onnx_added_params"])
        entry["macs_consistent"] = entry["macs"] == formula_macs
        # identity: both backends' rewritten models compute the plain model's outputs
        with torch.no_grad():
            entry["torch_identity_max_diff"] = float((tmodel(x) - model(x)).abs().max())
        results["blocks"][block] = entry
        onnx_models[block] = new
        torch_models[block] = tmodel
        print(f"{block}: {entry['sites']} sites, +{entry['params']:,} params, +{entry['macs'] / 1e6:.1f} M MACs",
              file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        for name, m in onnx_models.items():
            ops = optimised_ops(m, Path(tmp), name)
            target = results["base"] if name == "plain" else results["blocks"][name]
            target["ort_nodes"] = sum(ops.values())
            target["ort_reorders"] = ops.get("ReorderInput", 0) + ops.get("ReorderOutput", 0)
            target["ort_ops"] = ops
    sessions = {name: session(m) for name, m in onnx_models.items()}
    feed = {"x": x.numpy()}
    ref = sessions["plain"].run(None, feed)[0]
    for name, sess in sessions.items():
        if name != "plain":
            results["blocks"][name]["onnx_identity_max_diff"] = float(abs(sess.run(None, feed)[0] - ref).max())
    # the same at ORT_ENABLE_EXTENDED (no NCHWc layout transform): is the default's |Δ| the layout's rounding?
    extended_sessions = {name: session(m, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
                         for name, m in onnx_models.items()}
    extended = {name: sess.run(None, feed)[0] for name, sess in extended_sessions.items()}
    for name in results["blocks"]:
        results["blocks"][name]["onnx_identity_max_diff_extended"] = float(abs(extended[name] - extended["plain"]).max())
    print(f"onnxruntime: {len(sessions)} models × {args.runs} rounds ...", file=sys.stderr)
    start = time.perf_counter()
    cpu, wall = round_robin({n: (lambda s=s: s.run(None, feed)) for n, s in sessions.items()},
                            args.runs, args.warmup)
    results["ort_seconds"] = time.perf_counter() - start
    results["ort"], results["ort_wall"] = summarise(cpu), summarise(wall)
    # a shorter second series without the NCHWc layout transform (ORT_ENABLE_EXTENDED), to tell the
    # gates' own work from the layout round trips they cause at the default level
    rounds = max(3, args.runs // 3)
    print(f"onnxruntime (extended optimisations): {len(sessions)} models × {rounds} rounds ...", file=sys.stderr)
    cpu, _ = round_robin({n: (lambda s=s: s.run(None, feed)) for n, s in extended_sessions.items()},
                         rounds, 1)
    results["ort_extended"], results["extended_runs"] = summarise(cpu), rounds
    if not args.no_torch:
        print(f"torch eager: {len(torch_models)} models × {args.runs} rounds ...", file=sys.stderr)
        start = time.perf_counter()
        with torch.no_grad():
            cpu, wall = round_robin({n: (lambda m=m: m(x)) for n, m in torch_models.items()},
                                    args.runs, args.warmup)
        results["torch_seconds"] = time.perf_counter() - start
        results["torch"], results["torch_wall"] = summarise(cpu), summarise(wall)
    return results


def describe(cfg: SEConfig, channels: list[int]) -> str:
    """The default settings that shape a type's block, in words."""
    from seinject.rule.gates import eca_kernel_size

    if cfg.block == "eca":
        sizes = sorted({eca_kernel_size(c, cfg) for c in channels})
        return f"k = {'/'.join(map(str, sizes))} (gamma {cfg.gamma:g}, beta {cfg.beta:g}), {cfg.gate}"
    if cfg.block == "ese":
        return f"C→C, {cfg.gate}"
    if cfg.block == "simam":
        return f"lambda {cfg.e_lambda:g}"
    parts = [f"ratio {cfg.ratio:g}", cfg.act]
    if cfg.block == "gc":
        fusion = " + ".join(f for f, on in (("add", cfg.fuse_add), ("scale", cfg.fuse_scale)) if on)
        parts += [f"fuse {fusion}", "softmax pooling" if cfg.use_attn else "mean pooling"]
        if cfg.fuse_scale:
            parts.append(cfg.gate)
    else:
        parts.append(cfg.gate)
    if cfg.block == "cbam":
        parts.append(f"{cfg.spatial_kernel_size}×{cfg.spatial_kernel_size} spatial conv")
    return ", ".join(parts)


def table(results: dict, suffix: str = "", costs: bool = True) -> str:
    """The main table (suffix "": CPU-time latencies) or the wall-clock one (suffix "_wall")."""
    base = results["base"]
    has_torch = "torch" in results
    head = ("| type |" + (" settings | params added | MACs added (M) |" if costs else "")
            + " ORT ms | ORT added ms | ORT added % |"
            + (" torch ms | torch added ms | torch added % |" if has_torch else ""))
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    ort_plain = results["ort" + suffix]["plain"]
    line = ("| plain ResNet-50 |" + (f" — | ({base['params'] / 1e6:.2f} M) | ({base['macs'] / 1e6:,.0f}) |"
                                     if costs else "")
            + f" {ort_plain['median_ms']:.1f} ± {ort_plain['iqr_ms'] / 2:.1f} | — | — |")
    if has_torch:
        tp = results["torch" + suffix]["plain"]
        line += f" {tp['median_ms']:.1f} ± {tp['iqr_ms'] / 2:.1f} | — | — |"
    rows.append(line)
    for block, e in results["blocks"].items():
        o = results["ort" + suffix][block]
        pct = 100 * e["params"] / base["params"]
        line = (f"| {block} |" + (f" {e['settings']} | {e['params']:,} ({pct:.1f} %) | "
                                  f"{e['macs'] / 1e6:.1f} ({100 * e['macs'] / base['macs']:.2f} %) |" if costs else "")
                + f" {o['median_ms']:.1f} | {o['added_ms']:+.1f} | {o['added_pct']:+.1f} % |")
        if has_torch:
            t = results["torch" + suffix][block]
            line += f" {t['median_ms']:.1f} | {t['added_ms']:+.1f} | {t['added_pct']:+.1f} % |"
        rows.append(line)
    return "\n".join(rows)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for block, e in results["blocks"].items():
        px, py = e["params"] / 1e6, results["ort"][block]["added_ms"]
        ax.scatter([px], [py], s=36)
        ax.annotate(block, (px, py), textcoords="offset points", xytext=(5, 4), fontsize=9)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("parameters added (M)")
    ax.set_ylabel("added onnxruntime latency (ms, 1 thread, CPU time)")
    plain = results["ort"]["plain"]["median_ms"]
    ax.set_title(f"Gates on ResNet-50 (residual_branch, 16 blocks), 224×224, batch 1\n"
                 f"plain model {plain:.0f} ms; {results['runs']} runs, median", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def reading(results: dict) -> list[str]:
    """What the numbers say, with the numbers of this run."""
    blocks, base, o, ext = results["blocks"], results["base"], results["ort"], results["ort_extended"]

    def pct(block: str, key: str) -> str:
        return f"{100 * blocks[block][key] / base[key]:.2f} %"

    lines = ["## Reading the numbers", ""]
    lines.append(
        f"- MACs do not predict latency. se adds {pct('se', 'macs')} of the MACs and "
        f"{o['se']['added_pct']:+.0f} % onnxruntime time, eca {pct('eca', 'macs')} and {o['eca']['added_pct']:+.0f} %. "
        "A gate's MACs are a few small matrix-vector products; its time goes to passes over the full maps "
        "(pooling reads each map, the scale reads and writes it), which are memory-bound, and in onnxruntime to "
        "the layout: with default optimisations the plain ResNet-50 runs in the blocked NCHWc layout with each "
        f"bottleneck's last conv fused with the residual Add and ReLU ({base['ort_nodes']} nodes, "
        f"{base['ort_reorders']} layout reorder). A gate between bn3 and the Add breaks that fusion, and the "
        "NCHWc kernels cover convs and pools but not the broadcast scale, nan_to_num's IsNaN/Where/Clip or the now "
        "separate Add and ReLU, so those run in plain NCHW with layout conversions around them, and converting a "
        f"full map is one more pass over it (se: {blocks['se']['ort_reorders']} reorders, "
        f"{blocks['se']['ort_nodes']} nodes). "
        "Without the NCHWc transform "
        f"(ORT_ENABLE_EXTENDED) the plain model is slower ({ext['plain']['median_ms']:.0f} ms vs "
        f"{o['plain']['median_ms']:.0f} ms) but se adds {ext['se']['added_ms']:.1f} ms instead of "
        f"{o['se']['added_ms']:.1f} ms and eca {ext['eca']['added_ms']:.1f} ms instead of {o['eca']['added_ms']:.1f} ms.")
    lines.append(
        f"- simam has {blocks['simam']['params']} parameters (its identity blend) yet is among the slowest "
        f"({o['simam']['added_ms']:+.1f} ms): it is some fifteen elementwise ops per block, most over the full map "
        "(mean, difference, square, sum, division, sigmoid, the blend, the scale, nan_to_num's IsNaN/Where/Clip), "
        f"{blocks['simam']['elements_read'] / 1e6:.0f} M elements read against se's "
        f"{blocks['se']['elements_read'] / 1e6:.0f} M.")
    lines.append(
        f"- coord has the most MACs ({blocks['coord']['macs'] / 1e6:.0f} M), but they are 1×1 convs on H + W pooled "
        "positions; its time goes to the two strip poolings, the transposes, two full-map multiplies and the most "
        f"layout conversions of all ({blocks['coord']['ort_reorders']}). cbam reads each map four times (avg and max "
        "over space, mean and max over channels) and scales it twice.")
    lines.append(
        f"- ese adds {100 * blocks['ese']['params'] / base['params']:.0f} % parameters ({blocks['ese']['params'] / 1e6:.1f} M, a C×C layer per block) "
        f"and costs {o['ese']['added_ms']:+.1f} ms against se's {o['se']['added_ms']:+.1f} ms: the layer is a "
        f"matrix-vector product on one pooled vector, so its extra cost is reading "
        f"{4 * blocks['ese']['params'] / 1e6:.0f} MB of weights once per run.")
    lines.append(
        "- The rewritten ONNX models at identity differ from the plain one by rounding under onnxruntime's default "
        "optimisations only (see the last column): the fused NCHWc convolution sums the residual in another order "
        "than the unfused one; at ORT_ENABLE_EXTENDED the outputs are equal. torch eager has no such fusion, and "
        "its rewritten models give the plain model's outputs exactly.")
    return lines


def document(results: dict, command: str) -> str:
    checks = []
    base = results["base"]
    for block, e in results["blocks"].items():
        checks.append(f"| {block} | {e['sites']} | {'yes' if e['params_consistent'] else 'NO'} | "
                      f"{'yes' if e['macs_consistent'] else 'NO: formula ' + format(e['formula_macs'], ',')} | "
                      f"{e['ops_added']} | {', '.join(e['new_op_types'])} | {e['elements_read'] / 1e6:.1f} | "
                      f"{e['ort_nodes']} ({e['ort_reorders']}) | "
                      f"{results['ort_extended'][block]['added_ms']:+.1f} | "
                      f"{e['torch_identity_max_diff']:.2g} / {e['onnx_identity_max_diff']:.2g} / "
                      f"{e['onnx_identity_max_diff_extended']:.2g} |")
    torch_note = (f" torch eager: {results['runs']} rounds, {results['torch_seconds']:.0f} s."
                  if "torch" in results else "")
    return "\n".join([
        "# Cost of each gate type on ResNet-50",
        "",
        "ResNet-50 (tests/models/resnet.py, the torchvision architecture), rule `residual_branch` with each",
        "type's default settings and `init=\"identity\"`: 16 blocks, one after each bottleneck's bn3, on",
        "256×56×56, 512×28×28, 1024×14×14 and 2048×7×7 maps. Parameters and MACs from the plan (MACs",
        "from the ONNX plan of the static 1×3×224×224 export; the plain model's row counts its Conv and",
        "Linear MACs). Latency: median over the runs at batch 1, one thread, measured as the CPU time of",
        "the calling thread (with one thread onnxruntime and torch compute there), which is what a run costs",
        "on a core of its own; the wall-clock medians, which on this shared machine also count the time",
        "spent waiting for a core, are below. \"added\" is median(model) − median(plain); the plain row",
        "gives ± half its interquartile range as a noise scale.",
        "",
        table(results),
        "",
        "Wall clock (same runs):",
        "",
        table(results, "_wall", costs=False),
        "",
        "![added latency vs parameters](cost.png)",
        "",
        "Checks and structure: params = the torch plan = the inserted torch modules = the ONNX initializers",
        "named like the blocks' parameters (the rewrite also adds constants: gains, clip bounds, shapes, axes,",
        "BatchNorm statistics); MACs = `SEConfig.added_macs` summed over the site shapes; elements read = the",
        "input sizes of all added ONNX nodes (maps, vectors, weights); ORT nodes run = the graph onnxruntime",
        "executes after its default optimisations on this CPU, with its NCHWc layout conversions",
        f"(ReorderInput/ReorderOutput); ORT added ms, extended = the added CPU time at ORT_ENABLE_EXTENDED",
        f"(no NCHWc layout; {results['extended_runs']} rounds; the plain model's time in brackets); identity max",
        "|Δ| = each rewritten model at identity against the plain one.",
        "",
        "| type | blocks | params agree | MACs agree | ONNX nodes added | new op types | elements read by added nodes (M) | "
        "ORT nodes run (layout reorders) | ORT added ms, extended | identity max \\|Δ\\| torch / ORT / ORT extended |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| plain | — | — | — | — | — | — | {base['ort_nodes']} ({base['ort_reorders']}) | "
        f"({results['ort_extended']['plain']['median_ms']:.1f} ms) | — |",
        *checks,
        "",
        *reading(results),
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores shared with other jobs "
        f"(timings are noisy: read added times within the plain row's ± as zero); onnxruntime "
        f"{results['machine']['onnxruntime']} (CPUExecutionProvider, intra_op_num_threads=1, default graph "
        f"optimisations), torch {results['machine']['torch']} (torch.set_num_threads(1)); python "
        f"{results['machine']['python']}. onnxruntime: {results['runs']} rounds after {results['warmup']} "
        f"warm-up round(s), {results['ort_seconds']:.0f} s.{torch_note} Total {results['seconds']:.0f} s.",
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed rounds per model (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--quick", action="store_true", help="5 rounds, 1 warm-up, no torch timing (a smoke run)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch eager timings")
    parser.add_argument("--json", default=None, help="write the results as JSON to this path")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/gates/cost.md and cost.png")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.warmup, args.no_torch = 5, 1, True
    if args.runs < 2:
        parser.error("--runs must be at least 2")
    start = time.perf_counter()
    results = measure(args)
    results.update(runs=args.runs, warmup=args.warmup, seconds=time.perf_counter() - start,
                   machine={"cpu": cpu_model(), "cores": os.cpu_count(),
                            "onnxruntime": ort.__version__, "torch": torch.__version__,
                            "python": platform.python_version()})
    shown = [a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--json") and sys.argv[i] != "--json"]
    command = " ".join([".venv/bin/python benchmarks/bench_gates.py", *shown])
    body = table(results)
    print(body)
    bad = [b for b, e in results["blocks"].items() if not (e["params_consistent"] and e["macs_consistent"])]
    if bad:
        print(f"inconsistent counts: {bad}", file=sys.stderr)
    if not args.no_write:
        out = ROOT / "docs" / "gates"
        out.mkdir(parents=True, exist_ok=True)
        (out / "cost.md").write_text(document(results, command))
        plot(results, out / "cost.png")
        print("wrote docs/gates/cost.md, docs/gates/cost.png", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
