"""MNIST-1D (Greydanus 2020) generated offline: the standard 4,000 train / 1,000 test split as N×1×40 tensors.

`mnist1d.make_dataset` builds the data from the package's ten digit templates with numpy and
scipy; it never downloads (only `mnist1d.get_dataset` may fetch a pickle, and it is not used).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """One split: inputs N×1×40 (float32) and labels N (int64)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int | None) -> "Split":
        """The first n samples (all of them when n is None).

        Example:
            >>> s = Split(torch.zeros(5, 1, 40), torch.arange(5))
            >>> len(s.subset(2)), len(s.subset(None))
            (2, 5)
        """
        return self if n is None else Split(self.x[:n], self.y[:n])


def load(samples: int | None = None) -> tuple[Split, Split]:
    """(train, test) with the package's default arguments: 5,000 samples, 80 % train, length 40, seed 42
    (samples: fewer, for quick tests; the split stays 80/20).

    The generator reseeds numpy's and python's global random state (mnist1d.set_seed); the
    study seeds everything it uses itself afterwards.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise SystemExit("the study needs mnist1d: pip install -e '.[study]' (bash scripts/setup.sh does)") from None
    args = get_dataset_args()
    if samples is not None:
        args.num_samples = samples
    data = make_dataset(args)
    train = Split(_inputs(data["x"]), torch.as_tensor(data["y"], dtype=torch.int64))
    test = Split(_inputs(data["x_test"]), torch.as_tensor(data["y_test"], dtype=torch.int64))
    return train, test


def _inputs(array) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32).unsqueeze(1)
