"""Site, Skip and SpliceResult: where SE blocks go, what gets none and why, and what a splice did.

Example:
    >>> s = Site(name="layer1.0.bn3", rule="residual_branch", position="branch_end", node="n7",
    ...          consumers=("n9",), channels=256, hidden=16, params=8464, stage=1)
    >>> s.describe()
    'on layer1.0.bn3 → residual add'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

_WORDING = {
    "after": "after {name}",
    "branch_end": "on {name} → residual add",
    "branch_start": "before {name} (branch start)",
    "shortcut": "on shortcut {name} → residual add",
}


@dataclass(frozen=True, kw_only=True)
class Site:
    """Where one SE block goes and what it costs.

    name: qualified name of the op the SE block follows (for branch_start: precedes).
    node: view id of the value SE scales; consumers: view ids that will read the SE
    output instead (None: every consumer of node). stage: the k-th resolution among the rule's
    sites, None when seinject cannot prove it (seinject.graph.resolution). macs: multiply-accumulates per
    sample the block adds, where the backend counts them and the spatial size is known
    (the ONNX backend), else None. spatial_rank: spatial dims of the scaled value (2 for
    N×C×H×W) when known; gate types defined on some ranks only are skipped elsewhere.

    Example:
        >>> Site(name="features.2", rule="conv_block", position="after", node="n3", consumers=None,
        ...      channels=16, hidden=1, params=49, stage=1).params
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
    stage: int | None
    macs: int | None = None
    spatial_rank: int | None = None

    def describe(self) -> str:
        """Where the block goes, in words."""
        return _WORDING[self.position].format(name=self.name)

    def to_dict(self) -> dict:
        """JSON-ready form (without the view ids)."""
        data = asdict(self)
        data["placement"] = self.describe()
        data.pop("node")
        data.pop("consumers")
        return data


@dataclass(frozen=True, kw_only=True)
class Skip:
    """A match or a part of the model that gets no SE block, and why.

    Example:
        >>> Skip(name="layer1.0.relu_2", reason="already has SE").reason
        'already has SE'
    """

    name: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Inserted:
    """One SE block a rewrite added: its name and the site it sits at.

    module: the qualified name of the new SqueezeExcite module (torch) or the name
    prefix of the block's nodes (ONNX, e.g. 'seinject/layer1.0.relu_1').

    Example:
        >>> site = Site(name="1", rule="conv_block", position="after", node="n1", consumers=None,
        ...             channels=16, hidden=1, params=49, stage=1)
        >>> Inserted(module="se", site=site).to_dict()["module"]
        'se'
    """

    module: str
    site: Site

    def to_dict(self) -> dict:
        """The site's JSON-ready form with the block's name first."""
        return {"module": self.module, **self.site.to_dict()}


@dataclass(kw_only=True)
class SpliceResult:
    """What a backend's splice did: the blocks it inserted, in site order, and the sites it could not take.

    Example:
        >>> SpliceResult().inserted
        []
    """

    inserted: list[Inserted] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
