"""Rule and its parts: what a YAML rule means once loaded (frozen dataclasses).

A rule is a chain pattern over op kinds, an insertion point relative to it,
filters that narrow the sites down, and the SE settings to use there.

Example:
    >>> spec = OpSpec(kinds=("add",), residual=True)
    >>> Rule(name="demo", pattern=(spec,), insert=Insert()).insert.position
    'after'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import checks
from .config import SEConfig

POSITIONS = ("after", "branch_end", "branch_start", "shortcut")


@dataclass(frozen=True)
class OpSpec:
    """One element of a pattern: which ops it accepts.

    Example:
        >>> OpSpec(kinds=("conv",), depthwise=True).kinds
        ('conv',)
    """

    kinds: tuple[str, ...]
    id: str | None = None
    optional: bool = False
    depthwise: bool | None = None
    grouped: bool | None = None
    kernel_size: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    fn: tuple[str, ...] | None = None
    residual: bool | None = None
    channel_concat: bool | None = None
    min_channels: int | None = None
    max_channels: int | None = None
    line: int | None = None


@dataclass(frozen=True)
class Insert:
    """Where the SE block goes, relative to a pattern element.

    position: after (on the element's output, for all its consumers),
    branch_end / branch_start / shortcut (relative to a residual add element).

    Example:
        >>> Insert(position="branch_end", node="join").node
        'join'
    """

    position: str = "after"
    node: str | None = None


@dataclass(frozen=True)
class Filters:
    """Narrow the matched sites: names, channels, placement in the network, selection.

    Each field's metadata holds its help text (and metavar) for the command line;
    "cli": False marks a filter that only rule files and keyword overrides set.

    Example:
        >>> Filters(include=("layer3", "layer4"), last=2).last
        2
    """

    include: tuple[str, ...] = field(
        default=(), metadata={"help": "keep sites whose name matches one of these regexes", "metavar": "REGEX"})
    exclude: tuple[str, ...] = field(
        default=(), metadata={"help": "drop sites whose name matches one of these regexes", "metavar": "REGEX"})
    min_channels: int | None = field(
        default=None, metadata={"help": "skip sites with fewer channels (reported as skipped)", "metavar": "N"})
    max_channels: int | None = field(
        default=None, metadata={"help": "skip sites with more channels (reported as skipped)", "metavar": "N"})
    outside_residual: bool = field(
        default=False, metadata={"help": "keep only sites that are not inside a residual branch", "cli": False})
    stages: tuple[int, ...] | None = field(
        default=None, metadata={"help": "keep sites in these stages (1-based; e.g. 3,4)", "metavar": "N[,N...]"})
    first: int | None = field(default=None, metadata={"help": "keep the first N sites", "metavar": "N"})
    last: int | None = field(default=None, metadata={"help": "keep the last N sites", "metavar": "N"})
    every: int | None = field(default=None, metadata={"help": "keep every N-th site", "metavar": "N"})
    offset: int = field(default=0, metadata={"help": "start at this site (with every: the first one kept)",
                                             "metavar": "N"})

    def __post_init__(self) -> None:
        """Check every field (the same checks whether it came from YAML, Python or the command line)
        and normalise: one regex or stage becomes a one-item tuple."""
        normal = {"include": checks.regexes("include", self.include or ()),
                  "exclude": checks.regexes("exclude", self.exclude or ()),
                  "stages": None if self.stages is None else checks.integers("stages", self.stages),
                  "outside_residual": checks.flag("outside_residual", self.outside_residual),
                  "offset": checks.integer("offset", self.offset or 0, minimum=0)}
        for key in ("min_channels", "max_channels", "first", "last", "every"):
            if getattr(self, key) is not None:
                normal[key] = checks.integer(key, getattr(self, key))
        for key, value in normal.items():
            object.__setattr__(self, key, value)


@dataclass(frozen=True)
class Rule:
    """A complete placement rule.

    Example:
        >>> r = Rule(name="x", pattern=(OpSpec(kinds=("concat",)),), insert=Insert())
        >>> r.se.ratio
        16
    """

    name: str
    pattern: tuple[OpSpec, ...]
    insert: Insert
    description: str = ""
    filters: Filters = field(default_factory=Filters)
    se: SEConfig = field(default_factory=SEConfig)
    source: str | None = None
