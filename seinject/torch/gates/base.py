"""Gate: the base class of every block seinject inserts in a torch model (SE, ECA, CBAM, ...).

A gate maps an N×C×spatial… tensor to one of the same shape. seinject recognises any Gate as
"already has a gate" on re-apply, removes it with `remove()`, stores it with `save()`.

Example:
    >>> from seinject.torch.gates import build_gate
    >>> from seinject.rule.config import SEConfig
    >>> gate = build_gate(16, 2, SEConfig(block="eca"))
    >>> isinstance(gate, Gate), gate.is_identity()
    (True, True)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class Gate(nn.Module):
    """A block that starts at identity (init="identity") or as published (init="random").

    Subclasses set `block_type` (a name of seinject.rule.gates.SPECS) and implement forward
    and is_identity; channel gates also implement gate_values (N×C, for seinject.excitations).
    """

    block_type: ClassVar[str] = ""

    def _configure(self, channels: int, config, hidden: int | None = None) -> bool:
        """Set the attributes every gate shares (channels, hidden, act_name, gate_name, init_mode,
        gain: 2 at identity, else 1); returns whether the block starts at identity."""
        self.channels = channels
        self.hidden = config.hidden_channels(channels) if hidden is None else hidden
        self.act_name = config.act
        self.gate_name = config.gate
        self.init_mode = config.init
        identity = config.init == "identity"
        self.gain = 2.0 if identity else 1.0
        return identity

    def is_identity(self) -> bool:
        """True while the block still returns its input exactly.

        Example:
            >>> from seinject.torch.block import SqueezeExcite
            >>> SqueezeExcite(8).is_identity()
            True
        """
        raise NotImplementedError

    def gate_values(self, x: torch.Tensor) -> torch.Tensor | None:
        """The channel gate of each sample (N×C), or None for blocks without one per channel.

        Example:
            >>> from seinject.torch.block import SqueezeExcite
            >>> SqueezeExcite(4).gate_values(torch.zeros(1, 4, 2)).shape
            torch.Size([1, 4])
        """
        return None
