"""Site: one place where an SE block goes, as the matcher finds it.

Example:
    >>> s = Site("layer1.0.bn3", "residual_branch", "branch_end", "n7", ("n9",), 256, 16, 8464, 1)
    >>> s.describe()
    'on layer1.0.bn3 → residual add'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

_WORDING = {
    "after": "after {name}",
    "branch_end": "on {name} → residual add",
    "branch_start": "before {name} (branch start)",
    "shortcut": "on shortcut {name} → residual add",
}


@dataclass(frozen=True)
class Site:
    """Where one SE block goes and what it costs.

    name: qualified name of the op the SE block follows (for branch_start: precedes).
    node: view id of the value SE scales; consumers: view ids that will read the SE
    output instead (None: every consumer of node).

    Example:
        >>> Site("features.2", "conv_block", "after", "n3", None, 16, 1, 49, 1).params
        49
    """

    name: str
    rule: str
    position: str
    node: str
    consumers: tuple[str, ...] | None
    channels: int
    hidden: int
    params: int
    stage: int

    def describe(self) -> str:
        """Where the block goes, in words."""
        return _WORDING[self.position].format(name=self.name)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        data = asdict(self)
        data["placement"] = self.describe()
        data.pop("node")
        data.pop("consumers")
        return data


@dataclass(frozen=True)
class Skip:
    """A match that gets no SE block, and why.

    Example:
        >>> Skip("layer1.0.relu_2", "already has SE").reason
        'already has SE'
    """

    name: str
    reason: str
