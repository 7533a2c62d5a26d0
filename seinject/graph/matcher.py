"""Match a Rule against a GraphView: chain patterns → insertion sites → filters.

Semantics, each a named step below:
- chain: element i+1 reads element i's output; SE blocks already in the graph are
  looked through, so a rule still recognises a block it has already changed, and so
  are no-ops at inference (dropout, identity: timm's norm-act modules have one);
- single use: an element followed by another in the pattern must feed only that op
  (otherwise the match is not a block);
- optional elements are taken when present (greedy);
- one site per insertion point (two matches that insert at the same place merge);
- sites that already have SE, or whose channel count is unknown, are skipped with a reason;
- filters then narrow the sites (channels, names, stage, first/last/every).

Example:
    >>> from seinject.graph.view import GraphView, RawOp
    >>> from seinject.rule.loader import load_rule
    >>> view = GraphView([RawOp("x", "input", "x", [], shape=(1, 8, 4, 4)),
    ...                   RawOp("c", "conv", "c", ["x"], {"out_channels": 8}),
    ...                   RawOp("a", "add", "add", ["c", "x"]),
    ...                   RawOp("r", "act", "relu", ["a"], {"fn": "relu"})])
    >>> [s.name for s in match(load_rule("after_residual"), view).sites]
    ['relu']
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..rule.config import SEConfig
from ..rule.gates import SPECS
from ..rule.patterns import matching_names
from ..rule.schema import OpSpec, Rule
from .layout import CL, NC
from .resolution import stage_numbers
from .site import Site, Skip
from .view import GraphView


@dataclass
class MatchResult:
    """Sites to change, matches skipped with a reason, and how many matches the pattern had.

    Example:
        >>> MatchResult().sites
        []
    """

    sites: list[Site] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    matched: int = 0


def match(rule: Rule, view: GraphView, se: SEConfig | None = None) -> MatchResult:
    """All sites of `rule` in `view`, in topological order, after the rule's filters.

    Example:
        >>> from seinject.rule.loader import load_rule
        >>> match(load_rule("after_concat"), GraphView([])).matched
        0
    """
    se = se or rule.se
    result = MatchResult()
    candidates: dict[tuple, tuple[Site, int]] = {}
    for start in view.nodes():
        chain = _match_chain(rule.pattern, view, start)
        if chain is None:
            continue
        result.matched += 1
        placed = _place(rule, view, chain, se)
        if isinstance(placed, Skip):
            result.skipped.append(placed)
        elif placed is not None:
            key = (placed[0].position, placed[0].node, placed[0].consumers)
            candidates.setdefault(key, placed)
    sites = _with_stages(list(candidates.values()))
    result.sites = _apply_filters(rule, view, sites, result.skipped)
    return result


# -- chain ------------------------------------------------------------------------------
def _match_chain(pattern: tuple[OpSpec, ...], view: GraphView, start: str) -> list | None:
    """Elements bound to node ids (None for an absent optional element), or None."""
    bound: list[str | None] = []
    current: str | None = None
    for i, spec in enumerate(pattern):
        options = [start] if current is None else _next_ops(view, current)  # absent optional elements: still at start
        if current is not None and i > 0 and not _single_use(view, current):
            options = []
        hit = next((n for n in options if _accepts(spec, view, n)), None)
        if hit is None:
            if spec.optional:
                bound.append(None)
                continue
            return None
        bound.append(hit)
        current = hit
    return bound


# Inference no-ops (dropout, identity: timm's norm-act modules have one) are looked through
# everywhere; chains also look through SE blocks, so a changed block still matches.
_NOOPS = frozenset({"dropout", "identity"})
_SEE_THROUGH = _NOOPS | {"se"}


def _next_ops(view: GraphView, node: str) -> list[str]:
    """Consumers of node, looking through SE blocks, inference no-ops and the permutes between
    N×C×… and channels-last that wrap a norm (timm's LayerNorm2d: conv → permute → layer_norm →
    permute back → act is a conv → norm → act chain)."""
    return _readers(view, node, _SEE_THROUGH, layout_permutes=True)


def _single_use(view: GraphView, node: str) -> bool:
    return len(_next_ops(view, node)) == 1


def _accepts(spec: OpSpec, view: GraphView, node: str) -> bool:
    data = view.node(node)
    attrs = data.attrs
    if data.kind not in spec.kinds:
        return False
    checks = (
        (spec.depthwise, data.depthwise),
        (spec.grouped, data.grouped),
        (spec.residual, data.residual),
        (spec.channel_concat, bool(attrs.get("channel_concat"))),
    )
    if any(want is not None and want != have for want, have in checks):
        return False
    if spec.kernel_size is not None and not _dims_match(attrs.get("kernel_size"), spec.kernel_size):
        return False
    if spec.stride is not None and not _dims_match(attrs.get("stride"), spec.stride):
        return False
    if spec.fn is not None and attrs.get("fn") not in spec.fn:
        return False
    channels = data.channels
    if spec.min_channels is not None and (channels is None or channels < spec.min_channels):
        return False
    if spec.max_channels is not None and (channels is None or channels > spec.max_channels):
        return False
    return True


def _dims_match(actual, wanted: tuple[int, ...]) -> bool:
    """kernel_size: 1 matches (1,), (1, 1), (1, 1, 1); a list matches element-wise."""
    if actual is None:
        return False
    actual = tuple(actual)
    if len(wanted) == 1:
        return all(a == wanted[0] for a in actual)
    return actual == wanted


# -- placement --------------------------------------------------------------------------
def _place(rule: Rule, view: GraphView, chain: list, se: SEConfig):
    """The Site for one matched chain (with its anchor depth), a Skip, or None."""
    ids = [spec.id for spec in rule.pattern]
    node = rule.insert.node
    target_index = ids.index(node) if node is not None and node in ids else len(chain) - 1  # default: the last
    while chain[target_index] is None:
        target_index -= 1
    target = chain[target_index]
    position = rule.insert.position
    data = view.node(target)
    if position == "after":
        node, consumers, label = target, None, data.name
        already = _all_se(view, _readers(view, node))
    elif position in ("branch_end", "shortcut"):
        node, consumers = data.join.branch if position == "branch_end" else data.join.shortcut, (target,)
        writer = _writer(view, node)
        already = view.node(writer).kind == "se"
        label = view.node(view.inputs(writer)[0] if already and view.inputs(writer) else node).name
    else:  # branch_start
        node = data.join.split
        entry = [u for u in view.consumers(node) if u in data.join.branch_nodes]
        if not entry:
            return Skip(name=data.name, reason="residual branch has no entry op")
        consumers = tuple(entry)
        firsts = [r for e in entry for r in _past_noops(view, e)]
        already = _all_se(view, firsts)
        shown = _readers(view, firsts[0]) if already else firsts
        label = view.node(shown[0] if shown else entry[0]).name
    if already:
        return Skip(name=label, reason="already has SE")
    if view.node(node).squeezed:
        return Skip(name=label, reason="the value is a globally pooled N×C×1×1 vector (the squeeze of a "
                    "channel-attention branch, or a head), not a feature map")
    channels = view.node(node).channels if view.is_feature_map(node) else None
    if channels is None:
        return Skip(name=label, reason="channel count unknown: the value is not seen as an N×C×… feature map (it "
                    "comes through a reshape or an untraced op; example_inputs= gives the shapes at "
                    "module boundaries)")
    rank = view.spatial_rank(node)
    unsupported = SPECS[se.block].unsupported(rank)
    if unsupported:
        return Skip(name=label, reason=unsupported)
    se.check_budget(channels, label)  # a typed error before any block is built
    site = Site(name=label, rule=rule.name, position=position, node=node, consumers=consumers,
                channels=channels, hidden=se.hidden_channels(channels),
                params=se.added_parameters(channels, rank or 2), stage=0, spatial_rank=rank)
    anchor = data if position != "after" else view.node(node)
    return site, (anchor.origin, anchor.level)


def _past_noops(view: GraphView, node: str) -> list[str]:
    """[node], or, when node is an inference no-op, the first real ops reading it."""
    return _readers(view, node) if view.node(node).kind in _NOOPS else [node]


def _readers(view: GraphView, node: str, through: frozenset = _NOOPS, layout_permutes: bool = False) -> list[str]:
    """Consumers of node, looking through ops whose kind is in `through` (and layout permutes)."""
    out = []
    for user in view.consumers(node):
        if view.node(user).kind in through or (layout_permutes and _layout_permute(view, user)):
            out.extend(_readers(view, user, through, layout_permutes))
        else:
            out.append(user)
    return out


def _layout_permute(view: GraphView, node: str) -> bool:
    """A permute from N×C×… to channels-last or back: the same values, only the channel axis moves."""
    data = view.node(node)
    if data.kind != "reshape" or data.attrs.get("perm") is None or not view.inputs(node):
        return False
    return {data.layout, view.node(view.inputs(node)[0]).layout} == {NC, CL}


def _writer(view: GraphView, node: str) -> str:
    """The op that produced node's value, looking back through inference no-ops."""
    while view.node(node).kind in _NOOPS and view.inputs(node):
        node = view.inputs(node)[0]
    return node


def _all_se(view: GraphView, nodes: list[str]) -> bool:
    return bool(nodes) and all(view.node(n).kind == "se" for n in nodes)


def _with_stages(placed: list[tuple[Site, tuple]]) -> list[Site]:
    """Stage k = the k-th resolution among the matched sites (1-based), None where resolutions cannot
    be compared (seinject.graph.resolution.stage_numbers)."""
    stages = stage_numbers([level for _, level in placed])
    return [replace(site, stage=stage) for (site, _), stage in zip(placed, stages)]


# -- filters ----------------------------------------------------------------------------
def _apply_filters(rule: Rule, view: GraphView, sites: list[Site], skipped: list[Skip]) -> list[Site]:
    """The sites the rule's filters keep; those outside the channel bounds go to `skipped` with the bound."""
    f = rule.filters
    kept = []
    for site in sites:
        bound = _channel_bound(site.channels, f.min_channels, f.max_channels)
        if bound:
            skipped.append(Skip(name=site.name, reason=bound))
            continue
        if f.outside_residual and view.node(site.node).in_residual:
            continue
        if f.stages is not None and site.stage is None:
            skipped.append(Skip(name=site.name, reason="stage unknown: its resolution cannot be compared with the "
                                "other sites' (a part of the model before it was not traced; example_inputs= "
                                "gives every module's shapes)"))
            continue
        if f.stages is not None and site.stage not in f.stages:
            continue
        kept.append(site)
    kept = _by_name(kept, f.include, f.exclude)
    if f.first is not None:
        kept = kept[: f.first]
    if f.last is not None:
        kept = kept[-f.last:]
    if f.every is not None:
        kept = kept[f.offset:: f.every]
    elif f.offset:
        kept = kept[f.offset:]
    return kept


def _by_name(sites: list[Site], include: tuple[str, ...], exclude: tuple[str, ...]) -> list[Site]:
    """The sites whose name matches an include pattern (when there are any) and no exclude pattern;
    matching is bounded in time (seinject.rule.patterns)."""
    names = [site.name for site in sites]
    included = matching_names(include, names, "include") if include else [True] * len(sites)
    excluded = matching_names(exclude, names, "exclude") if exclude else [False] * len(sites)
    return [site for site, inc, exc in zip(sites, included, excluded) if inc and not exc]


def _channel_bound(channels: int, lowest: int | None, highest: int | None) -> str | None:
    """The channel bound a site breaks, in words ('512 channels > max_channels 256'), or None."""
    if lowest is not None and channels < lowest:
        return f"{channels} channels < min_channels {lowest}"
    if highest is not None and channels > highest:
        return f"{channels} channels > max_channels {highest}"
    return None
