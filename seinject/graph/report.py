"""Plan and ApplyReport: what a rule found, what changed, and what was left out (both backends).

A Plan is a dry run: the sites a rule selects. An ApplyReport holds the Plan it carried
out plus the blocks inserted, and for ONNX files the verification, paths and timings.
Both print as readable tables and convert to JSON-ready dicts.

Example:
    >>> from seinject.graph.site import Site
    >>> site = Site(name="layer1.0.relu_2", rule="after_residual", position="after", node="n9",
    ...             consumers=None, channels=256, hidden=16, params=8464, stage=1)
    >>> plan = Plan(rule="after_residual", sites=[site], matched=1)
    >>> len(plan), plan[0].channels
    (1, 256)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .site import Inserted, Site, Skip
from .table import macs_line, sites_table

if TYPE_CHECKING:  # pragma: no cover
    from ..rule.schema import Rule


class _Rows:
    """List behaviour (len, iteration, indexing) over the list a subclass names in _ROWS."""

    _ROWS = ""

    def __len__(self) -> int:
        return len(getattr(self, self._ROWS))

    def __iter__(self):
        return iter(getattr(self, self._ROWS))

    def __getitem__(self, index):
        return getattr(self, self._ROWS)[index]


@dataclass(frozen=True, kw_only=True)
class Plan(_Rows):
    """The sites a rule selects in a model (a dry run), plus skipped matches and untraced parts.

    Behaves as a list of Site; str() is a table; to_dict()/to_json() for machines.
    input: the model file read (None for a model given in memory); counts_macs: the
    backend counted MACs per site (ONNX), so the summary says how many the blocks add.

    Example:
        >>> print(Plan(rule="after_concat", sites=[], matched=2))
        rule after_concat: 0 site(s), +0 params
        rule 'after_concat' matched no site (2 pattern matches, all skipped)
    """

    rule: str
    sites: list[Site]
    skipped: list[Skip] = field(default_factory=list)
    left_out: list[Skip] = field(default_factory=list)
    matched: int = 0
    model_params: int | None = None
    input: str | None = None
    counts_macs: bool = False
    _ROWS = "sites"

    @property
    def added_params(self) -> int:
        """Parameters the SE blocks of this plan add."""
        return sum(s.params for s in self.sites)

    @property
    def added_macs(self) -> int | None:
        """MACs per sample the blocks add at sites whose spatial size is known (None: not counted)."""
        return _added_macs(self.sites) if self.counts_macs else None

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "rule": self.rule,
            "input": self.input,
            "matched": self.matched,
            "sites": [s.to_dict() for s in self.sites],
            "skipped": [vars(s) for s in self.skipped],
            "left_out": [vars(s) for s in self.left_out],
            "added_params": self.added_params,
            "added_macs": self.added_macs,
            "model_params": self.model_params,
        }

    def to_json(self, indent: int = 2) -> str:
        """The summary as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """Sites as an aligned text table."""
        return sites_table(self.sites)

    def summary_lines(self, grouped: bool = False) -> list[str]:
        """Why nothing matched, skipped matches and parts left out, one line each (grouped: one line per
        reason, naming its first three)."""
        return _summary_lines(self, self.skipped, grouped)

    def __str__(self) -> str:
        head = f"rule {self.rule}: {len(self.sites)} site(s), +{self.added_params:,} params"
        body = [self.table()] if self.sites else []
        if self.sites and self.counts_macs:
            body.append(macs_line(self.sites))
        return "\n".join([head, *body, *self.summary_lines()])


@dataclass(kw_only=True)
class ApplyReport(_Rows):
    """A Plan carried out: the SE blocks inserted, sites the splice could not take, and the parameter share.

    Behaves as a list of Inserted. The ONNX backend also fills the verification
    result (verified None: not verified, verify_note says why), the file written and
    the seconds each step took. The torch backend records the rule as it was given
    (`rule_spec`, before keyword overrides) and the `overrides`, so the rewrite can be
    repeated (seinject.save stores both).

    Example:
        >>> site = Site(name="1", rule="conv_block", position="after", node="n1", consumers=None,
        ...             channels=16, hidden=1, params=49, stage=1)
        >>> plan = Plan(rule="conv_block", sites=[site], matched=1, model_params=448)
        >>> report = ApplyReport(plan=plan, inserted=[Inserted(module="se", site=site)])
        >>> len(report), report.model_params
        (1, 497)
        >>> print(report)
        rule conv_block: inserted 1 SE block(s)
        block  site     stage  channels  hidden  params
        -----  -------  -----  --------  ------  ------
        se     after 1      1        16       1      49
        SE params: 49 || all params: 497 || SE%: 9.8592
    """

    plan: Plan
    inserted: list[Inserted]
    splice_skipped: list[Skip] = field(default_factory=list)
    init: str = "identity"
    output: str | None = None
    input_shapes: dict | None = None
    verified: bool | None = None
    max_abs_diff: float | None = None
    verify_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    rule_spec: "Rule | None" = None
    overrides: dict = field(default_factory=dict)
    _ROWS = "inserted"

    @property
    def rule(self) -> str:
        return self.plan.rule

    @property
    def input(self) -> str | None:
        return self.plan.input

    @property
    def skipped(self) -> list[Skip]:
        """Every site that got no block: the plan's skipped matches, then those the splice could not take."""
        return self.plan.skipped + self.splice_skipped

    @property
    def left_out(self) -> list[Skip]:
        return self.plan.left_out

    @property
    def added_params(self) -> int:
        """Parameters the inserted SE blocks add."""
        return sum(block.site.params for block in self.inserted)

    @property
    def added_macs(self) -> int | None:
        """MACs per sample the inserted blocks add where the spatial size is known (None: not counted)."""
        return _added_macs(self._inserted_sites()) if self.plan.counts_macs else None

    @property
    def model_params(self) -> int:
        """Parameters of the rewritten model."""
        return (self.plan.model_params or 0) + self.added_params

    def trainable_line(self) -> str:
        """peft-style: 'SE params: N || all params: M || SE%: p'."""
        total = self.model_params
        share = 100.0 * self.added_params / total if total else 0.0
        return f"SE params: {self.added_params:,} || all params: {total:,} || SE%: {share:.4f}"

    def verification_line(self) -> str:
        """'verified: max |new - old| = 0 (onnx.checker full_check, onnxruntime)' or why not."""
        note = f" ({self.verify_note})" if self.verify_note else ""
        if self.verified is None:
            return "not verified" + note
        diff = "n/a" if self.max_abs_diff is None else f"{self.max_abs_diff:.3g}"
        return f"{'verified' if self.verified else 'VERIFICATION FAILED'}: max |new - old| = {diff}" + note

    def summary_lines(self, grouped: bool = False) -> list[str]:
        """Why nothing matched, every skipped site (plan and splice) and every part left out, one line each
        (grouped: one line per reason, naming its first three)."""
        return _summary_lines(self.plan, self.skipped, grouped)

    def to_dict(self) -> dict:
        """JSON-ready summary: the plan's keys, with "sites" the inserted blocks, plus the outcome."""
        data = self.plan.to_dict()
        data.update(
            sites=[block.to_dict() for block in self.inserted],
            skipped=[vars(s) for s in self.skipped],
            added_params=self.added_params,
            added_macs=self.added_macs,
            model_params=self.model_params,
            init=self.init,
            output=self.output,
            input_shapes=None if self.input_shapes is None else {k: list(v) for k, v in self.input_shapes.items()},
            verified=self.verified,
            max_abs_diff=self.max_abs_diff,
            verify_note=self.verify_note,
            seconds={k: round(v, 4) for k, v in self.seconds.items()},
        )
        return data

    def to_json(self, indent: int = 2) -> str:
        """The summary as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """Inserted blocks as an aligned text table."""
        return sites_table(self._inserted_sites(), [block.module for block in self.inserted], label="block")

    def __str__(self) -> str:
        lines = [f"rule {self.rule}: inserted {len(self.inserted)} SE block(s)"]
        if self.inserted:
            lines.append(self.table())
        lines.append(self.trainable_line())
        if self.plan.counts_macs:
            lines.append(macs_line(self._inserted_sites()))
        if self.inserted and (self.verified is not None or self.verify_note):
            lines.append(self.verification_line())
        if self.output:
            lines.append(f"wrote {self.output}")
        return "\n".join([*lines, *self.summary_lines()])

    def _inserted_sites(self) -> list[Site]:
        return [block.site for block in self.inserted]


def _summary_lines(plan: Plan, skipped: list[Skip], grouped: bool = False) -> list[str]:
    lines = []
    if not plan.sites:
        lines.append(f"rule {plan.rule!r} matched no site"
                     + (f" ({plan.matched} pattern matches, all skipped)" if plan.matched else ""))
    lines += _lines("skipped", skipped, grouped)
    lines += _lines("left out", plan.left_out, grouped)
    return lines


def _lines(verb: str, items: list[Skip], grouped: bool) -> list[str]:
    """One line per item, or (grouped) one line per reason naming its first items.

    Example:
        >>> _lines("skipped", [Skip(name=n, reason="r") for n in "abcde"], grouped=True)
        ['skipped a, b, c and 2 more: r']
    """
    if not grouped:
        return [f"{verb} {item.name}: {item.reason}" for item in items]
    by_reason: dict[str, list[str]] = {}
    for item in items:
        by_reason.setdefault(_general(item.reason, item.name), []).append(item.name)
    return [f"{verb} {', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}: {reason}"
            for reason, names in by_reason.items()]


def _general(reason: str, name: str) -> str:
    """A reason with the item's own name taken out, so items failing alike group together."""
    return reason.replace(repr(name), "it").replace(name, "it") if name else reason


def _added_macs(sites: list[Site]) -> int:
    return sum(s.macs for s in sites if s.macs)

