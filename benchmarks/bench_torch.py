"""Speed of the torch backend: plan and apply on ResNet-50, and how cost grows with depth.

    .venv/bin/python benchmarks/bench_torch.py [--repeat 5]

Targets (issue): apply on ResNet-50 (trace, match, splice; no verification) < 1 s on
2 cores, plan faster; a 1,000-block residual net rewrites in < 20x the time of 50 blocks.
Reports the best of --repeat runs (timeit's convention: the least disturbed run).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import seinject  # noqa: E402
from tests.models import resnet50, resnet_deep  # noqa: E402


def best_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_in_place(repeat: int, build=resnet50) -> float:
    """apply(inplace=True) on a freshly built model each time: trace, match, splice."""
    times = []
    for _ in range(repeat):
        model = build()
        gc.collect()
        start = time.perf_counter()
        seinject.apply(model, rule="residual_branch", inplace=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    r50 = resnet50()
    rows = [
        ("ResNet-50 plan (after_residual)", best_seconds(lambda: seinject.plan(r50), args.repeat)),
        ("ResNet-50 apply, in place (residual_branch)", best_in_place(args.repeat)),
        ("ResNet-50 apply, default copy (residual_branch)",
         best_seconds(lambda: seinject.apply(r50, rule="residual_branch"), args.repeat)),
    ]
    deep = {}
    for blocks in (50, 1000):
        repeat = args.repeat if blocks < 1000 else max(1, args.repeat // 2)
        deep[blocks] = best_in_place(repeat, lambda: resnet_deep(blocks))
        rows.append((f"{blocks}-block residual net rewrite (in place)", deep[blocks]))
        model = resnet_deep(blocks)
        rows.append((f"{blocks}-block residual net apply (with copy)",
                     best_seconds(lambda: seinject.apply(model, rule="residual_branch"), repeat)))
    for name, seconds in rows:
        print(f"{name:48s} {seconds * 1000:8.1f} ms")
    print(f"{'1000 / 50 blocks rewrite time ratio':48s} {deep[1000] / deep[50]:8.1f} x  (linear: 20 x)")


if __name__ == "__main__":
    main()
