"""Speed of SE checkpoints: seinject.save and seinject.load on the in-repo ResNet-50 (residual_branch).

    .venv/bin/python benchmarks/bench_checkpoint.py [--repeat 7]

Target: save < 0.5 s and load < 0.5 s each on 2 cores. save writes the 64 SE tensors
(2.5 M parameters, about 10 MB) and the metadata atomically (temporary file, fsync,
rename). load reads the metadata, applies the stored rule to a plain ResNet-50 (default:
on a copy, as apply does; also timed in place), checks every block and copies the
weights in. Prints the best and the median of --repeat runs in this process.
On a shared 2-core VM, torch's parallel copies (the model copy, the weights copied in)
stall while another process holds the second core; `--threads 1` shows the time without
that wait.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import seinject  # noqa: E402
from tests.models import resnet50  # noqa: E402


def timed(fn, repeat: int, setup=lambda: None) -> list[float]:
    """Seconds of `fn(setup())` over `repeat` runs; setup is not timed."""
    times = []
    for _ in range(repeat):
        arg = setup()
        gc.collect()
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = seinject.apply(resnet50(), rule="residual_branch")
    with torch.no_grad():  # move the blocks off identity, as training would
        for _, param in seinject.se_parameters(model):
            param.normal_(0, 0.01)
    folder = Path(tempfile.mkdtemp())
    path = folder / "se.safetensors"
    seinject.load(resnet50(), seinject.save(model, path))  # warm-up: imports, rule loading, caches
    rows = {
        "save (64 tensors, atomic write)": timed(lambda _: seinject.save(model, path), args.repeat),
        "load into a plain ResNet-50 (default copy)": timed(lambda plain: seinject.load(plain, path),
                                                           args.repeat, resnet50),
        "load into a plain ResNet-50 (inplace=True)": timed(lambda plain: seinject.load(plain, path, inplace=True),
                                                           args.repeat, resnet50),
    }
    torch.manual_seed(0)  # the same base weights as the saved model's
    loaded = seinject.load(resnet50(), path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        exact = torch.equal(loaded.eval()(x), model.eval()(x))
    print(f"torch threads: {torch.get_num_threads()}; file: {path.stat().st_size / 1e6:.1f} MB, "
          f"{len(seinject.state_dict(model))} tensors, "
          f"{sum(p.numel() for _, p in seinject.se_parameters(model)):,} SE parameters")
    print(f"{'case':44s} {'best':>8s} {'median':>8s}")
    for name, times in rows.items():
        print(f"{name:44s} {min(times) * 1000:6.1f} ms {statistics.median(times) * 1000:6.1f} ms")
    print(f"loaded model's outputs equal the saved model's: {exact}")


if __name__ == "__main__":
    main()
