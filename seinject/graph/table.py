"""Text tables of sites and blocks: one row builder for plans and reports of both backends.

Example:
    >>> print(format_table(("rule", "sites"), [("after_residual", "16")]))
    rule            sites
    --------------  -----
    after_residual     16
"""

from __future__ import annotations

from .site import Site


def sites_table(sites: list[Site], labels: list[str] | None = None, label: str = "#") -> str:
    """One row per site: its label (the index unless given), placement, stage, channels, hidden
    width, params, and MACs when some site has them ('?' where the spatial size is symbolic).

    Example:
        >>> a = Site(name="a", rule="r", position="after", node="n1", consumers=None,
        ...          channels=64, hidden=4, params=580, stage=1, macs=8704)
        >>> print(sites_table([a]))
        #  site     stage  channels  hidden  params   MACs
        -  -------  -----  --------  ------  ------  -----
        0  after a      1        64       4     580  8,704
    """
    labels = labels if labels is not None else [str(i) for i in range(len(sites))]
    with_macs = any(s.macs is not None for s in sites)
    header = (label, "site", "stage", "channels", "hidden", "params") + (("MACs",) if with_macs else ())
    rows = [(name, s.describe(), "?" if s.stage is None else str(s.stage), str(s.channels), str(s.hidden), f"{s.params:,}")
            + ((_count(s.macs),) if with_macs else ()) for name, s in zip(labels, sites)]
    return format_table(header, rows)


def macs_line(sites: list[Site]) -> str:
    """'added MACs per sample: N', noting sites whose spatial size is symbolic (FC MACs only there).

    Example:
        >>> site = Site(name="a", rule="r", position="after", node="v", consumers=None,
        ...             channels=64, hidden=4, params=580, stage=1)
        >>> macs_line([site])
        'added MACs per sample: 512 + pool and scale at 1 site(s) with a symbolic spatial size (give input shapes)'
    """
    unknown = sum(s.macs is None for s in sites)
    total = sum(s.macs if s.macs is not None else 2 * s.channels * s.hidden for s in sites)
    line = f"added MACs per sample: {total:,}"
    return line + (f" + pool and scale at {unknown} site(s) with a symbolic spatial size (give input shapes)"
                   if unknown else "")


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


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
