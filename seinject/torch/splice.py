"""Splice SE blocks into the forward of the modules that hold each site.

For each module that receives an SE block, its local fx graph gets a call to a new
SqueezeExcite child, the graph is compiled back to Python, and the instance's class
is swapped for a subclass of its own class whose forward is that code. Everything
else about the module stays: its class (isinstance), methods, attributes, children,
state_dict keys. When the module's forward differs between train and eval mode (an
`if self.training:` in user code), both modes are traced and edited, and the new
forward dispatches on `self.training`. Modules that share a trace and get the same
edit share the rewritten class, each with its own SE child (seinject.torch.install);
`restore` there undoes all of it.

Two kinds of owner take their blocks differently. A plain nn.Sequential's graph only
chains its children, so a block there is attached to the leaf child whose output it
scales (or whose input, before child 0): the child runs it, and slicing, iterating or
re-wrapping the Sequential keeps it. The Sequential's forward holds the block only when
that child is at several paths, called more than once, or not a leaf. An fx.GraphModule
gets the calls in its own graph, recompiled, so `.code` shows them and `recompile()`
keeps them.

Example:
    >>> import torch, torch.nn as nn
    >>> from seinject.torch.view import build_view
    >>> from seinject.graph.matcher import match
    >>> from seinject.rule.loader import load_rule
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> traced = build_view(net)
    >>> rule = load_rule("conv_block")
    >>> done = splice(traced, match(rule, traced.view).sites, rule.se)
    >>> [block.module for block in done.inserted]
    ['1.se']
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from ..graph.site import Inserted, Site, Skip, SpliceResult
from ..rule.config import SEConfig
from .gates import build_gate
from .install import adopt, attach, install, mark_inserted
from .kinds import is_se_module, is_structural_leaf
from .calls import Call, forward_function
from .trace import LocalGraph, is_inplace, trace_module
from .variants import Variants, edits_of, key_of_call
from .view import TorchGraph


@dataclass
class _Edit:
    site: Site
    value: fx.Node                  # local node whose value SE scales
    users: tuple[fx.Node, ...] | None  # local nodes to rewire (None: every user)


def splice(traced: TorchGraph, sites: list[Site], config: SEConfig) -> SpliceResult:
    """Insert one SqueezeExcite per site into traced.root, in place.

    Example: see the module docstring.
    """
    result = SpliceResult()
    edits: dict[str, list[_Edit]] = {}
    for site in sites:
        edit = _locate(traced, site)
        if isinstance(edit, Skip):
            result.skipped.append(edit)
        else:
            edits.setdefault(edit[0], []).append(edit[1])
    done: dict[tuple, type] = {}  # (trace, edits) -> class made for it, for modules built alike
    rewritten: dict[int, tuple[str, LocalGraph, dict]] = {}  # id(module) -> (path, trace, node -> block)
    for owner, owner_edits in edits.items():
        lg = traced.graphs[owner]
        if id(lg.module) in rewritten:  # one module at several paths: rewritten once, for its first path
            result.skipped.extend(_again(owner, lg, owner_edits, rewritten[id(lg.module)]))
            continue
        placement = _placement(traced.root, owner)
        if isinstance(lg.module, fx.GraphModule):
            outcome = _rewrite_graph_module(lg, owner_edits, config, placement)
        else:
            owner_edits = _attach_to_children(traced, lg, owner_edits, config, result, placement)
            if owner_edits and lg.sized:  # a trace that holds at one input size is never installed
                outcome = Skip(name=owner, reason=f"{owner or '<root>'}: {lg.sized}; a block there can only be "
                               "attached to the output of a child module called once, and this site is not one")
            else:
                outcome = _rewrite_module(lg, owner_edits, config, done, placement) if owner_edits else []
        if isinstance(outcome, Skip):
            result.skipped.extend(Skip(name=e.site.name, reason=outcome.reason) for e in owner_edits)
            continue
        blocks = {}
        for attr, edit in outcome:
            qualified = f"{owner}.{attr}" if owner else attr
            result.inserted.append(Inserted(module=qualified, site=edit.site))
            blocks[edit.value.name] = qualified
        if blocks:
            rewritten[id(lg.module)] = (owner, lg, blocks)
    order = {id(site): i for i, site in enumerate(sites)}
    result.inserted.sort(key=lambda block: order[id(block.site)])
    return result


def _again(owner: str, lg: LocalGraph, edits: list[_Edit], first: tuple) -> list[Skip]:
    """Skips for the sites of a module already rewritten at another path (the same object, shared):
    its forward has one rewrite, whose blocks act at every call of it."""
    path, first_lg, blocks = first
    same_trace = lg.graph is first_lg.graph
    return [Skip(name=e.site.name, reason=(
        f"{owner} is the module at {path} (one module at two paths): its block {blocks[e.value.name]} acts at this "
        "call too" if same_trace and e.value.name in blocks else
        f"{owner} is the module at {path} (one module at two paths), rewritten for that path's sites; a block "
        "here would need a second rewrite of the same forward")) for e in edits]


def _locate(traced: TorchGraph, site: Site):
    """(owner module path, _Edit) for a site, or a Skip saying why it cannot be placed."""
    view = traced.view
    if site.consumers is None:
        ref = view.node(site.node).ref
        owner, value, users = ref.owner, ref.node, None
    else:
        refs = [view.node(c).ref for c in site.consumers]
        owners = {r.owner for r in refs}
        if len(owners) != 1:
            return Skip(name=site.name, reason="its consumers live in different modules")
        carriers = set()
        for consumer, ref in zip(site.consumers, refs):
            inputs = view.inputs(consumer)
            carriers.update(ref.input_locals[i] for i, p in enumerate(inputs) if p == site.node)
        if len(carriers) != 1 or None in carriers:
            return Skip(name=site.name, reason="the value reaches its consumers through a container (list/tuple)")
        owner, value = owners.pop(), carriers.pop()
        users = tuple(r.node for r in refs)
    lg = traced.graphs[owner]
    inside = _repeated_around(traced, owner)
    if inside is not None:
        return Skip(name=site.name, reason=f"module {inside!r}, which seinject could not trace and which runs "
                    f"{owner or '<root>'!r}, is called more than once; an SE block inside it would act at every call")
    if lg.calls != 1:
        return Skip(name=site.name, reason=f"module {owner or '<root>'!r} is called {lg.calls} times; an SE "
                    "block inside it would act at every call")
    runs = _runs(traced, lg.module)
    if runs > 1:  # calls from an untraceable forward, seen on example_inputs
        return Skip(name=site.name, reason=f"module {owner or '<root>'!r} runs {runs} times per forward on "
                    "example_inputs; an SE block inside it would act at every call")
    if site.position == "branch_start" and any(is_inplace(user, lg.module) for user in users):
        return Skip(name=site.name, reason="the branch starts with an in-place op, which changes the value the "
                    "shortcut reads too; a block before it would keep that change from the shortcut")
    return owner, _Edit(site, value, users)


def _repeated_around(traced: TorchGraph, path: str) -> str | None:
    """A module left out and called more than once that holds `path` (or is it), else None."""
    return next((r for r in sorted(traced.repeated) if r == "" or path == r or path.startswith(r + ".")), None)


def _attach_to_children(traced: TorchGraph, lg: LocalGraph, edits: list[_Edit], config: SEConfig,
                        result: SpliceResult, placement: tuple) -> list[_Edit]:
    """Attach to its leaf child each block of a plain nn.Sequential's own graph that can live
    there (so slicing, iterating and re-wrapping the Sequential keep it), and each block of a
    module whose trace holds at the sizes of example_inputs only (its forward is never replaced);
    the edits left over."""
    if type(lg.module).forward is not nn.Sequential.forward and not lg.sized:
        return edits
    rest = []
    for edit in edits:
        found = _attachment(traced, lg.module, edit)
        if found is None:
            rest.append(edit)
            continue
        name, child, before = found
        attr = _se_names(child, [edit])[0]
        _add_blocks(child, [attr], [edit], config, placement)  # the Sequential's: a ReLU has no tensors
        attach(child, attr, before)
        path = f"{lg.path}.{name}" if lg.path else name
        result.inserted.append(Inserted(module=f"{path}.{attr}", site=edit.site))
    return rest


def _attachment(traced: TorchGraph, sequential: nn.Module, edit: _Edit):
    """(name, child, before) when the edit's block can be attached to a child of the Sequential:
    after a leaf child (every reader of its output), or before child 0 when that child is the
    only reader of the Sequential's input. The child must be at one path and called once."""
    value, users = edit.value, edit.users
    if value.op == "call_module" and (users is None or set(users) == set(value.users)):
        target, before = value.target, False
    elif value.op == "placeholder" and users is not None and len(value.users) == 1 and \
            set(users) == set(value.users) and users[0].op == "call_module":
        target, before = users[0].target, True
    else:
        return None
    try:
        child = sequential.get_submodule(str(target))
    except AttributeError:
        child = None
    if child is None or not is_structural_leaf(child) or is_se_module(child):
        return None
    if id(child) in traced.multi_path or traced.leaf_calls.get(id(child), 0) != 1 or _runs(traced, child) > 1:
        return None
    return str(target), child, before


def _runs(traced: TorchGraph, module: nn.Module) -> int:
    """How often the module ran in the forward pass on example_inputs (0 when not counted)."""
    return traced.run_calls.get(id(module), 0) if traced.run_calls is not None else 0


def _rewrite_graph_module(lg: LocalGraph, edits: list[_Edit], config: SEConfig, placement: tuple):
    """Insert the calls into a GraphModule's own graph and recompile it; its class stays."""
    module = lg.module
    if lg.graph is not module.graph:
        return Skip(name=lg.path, reason=f"GraphModule {lg.path or '<root>'!r} shares its trace with another")
    names = _se_names(module, edits)
    _add_blocks(module, names, edits, config, placement)
    for attr, edit in zip(names, edits):
        insert_call(module.graph, module, edit.value, None if edit.users is None else list(edit.users), attr)
    module.graph.lint()
    module.recompile()
    return list(zip(names, edits))


def _rewrite_module(lg: LocalGraph, edits: list[_Edit], config: SEConfig, done: dict[tuple, type],
                    placement: tuple):
    module = lg.module
    earlier = type(module).__dict__.get("_seinject_recipe")
    if earlier is not None and earlier.variants is not None:
        return Skip(name=lg.path, reason=f"{lg.path or '<root>'} was rewritten by an earlier apply for the values of "
                    f"its flags ({', '.join(earlier.variants.params) or 'its forward'}); seinject.remove its blocks "
                    "and apply the rules again")
    names = _se_names(module, edits)
    around = _io_blocks(lg.graph, names, edits)  # before the graph is edited
    signature = None
    if lg.shared:  # modules that share a trace and get the same edit share the new class
        # (a shared trace implies the same structural key, so the same class and training flag)
        signature = (id(lg.graph), tuple(
            (attr, e.value.name, None if e.users is None else tuple(u.name for u in e.users))
            for attr, e in zip(names, edits)))
        if signature in done:
            _add_blocks(module, names, edits, config, placement)
            adopt(module, done[signature], names, around)
            return list(zip(names, edits))
    other = _other_mode_graph(lg)
    if isinstance(other, Skip):
        return other
    graphs = [lg.graph] + ([other] if other is not None else [])
    for graph in graphs[1:]:
        by_name = {n.name: n for n in graph.nodes}
        for edit in edits:
            needed = [edit.value] + list(edit.users or ())
            if any(n.name not in by_name for n in needed):
                return Skip(name=edit.site.name, reason=f"forward of {lg.path or '<root>'!r} differs between "
                            "train and eval mode at this site")
    variants = _variants(lg, names, edits, other)  # before the graph is edited
    if lg.shared:  # other modules read this graph: edit a copy
        graphs[0] = copy.deepcopy(lg.graph)
    _add_blocks(module, names, edits, config, placement)
    for graph in graphs:
        by_name = {n.name: n for n in graph.nodes}
        for attr, edit in zip(names, edits):
            users = None if edit.users is None else [by_name[u.name] for u in edit.users]
            insert_call(graph, module, by_name[edit.value.name], users, attr)
        graph.lint()
    install(module, graphs, names, around, variants)
    if signature is not None:
        done[signature] = type(module)
    return list(zip(names, edits))


def _variants(lg: LocalGraph, names: list[str], edits: list[_Edit], other) -> Variants | None:
    """What the rewritten forward needs to serve other values of the parameters its trace fixed (None
    when it fixed none): seinject.torch.variants."""
    function = forward_function(lg.module)
    if not lg.call and function is type(lg.module).forward:
        return None
    call = lg.call or Call(())
    params = tuple(name for name, _ in call.values)
    # the mode picks the variant whenever the forward reads it (a path traced later may depend on it)
    modes = other is not None or _reads_training(type(lg.module))
    training = lg.module.training if modes else None
    keys = [key_of_call(call, params, training)]
    if modes:  # the second source is the other mode's graph, or the same one when they agree
        keys.append(key_of_call(call, params, not training))
    return Variants(params, modes, tuple(keys),
                    edits_of(lg.graph, [(attr, e.value, e.users) for attr, e in zip(names, edits)]),
                    None if function is type(lg.module).forward else function)


def _io_blocks(graph: fx.Graph, names: list[str], edits: list[_Edit]):
    """([blocks on the forward's input], [blocks on its output]) when every edit acts there (a forward
    assigned to the instance later can then run with them around it), else None."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    output = next(n for n in reversed(graph.nodes) if n.op == "output")
    before, after = [], []
    for name, edit in zip(names, edits):
        every = edit.users is None or set(edit.users) == set(edit.value.users)
        if every and output.args[0] is edit.value:
            after.append(name)
        elif every and placeholders and edit.value is placeholders[0]:
            before.append(name)
        else:
            return None
    return before, after


def _add_blocks(module: nn.Module, names: list[str], edits: list[_Edit], config: SEConfig,
                placement: tuple[torch.device, torch.dtype]) -> None:
    device, dtype = placement
    for attr, edit in zip(names, edits):
        block = build_gate(edit.site.channels, edit.site.spatial_rank or 2, config, device=device, dtype=dtype)
        mark_inserted(block)
        module.add_module(attr, block)


def _other_mode_graph(lg: LocalGraph):
    """The module's graph traced in the other training mode, or None when it is the same."""
    module = lg.module
    if not _reads_training(type(module)):
        return None
    module.training = not module.training
    try:
        flipped = trace_module(module, lg.path, call=lg.call)
    finally:
        module.training = not module.training
    if flipped.graph is None:
        return Skip(name=lg.path, reason=f"cannot trace {lg.path or '<root>'!r} in the other training mode")
    if _code(flipped.graph) == _code(lg.graph):
        return None
    return flipped.graph


def _reads_training(cls: type) -> bool:
    """Whether any method the class defines (outside torch.nn) mentions `training`.

    A forward that never reads it traces the same in both modes; the children are
    leaves, so their own mode dependence stays inside their own forward.
    """
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch.nn") or klass is object:
            continue
        for value in vars(klass).values():
            func = getattr(value, "__func__", value)
            code = getattr(func, "__code__", None)
            if code is not None and _code_mentions(code, "training"):
                return True
    return False


def _code_mentions(code, name: str) -> bool:
    if name in code.co_names or name in code.co_varnames:
        return True
    return any(_code_mentions(c, name) for c in code.co_consts if hasattr(c, "co_names"))


def _code(graph: fx.Graph) -> str:
    return graph.python_code(root_module="self").src


def _se_names(module: nn.Module, edits: list[_Edit]) -> list[str]:
    taken = set(module._modules) | set(vars(module))
    names = []
    for edit in edits:
        base = "se" if len(edits) == 1 else f"se_{edit.value.name.strip('_')}"
        name, k = base, 1
        while name in taken or hasattr(type(module), name):
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        names.append(name)
    return names


def _placement(root: nn.Module, path: str) -> tuple[torch.device, torch.dtype]:
    """Device and dtype for the blocks of the module at `path`: those of its first floating-point
    tensor, else of the nearest enclosing module that has one (an activation module holds no
    tensors, and a float64 model must not get float32 blocks), else the defaults."""
    parts = path.split(".") if path else []
    for depth in range(len(parts), -1, -1):
        module = root.get_submodule(".".join(parts[:depth]))
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.is_floating_point():
                return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def insert_call(graph: fx.Graph, owner: nn.Module, value: fx.Node, users: list[fx.Node] | None,
                 attr: str) -> None:
    """Call SE on `value` and make `users` (None: every reader of value) read its output.

    In-place ops alias their first argument, so readers of an aliased value that come
    after the in-place op read the SE output too.
    """
    order = {n: i for i, n in enumerate(graph.nodes)}
    if users is None:
        anchor = value
        if value.op == "placeholder":
            anchor = next(n for n in graph.nodes if n.op != "placeholder").prev
        readers = [(u, value) for u in value.users]
        node = value
        while is_inplace(node, owner) and isinstance(node.args[0], fx.Node):
            root = node.args[0]
            readers += [(u, root) for u in root.users if order[u] > order[value]]
            node = root
        with graph.inserting_after(anchor):
            call = graph.call_module(attr, (value,))
        for user, old in readers:
            user.replace_input_with(old, call)
        return
    first = min(users, key=order.__getitem__)
    with graph.inserting_before(first):
        call = graph.call_module(attr, (value,))
    for user in users:
        user.replace_input_with(value, call)
        if is_inplace(user, owner) and user.args and user.args[0] is call:
            for later in list(value.users):
                if later is not call and order.get(later, -1) > order[user]:
                    later.replace_input_with(value, call)
