"""OnnxPlan and OnnxReport: seinject.graph.report's Plan and ApplyReport plus MACs and the verification result.

Example:
    >>> from seinject.graph.site import Site
    >>> plan = OnnxPlan("after_residual", [Site("layer1.0.relu_1", "after_residual", "after", "v",
    ...                 None, 64, 4, 580, 1)], matched=1, macs=[512 + 2 * 64 * 256])
    >>> plan.added_macs
    33280
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..graph.report import ApplyReport, Plan, format_table


def _macs_text(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def macs_line(macs: list, sites: list) -> str:
    """'added MACs per sample: N', noting sites whose spatial size is symbolic (FC MACs only there).

    Example:
        >>> from seinject.graph.site import Site
        >>> macs_line([None], [Site("a", "r", "after", "v", None, 64, 4, 580, 1)])
        'added MACs per sample: 512 + pool and scale at 1 site(s) with a symbolic spatial size (give input shapes)'
    """
    sites = [s[1] if isinstance(s, tuple) else s for s in sites]
    unknown = sum(m is None for m in macs)
    total = sum(m if m is not None else 2 * s.channels * s.hidden for m, s in zip(macs, sites))
    line = f"added MACs per sample: {total:,}"
    return line + (f" + pool and scale at {unknown} site(s) with a symbolic spatial size (give input shapes)"
                   if unknown else "")


class _WithMacs:
    """MACs per site (a `macs` list parallel to the sites) for plans and reports."""

    macs: list

    @property
    def added_macs(self) -> int:
        """MACs per sample the blocks add (sites whose spatial size is known)."""
        return sum(m for m in self.macs if m)

    def _with_macs(self, data: dict) -> dict:
        for site, macs in zip(data["sites"], self.macs):
            site["macs"] = macs
        data["added_macs"] = self.added_macs
        return data


@dataclass
class OnnxPlan(_WithMacs, Plan):
    """A Plan whose sites also carry MACs per sample (None where the spatial size is symbolic)."""

    macs: list = field(default_factory=list)
    model: str | None = None

    def to_dict(self) -> dict:
        data = self._with_macs(super().to_dict())
        data["model"] = self.model
        return data

    def rows(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """Header and rows of the sites table."""
        rows = [(str(i), s.describe(), str(s.stage), str(s.channels), str(s.hidden), f"{s.params:,}",
                 _macs_text(m)) for i, (s, m) in enumerate(zip(self.sites, self._padded()))]
        return ("#", "site", "stage", "channels", "hidden", "params", "MACs"), rows

    def table(self) -> str:
        return format_table(*self.rows())

    def _padded(self) -> list:
        return list(self.macs) + [None] * (len(self.sites) - len(self.macs))

    def __str__(self) -> str:
        head = f"rule {self.rule}: {len(self.sites)} site(s), +{self.added_params:,} params"
        body = [self.table(), macs_line(self._padded(), self.sites)] if self.sites else []
        return "\n".join([head, *body, *self.summary_lines()])


@dataclass
class OnnxReport(_WithMacs, ApplyReport):
    """An ApplyReport for an ONNX model: MACs per block, verification result, output path, timings."""

    macs: list = field(default_factory=list)
    max_abs_diff: float | None = None
    verified: bool | None = None
    verify_note: str = ""
    input: str | None = None
    output: str | None = None
    seconds: dict = field(default_factory=dict)
    init: str = "identity"
    input_shapes: dict | None = None

    def to_dict(self) -> dict:
        data = self._with_macs(super().to_dict())
        data.update(max_abs_diff=self.max_abs_diff, verified=self.verified,
                    verify_note=self.verify_note, input=self.input, output=self.output, init=self.init,
                    input_shapes={k: list(v) for k, v in (self.input_shapes or {}).items()},
                    seconds={k: round(v, 4) for k, v in self.seconds.items()})
        return data

    def rows(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """Header and rows of the inserted-blocks table."""
        macs = list(self.macs) + [None] * (len(self.inserted) - len(self.macs))
        rows = [(name, s.describe(), str(s.stage), str(s.channels), str(s.hidden), f"{s.params:,}",
                 _macs_text(m)) for (name, s), m in zip(self.inserted, macs)]
        return ("block", "site", "stage", "channels", "hidden", "params", "MACs"), rows

    def table(self) -> str:
        return format_table(*self.rows())

    def verification_line(self) -> str:
        """'verified: max |new - old| = 0 (onnx.checker full_check, onnxruntime)' or why not."""
        if self.verified is None:
            return "not verified" + (f" ({self.verify_note})" if self.verify_note else "")
        diff = "n/a" if self.max_abs_diff is None else f"{self.max_abs_diff:.3g}"
        state = "verified" if self.verified else "VERIFICATION FAILED"
        return f"{state}: max |new - old| = {diff}" + (f" ({self.verify_note})" if self.verify_note else "")

    def __str__(self) -> str:
        head = f"rule {self.rule}: inserted {len(self.inserted)} SE block(s)"
        lines = [head, *([self.table()] if self.inserted else []), self.trainable_line(),
                 macs_line(self.macs, self.inserted)]
        if self.inserted:
            lines.append(self.verification_line())
        if self.output:
            lines.append(f"wrote {self.output}")
        return "\n".join([*lines, *self.summary_lines()])
