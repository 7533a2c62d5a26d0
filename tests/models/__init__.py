"""Small self-contained PyTorch fixture models reproducing the block structures of well-known CNNs (for seinject tests)."""

from functools import partial
from typing import Callable, Dict, Tuple

import torch.nn as nn

from .control_flow import (
    DataDependentNet,
    GatedResidualBlock,
    ResidualBlock,
    UntraceableBlockNet,
    data_dependent_net,
    untraceable_block_net,
)
from .conv_nd import resnet1d_tiny, resnet3d_tiny
from .convnext import convnext_tiny_fixture
from .densenet import densenet_tiny
from .efficientnet import efficientnet_tiny
from .functional import FunctionalResNet, functional_resnet
from .inception import inception_tiny
from .mobilenetv2 import mobilenetv2_tiny
from .preact_resnet import preact_resnet_tiny
from .resnet import (
    resnet18,
    resnet50,
    resnet_deep,
    resnet_tiny,
    resnext50_32x4d,
    wide_resnet50_2,
)
from .vgg import vgg_tiny

__all__ = [
    "ALL_FIXTURES",
    "FAST_FIXTURES",
    "FULL_SIZE_FIXTURES",
    "UNTRACEABLE_FIXTURES",
    "DataDependentNet",
    "FunctionalResNet",
    "GatedResidualBlock",
    "ResidualBlock",
    "UntraceableBlockNet",
    "convnext_tiny_fixture",
    "data_dependent_net",
    "densenet_tiny",
    "efficientnet_tiny",
    "functional_resnet",
    "inception_tiny",
    "mobilenetv2_tiny",
    "preact_resnet_tiny",
    "resnet18",
    "resnet1d_tiny",
    "resnet3d_tiny",
    "resnet50",
    "resnet_deep",
    "resnet_tiny",
    "resnext50_32x4d",
    "untraceable_block_net",
    "vgg_tiny",
    "wide_resnet50_2",
]

Shape = Tuple[int, ...]
FixtureEntry = Tuple[Callable[[], nn.Module], Shape]

_IMG32: Shape = (2, 3, 32, 32)
_IMG64: Shape = (2, 3, 64, 64)

# name -> (zero-argument builder, example input shape)
ALL_FIXTURES: Dict[str, FixtureEntry] = {
    # torchvision-sized ResNets (build ~0.1-1 s each; 64x64 inputs keep the forward cheap)
    "resnet18": (resnet18, _IMG64),
    "resnet50": (resnet50, _IMG64),
    "resnext50_32x4d": (resnext50_32x4d, _IMG64),
    "wide_resnet50_2": (wide_resnet50_2, _IMG64),
    # tiny fixtures
    "resnet_tiny": (resnet_tiny, _IMG32),
    "resnet_tiny_bottleneck": (partial(resnet_tiny, block="bottleneck"), _IMG32),
    "resnet_deep": (partial(resnet_deep, 8), _IMG32),
    "preact_resnet_tiny": (preact_resnet_tiny, _IMG32),
    "mobilenetv2_tiny": (mobilenetv2_tiny, _IMG32),
    "efficientnet_tiny": (efficientnet_tiny, _IMG32),
    "densenet_tiny": (densenet_tiny, _IMG32),
    "inception_tiny": (inception_tiny, _IMG32),
    "vgg_tiny": (vgg_tiny, _IMG32),
    "vgg_tiny_nobn": (partial(vgg_tiny, batch_norm=False), _IMG32),
    "convnext_tiny_fixture": (convnext_tiny_fixture, _IMG32),
    "resnet1d_tiny": (resnet1d_tiny, (2, 3, 64)),
    "resnet3d_tiny": (resnet3d_tiny, (2, 3, 8, 16, 16)),
    "data_dependent_net": (data_dependent_net, _IMG32),
    "untraceable_block_net": (untraceable_block_net, _IMG32),
    "functional_resnet": (functional_resnet, _IMG32),
}

# Convenience subsets of ALL_FIXTURES.
FULL_SIZE_FIXTURES = ("resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2")
UNTRACEABLE_FIXTURES = ("data_dependent_net", "untraceable_block_net")
FAST_FIXTURES: Dict[str, FixtureEntry] = {k: v for k, v in ALL_FIXTURES.items() if k not in FULL_SIZE_FIXTURES}
