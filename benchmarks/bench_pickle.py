"""Speed of pickling a rewritten model: ResNet-50 with SE blocks against the plain ResNet-50.

    .venv/bin/python benchmarks/bench_pickle.py [--repeat 7]

Times `pickle.loads(pickle.dumps(model))` and a `torch.save` / `torch.load` round trip
through memory, best of --repeat runs each; plain and rewritten runs alternate, so both
see the same load on a shared machine. Target: the rewritten model takes at most 2x the
plain model's time (it also has 10 % more weights to copy). "cold" loads clear seinject's
class cache first, so every rewritten class is compiled again from its recipe, as in a
fresh process.
"""

from __future__ import annotations

import argparse
import gc
import io
import pickle
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import seinject  # noqa: E402
from seinject.torch import install  # noqa: E402
from tests.models import resnet50  # noqa: E402


def best_pair(plain, rewritten, repeat: int, before=lambda: None) -> tuple[float, float]:
    """Best times of two functions over `repeat` rounds that run each once, alternating."""
    times: tuple[list, list] = ([], [])
    for _ in range(repeat):
        for fn, out in ((plain, times[0]), (rewritten, times[1])):
            before()
            gc.collect()
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def pickle_round_trip(model: torch.nn.Module) -> torch.nn.Module:
    return pickle.loads(pickle.dumps(model))


def torch_round_trip(model: torch.nn.Module) -> torch.nn.Module:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    torch.manual_seed(0)
    plain = resnet50().eval()
    rewritten = seinject.apply(plain, rule="residual_branch", ratio=16, divisor=8)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(pickle_round_trip(rewritten)(x), rewritten(x))
    print(f"ResNet-50, {len(seinject.report(rewritten).inserted)} SE blocks (residual_branch), "
          f"best of {args.repeat}")
    for label, trip in (("pickle.dumps + loads", pickle_round_trip), ("torch.save + load", torch_round_trip)):
        base, new = best_pair(lambda: trip(plain), lambda: trip(rewritten), args.repeat)
        print(f"{label:22s} plain {base * 1e3:7.1f} ms   rewritten {new * 1e3:7.1f} ms   "
              f"ratio {new / base:.2f}x (target <= 2x)")
    data = [pickle.dumps(plain), pickle.dumps(rewritten)]
    base, new = best_pair(lambda: pickle.loads(data[0]), lambda: pickle.loads(data[1]), args.repeat,
                          before=install._CLASSES.clear)
    print(f"{'pickle.loads, cold':22s} plain {base * 1e3:7.1f} ms   rewritten {new * 1e3:7.1f} ms   "
          f"ratio {new / base:.2f}x")


if __name__ == "__main__":
    main()
