"""Plan and ApplyReport: what a rule found, what changed, and what was left out.

Both print as readable tables and convert to JSON-ready dicts.

Example:
    >>> from seinject.graph.site import Site
    >>> plan = Plan("after_residual", [Site("layer1.0.relu_2", "after_residual", "after", "n9",
    ...             None, 256, 16, 8464, 1)], matched=1)
    >>> len(plan), plan[0].channels
    (1, 256)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .site import Site, Skip


@dataclass
class Plan:
    """The sites a rule selects in a model (a dry run), plus skipped matches and untraced parts.

    Behaves as a list of Site; str() is a table; to_dict()/to_json() for machines.
    """

    rule: str
    sites: list[Site]
    skipped: list[Skip] = field(default_factory=list)
    left_out: list[Skip] = field(default_factory=list)
    matched: int = 0
    model_params: int | None = None

    def __len__(self) -> int:
        return len(self.sites)

    def __iter__(self):
        return iter(self.sites)

    def __getitem__(self, index):
        return self.sites[index]

    @property
    def added_params(self) -> int:
        """Parameters the SE blocks of this plan add."""
        return sum(s.params for s in self.sites)

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "rule": self.rule,
            "matched": self.matched,
            "sites": [s.to_dict() for s in self.sites],
            "skipped": [vars(s) for s in self.skipped],
            "left_out": [vars(s) for s in self.left_out],
            "added_params": self.added_params,
            "model_params": self.model_params,
        }

    def to_json(self, indent: int = 2) -> str:
        """The summary as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """Sites as an aligned text table."""
        rows = [(str(i), s.describe(), str(s.stage), str(s.channels), str(s.hidden), f"{s.params:,}")
                for i, s in enumerate(self.sites)]
        return format_table(("#", "site", "stage", "channels", "hidden", "params"), rows)

    def summary_lines(self) -> list[str]:
        lines = []
        if not self.sites:
            lines.append(f"rule {self.rule!r} matched no site"
                         + (f" ({self.matched} pattern matches, all skipped)" if self.matched else ""))
        for skip in self.skipped:
            lines.append(f"skipped {skip.name}: {skip.reason}")
        for part in self.left_out:
            lines.append(f"left out {part.name}: {part.reason}")
        return lines

    def __str__(self) -> str:
        head = f"rule {self.rule}: {len(self.sites)} site(s), +{self.added_params:,} params"
        body = [self.table()] if self.sites else []
        return "\n".join([head, *body, *self.summary_lines()])


@dataclass
class ApplyReport(Plan):
    """A Plan that was carried out: module names of the new SE blocks and the parameter share."""

    inserted: list[tuple[str, Site]] = field(default_factory=list)

    @property
    def added_params(self) -> int:
        return sum(s.params for _, s in self.inserted)

    def trainable_line(self) -> str:
        """peft-style: 'SE params: N || all params: M || SE%: p'."""
        total = self.model_params or 0
        share = 100.0 * self.added_params / total if total else 0.0
        return f"SE params: {self.added_params:,} || all params: {total:,} || SE%: {share:.4f}"

    def to_dict(self) -> dict:
        data = super().to_dict()
        data["inserted"] = [{"module": name, **site.to_dict()} for name, site in self.inserted]
        data["sites"] = data.pop("inserted")
        return data

    def table(self) -> str:
        rows = [(name, s.describe(), str(s.stage), str(s.channels), str(s.hidden), f"{s.params:,}")
                for name, s in self.inserted]
        return format_table(("module", "site", "stage", "channels", "hidden", "params"), rows)

    def __str__(self) -> str:
        head = f"rule {self.rule}: inserted {len(self.inserted)} SE block(s)"
        body = [self.table()] if self.inserted else []
        return "\n".join([head, *body, self.trainable_line(), *self.summary_lines()])


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned text columns, numbers right-aligned.

    Example:
        >>> print(format_table(("a", "n"), [("x", "10")]))
        a   n
        -  --
        x  10
    """
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    numeric = [all(r[i].replace(",", "").isdigit() for r in rows) and rows for i in range(len(header))]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])
