"""Benchmark of the ONNX backend: ResNet-50 file load+match+splice+save, and linear growth 5k → 50k nodes.

Usage:
    .venv/bin/python benchmarks/bench_onnx.py [--repeats 5] [--json]

Targets:
- ResNet-50 ONNX file (torch.onnx.export of tests.models.resnet50): load, match, splice
  and save in under 2 s without verification;
- a synthetic 50,000-node graph rewrites in under 15x the time of a 5,000-node one.
Exports and graph building happen before the clock starts; each timed run is one
seinject.onnx.apply_file(verify=False) call (the `seinject onnx --no-verify` work).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
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

import seinject.onnx as so  # noqa: E402


def export_resnet50(folder: Path, dynamo: bool) -> Path:
    """tests.models.resnet50 exported in eval mode at 224×224 (dynamic batch)."""
    import torch

    from tests.models import resnet50

    torch.manual_seed(0)
    model = resnet50().eval()
    path = folder / f"resnet50-{'dynamo' if dynamo else 'legacy'}.onnx"
    x = torch.randn(1, 3, 224, 224)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (x,), str(path), dynamo=True,
                              dynamic_shapes=({0: torch.export.Dim("N", min=1, max=256)},))
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                              dynamic_axes={"x": {0: "N"}})
    return path


def time_apply(src: Path, repeats: int, rule: str = "after_residual") -> dict:
    """Seconds of apply_file(verify=False) per run (first run separately), and the phases of the last."""
    dst = src.with_name(src.stem + "-se.onnx")
    runs, report = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        report = so.apply_file(src, dst, rule, verify=False, overwrite=True)
        runs.append(time.perf_counter() - start)
    return {"first_s": runs[0], "median_s": statistics.median(runs), "min_s": min(runs),
            "blocks": len(report.inserted), "phases_s": {k: round(v, 4) for k, v in report.seconds.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    from tests.onnx_backend.graphs import synthetic_resnet

    results: dict = {"machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}, "
                                f"onnx {onnx.__version__}"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for dynamo in (False, True):
            path = export_resnet50(folder, dynamo)
            entry = time_apply(path, args.repeats)
            start = time.perf_counter()
            verified = so.apply_file(path, folder / "verified.onnx", verify=True, overwrite=True)
            entry.update(size_mb=round(path.stat().st_size / 1e6, 1), with_verify_s=time.perf_counter() - start,
                         max_abs_diff=verified.max_abs_diff)
            results[f"resnet50_{'dynamo' if dynamo else 'legacy'}"] = entry
        for blocks in (1_000, 10_000):
            model = synthetic_resnet(blocks)
            path = folder / f"synthetic-{len(model.graph.node)}.onnx"
            onnx.save(model, path)
            entry = time_apply(path, max(2, args.repeats // 2))
            entry["nodes"] = len(model.graph.node)
            results[f"synthetic_{len(model.graph.node)}"] = entry
    small, large = results["synthetic_5002"], results["synthetic_50002"]
    results["ratio_50k_over_5k"] = large["median_s"] / small["median_s"]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"seinject ONNX benchmark ({results['machine']})")
    print(f"{'model':<22}{'blocks':>8}{'first s':>10}{'median s':>10}{'+verify s':>11}  phases (last run)")
    for key, entry in results.items():
        if not isinstance(entry, dict) or "median_s" not in entry:
            continue
        verify = f"{entry['with_verify_s']:.2f}" if "with_verify_s" in entry else "-"
        phases = " ".join(f"{k} {v:.3f}" for k, v in entry["phases_s"].items())
        print(f"{key:<22}{entry['blocks']:>8}{entry['first_s']:>10.3f}{entry['median_s']:>10.3f}{verify:>11}  {phases}")
    print(f"50k / 5k nodes time ratio: {results['ratio_50k_over_5k']:.1f} (target < 15)")
    for key in ("resnet50_legacy", "resnet50_dynamo"):
        print(f"{key}: max |new - old| at identity = {results[key]['max_abs_diff']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
