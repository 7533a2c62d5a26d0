"""What the safety checks cost, and how fast hostile input is refused (README "Safety").

    .venv/bin/python benchmarks/bench_safety.py [--repeat 5]

- user regexes: matching `include` patterns on ResNet-50's sites on the main thread (interval
  timer) and on a worker thread (a child Python process), against no patterns;
- torch verification: `seinject.apply` on ResNet-50 with example_inputs (1×3×224×224), verify on
  and off;
- refusals: a 493-byte YAML alias bomb, a 50 MB rule file, a backtracking pattern (`(a+)+$`)
  stopped at the 2 s deadline.
Best of --repeat runs each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import seinject  # noqa: E402
from seinject.rule.patterns import matching_names  # noqa: E402
from tests.models import resnet50  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def on_thread(fn):
    def run():
        thread = threading.Thread(target=fn)
        thread.start()
        thread.join()
    return run


def refused(fn) -> None:
    try:
        fn()
    except seinject.SEInjectError:
        return
    raise AssertionError("not refused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = resnet50().eval()
    names = [site.name for site in seinject.plan(model, "residual_branch")]
    patterns = [r"layer[34]\.", r"^layer1\.0"]
    print(f"regex matching, {len(patterns)} patterns x {len(names)} ResNet-50 site names:")
    print(f"  main thread (interval timer)   {best(lambda: matching_names(patterns, names, 'include'), args.repeat) * 1e3:8.2f} ms")
    print(f"  worker thread (child process)  "
          f"{best(on_thread(lambda: matching_names(patterns, names, 'include')), args.repeat) * 1e3:8.2f} ms")
    x = torch.randn(1, 3, 224, 224)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        off = best(lambda: seinject.apply(model, "residual_branch", example_inputs=x, verify=False), args.repeat)
        on = best(lambda: seinject.apply(model, "residual_branch", example_inputs=x), args.repeat)
    print("seinject.apply(resnet50, residual_branch, example_inputs=1x3x224x224):")
    print(f"  verify=False {off * 1e3:8.1f} ms   verify (default) {on * 1e3:8.1f} ms   (+{(on - off) * 1e3:.1f} ms)")
    sys.path.insert(0, str(ROOT / "tests"))
    from tests.hostile.test_rules_and_options import alias_bomb

    bomb = alias_bomb() + "name: *a8\npattern: [add]\n"
    print("refusals:")
    print(f"  {len(bomb.encode())}-byte alias bomb              "
          f"{best(lambda: refused(lambda: seinject.parse_rule(bomb, 'bomb.yaml')), args.repeat) * 1e3:8.2f} ms")
    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.yaml"
        big.write_bytes(b"name: x\npattern: [add]\ndescription: |\n  " + b"x" * (50 << 20) + b"\n")
        print(f"  50 MB rule file                    "
              f"{best(lambda: refused(lambda: seinject.load_rule(big)), args.repeat) * 1e3:8.2f} ms")

    class LongName(torch.nn.Module):
        def __init__(self):
            super().__init__()
            setattr(self, "a" * 30, torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()))

        def forward(self, x):
            return getattr(self, "a" * 30)(x)

    print(f"  (a+)+$ against a 30-a name         "
          f"{best(lambda: refused(lambda: seinject.plan(LongName(), 'conv_block', include=r'(a+)+$')), 1):8.2f} s")


if __name__ == "__main__":
    main()
