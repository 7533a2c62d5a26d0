"""Speed of the torch backend: plan and apply on ResNet-50, and how cost grows with depth.

    .venv/bin/python benchmarks/bench_torch.py [--repeat 5]

Targets: apply on ResNet-50 (trace, match, splice; no verification) < 1 s on
2 cores, plan faster; a 1,000-block residual net rewrites in < 20x the time of 50 blocks.
Reports the best of --repeat runs in this process (timeit's convention: the least
disturbed run), and for the depth ratio also the median of --repeat runs in fresh
processes, the way a user's script calls apply once. Wall time on a shared 2-core VM
swings by +-25 % between identical runs; `--instructions` counts the rewrite's
instructions with valgrind's callgrind instead (free of machine noise, though each count
is a difference of two whole-process counts and moves by about 0.03 G; slow: about 10 minutes).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
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


def fresh_rounds(repeat: int) -> dict[int, list[float]]:
    """In-place rewrite times of 50- and 1000-block nets, each in a fresh process.

    Each run is what a user's script does: one warm-up apply on a 2-block net (imports,
    rule loading, torch's caches), then build the model and time one apply. The depths
    alternate, so both meet the same machine conditions (the VM's speed drifts over seconds).
    """
    times: dict[int, list[float]] = {50: [], 1000: []}
    for _ in range(repeat):
        for blocks, runs in times.items():
            out = subprocess.run([sys.executable, __file__, "--one", str(blocks), "time"],
                                 capture_output=True, text=True, check=True)
            runs.append(float(out.stdout))
    return times


def instructions(blocks: int, rewrite: bool) -> int:
    """Instructions callgrind counts for building (and rewriting) a `blocks`-block net,
    after a warm-up rewrite of a 2-block net in both cases."""
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                          __file__, "--one", str(blocks), "rewrite" if rewrite else "build"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"})  # same dict/set layouts each run
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def count_instructions() -> None:
    counts = {n: instructions(n, True) - instructions(n, False) for n in (50, 1000)}
    for n, count in counts.items():
        print(f"{n}-block rewrite: {count / 1e9:.2f} G instructions")
    print(f"1000 / 50 blocks instruction ratio: {counts[1000] / counts[50]:.1f} x  (linear: 20 x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--one", nargs=2, metavar=("BLOCKS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        # a warm process in both modes: the first apply imports modules, loads the rule and
        # fills torch's caches; the counted difference is one rewrite of a warm process
        seinject.apply(resnet_deep(2), rule="residual_branch", inplace=True)
        model = resnet_deep(int(args.one[0]))
        gc.collect()
        start = time.perf_counter()
        if args.one[1] in ("rewrite", "time"):
            seinject.apply(model, rule="residual_branch", inplace=True)
        if args.one[1] == "time":
            print(time.perf_counter() - start)
        return
    if args.instructions:
        count_instructions()
        return
    r50 = resnet50()
    rows = [
        ("ResNet-50 plan (after_residual)", best_seconds(lambda: seinject.plan(r50), args.repeat)),
        ("ResNet-50 apply, in place (residual_branch)", best_in_place(args.repeat)),
        ("ResNet-50 apply, default copy (residual_branch)",
         best_seconds(lambda: seinject.apply(r50, rule="residual_branch"), args.repeat)),
    ]
    deep = {}
    for blocks in (50, 1000):
        deep[blocks] = best_in_place(args.repeat, lambda: resnet_deep(blocks))
        rows.append((f"{blocks}-block residual net rewrite (in place)", deep[blocks]))
        model = resnet_deep(blocks)
        rows.append((f"{blocks}-block residual net apply (with copy)",
                     best_seconds(lambda: seinject.apply(model, rule="residual_branch"), args.repeat)))
    for name, seconds in rows:
        print(f"{name:48s} {seconds * 1000:8.1f} ms")
    for blocks, seconds in deep.items():
        print(f"{f'{blocks}-block rewrite, per block':48s} {seconds / blocks * 1000:8.3f} ms")
    print(f"{'1000 / 50 blocks rewrite time ratio':48s} {deep[1000] / deep[50]:8.1f} x  (linear: 20 x)")
    fresh = fresh_rounds(args.repeat)
    medians = {blocks: statistics.median(times) for blocks, times in fresh.items()}
    for blocks, seconds in medians.items():
        print(f"{f'{blocks}-block rewrite, fresh process (median)':48s} {seconds * 1000:8.1f} ms")
    per_round = sorted(big / small for small, big in zip(fresh[50], fresh[1000]))
    under = sum(ratio < 20 for ratio in per_round)
    print(f"{'1000 / 50 blocks, fresh processes':48s} {medians[1000] / medians[50]:8.1f} x  "
          f"(per round {per_round[0]:.1f}-{per_round[-1]:.1f}, {under} of {len(per_round)} under 20 x)")

if __name__ == "__main__":
    main()
