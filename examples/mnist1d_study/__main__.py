"""Command line of the study: `python -m examples.mnist1d_study [--seeds N --steps N ...]` from the repository root."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields

import torch

from . import data, study


def parse(argv: list[str] | None = None) -> tuple[study.Config, argparse.Namespace]:
    """The Config the options describe (defaults: the committed run), and the other options.

    Example:
        >>> config, options = parse(["--seeds", "2", "--steps", "200", "--out", "/tmp/s"])
        >>> config.seeds, config.steps, config.pretrain_steps, options.out
        (2, 200, 1000, '/tmp/s')
        >>> config.lr
        0.0003
    """
    defaults = study.Config()
    parser = argparse.ArgumentParser(prog="python -m examples.mnist1d_study", description=(
        "Pretrain a 1-D ResNet on MNIST-1D, then fine-tune four arms from that checkpoint (P plain, I seinject "
        "identity init, R random-init SE, S identity init with only SE + head trained) over several seeds; "
        "excitation analysis and folding on the fine-tuned I model. Writes results.md, results.json, "
        "curves.png and excitations.png."))
    parser.add_argument("--seeds", type=int, default=defaults.seeds, help="fine-tuning seeds per arm (default %(default)s)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="fine-tuning steps per run (default %(default)s)")
    parser.add_argument("--pretrain-steps", type=int, default=defaults.pretrain_steps,
                        help="pretraining steps (default %(default)s)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="fine-tuning learning rate, every arm (default %(default)s)")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every,
                        help="test accuracy every K fine-tuning steps (default %(default)s)")
    parser.add_argument("--train-subset", type=int, default=None, help="use only the first N training samples")
    parser.add_argument("--test-subset", type=int, default=None, help="use only the first N test samples")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: steady timings on a shared 2-core machine)")
    parser.add_argument("--out", default="docs/study", help="output folder (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    options = parser.parse_args(argv)
    for name in ("seeds", "steps", "pretrain_steps", "threads"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if options.seeds < 2:
        print("note: one seed gives no standard deviation", file=sys.stderr)
    known = {f.name for f in fields(study.Config)}
    values = {k: v for k, v in vars(options).items() if k in known}
    values["progress"] = not options.no_progress
    return study.Config(**{**vars(defaults), **values}), options


def main(argv: list[str] | None = None) -> int:
    config, options = parse(argv)
    torch.set_num_threads(options.threads)
    started = time.perf_counter()
    train, test = data.load()
    result, excitations = study.run(config, train, test)
    result.wall_seconds = time.perf_counter() - started
    result.command = " ".join(["python -m examples.mnist1d_study", *(argv if argv is not None else sys.argv[1:])])
    paths = study.write(result, excitations, options.out)
    print(study.markdown(result))
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"wall time {result.wall_seconds:.0f} s (data generation included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
