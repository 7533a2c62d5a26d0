"""A rewritten forward for every value of the flags its trace fixed: one variant per call shape, made on first use.

A forward traced with `embed=False` fixed (seinject.torch.calls) is the forward for that
value only. The rewritten class therefore dispatches: its forward keeps the original
signature, reads the values of the parameters the trace fixed (and the training mode when
the forward reads it), and runs the variant traced for them. A call with other values
(`model(x, embed=True)`) traces the original forward for those values once, puts the same
blocks at the same computations (a node is found again by what it computes: its op, target
and inputs, recursively), and keeps that variant for later calls. A variant that does not
compute a block's value, or feeds it elsewhere, is a ModelError: it never runs with fewer
blocks than the rewrite put in, silently.

Example:
    >>> import torch
    >>> runtime_key(torch.zeros(1)), runtime_key(False), runtime_key([torch.zeros(1)] * 2)
    ('T', ('bool', False), ('L', 2))
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.fx as fx
from torch.fx._symbolic_trace import PH

from ..errors import ModelError
from .calls import SIMPLE_TYPES, Call


@dataclass(frozen=True)
class Variants:
    """What a dispatching forward needs: the parameters whose values pick the variant (in signature
    order), whether the training mode picks it too, the key of each source traced at apply time, the
    blocks as (attribute, identity of the value it scales, identities of the readers it feeds or None
    for every reader), and the forward function traced (None: the original class's forward).

    Example:
        >>> Variants(("embed",), False, ((("bool", False),),), ()).params
        ('embed',)
    """

    params: tuple[str, ...]
    modes: bool
    keys: tuple[tuple, ...]
    edits: tuple[tuple[str, str, tuple[str, ...] | None], ...]
    function: Callable | None = None


def runtime_key(value: Any) -> Any:
    """The part of a variant key one argument gives: "T" for a tensor, ("L", n) for a list of n tensors,
    the type and value of a simple value; other objects by their type.

    Example: see the module docstring.
    """
    if isinstance(value, torch.Tensor):
        return "T"
    if type(value) in (list, tuple):
        if value and all(isinstance(v, torch.Tensor) for v in value):
            return ("L" if type(value) is list else "U", len(value))
        return ("l" if type(value) is list else "u", tuple(runtime_key(v) for v in value))
    if type(value) is dict:
        return ("D", tuple(sorted((k, runtime_key(v)) for k, v in value.items())))
    if isinstance(value, SIMPLE_TYPES):
        return _simple_key(value)
    return ("O", type(value).__name__)


def _simple_key(value: Any) -> tuple:
    """(type name, value); NaN as a string, so that every NaN finds the same variant."""
    return (type(value).__name__, "nan" if isinstance(value, float) and value != value else value)


def call_key(value: Any) -> Any:
    """The key part of one Call value (seinject.torch.calls): what runtime_key gives for a call like it.

    Example:
        >>> call_key(PH), call_key([PH, PH]), call_key(None)
        ('T', ('L', 2), ('NoneType', None))
    """
    if value is PH:
        return "T"
    if type(value) in (list, tuple):
        if value and all(v is PH for v in value):
            return ("L" if type(value) is list else "U", len(value))
        return ("l" if type(value) is list else "u", tuple(call_key(v) for v in value))
    if type(value) is dict:
        return ("D", tuple(sorted((k, call_key(v)) for k, v in value.items())))
    return _simple_key(value)


def _call_value(key: Any) -> Any:
    """The Call value for one key part (the inverse of call_key; an object of unknown kind is traced)."""
    if key == "T":
        return PH
    tag, rest = key
    if tag in ("L", "U"):
        return [PH] * rest if tag == "L" else (PH,) * rest
    if tag in ("l", "u"):
        items = [_call_value(k) for k in rest]
        return items if tag == "l" else tuple(items)
    if tag == "D":
        return {k: _call_value(v) for k, v in rest}
    if tag == "O":
        return PH
    return float("nan") if tag == "float" and rest == "nan" else rest


def key_of_call(call: Call, params: tuple[str, ...], training: bool | None) -> tuple:
    """The variant key a Call was traced for (the training mode first when it picks the variant)."""
    parts = tuple(call_key(call.get(name)) for name in params)
    return parts if training is None else (training, *parts)


def node_identities(graph: fx.Graph) -> dict[fx.Node, str]:
    """A name for each node from what it computes: its op, target and inputs' names, recursively
    (two traces of a forward give the same name to the same computation).

    Example:
        >>> g = fx.symbolic_trace(torch.nn.ReLU()).graph
        >>> len(set(node_identities(g).values()))
        3
    """
    names: dict[fx.Node, str] = {}
    for node in graph.nodes:
        text = f"{node.op}|{_target(node)}|{_arg(node.args, names)}|{_arg(node.kwargs, names)}"
        names[node] = hashlib.sha1(text.encode()).hexdigest()
    return names


def _target(node: fx.Node) -> str:
    target = node.target
    if callable(target) and not isinstance(target, str):
        return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', repr(target))}"
    return str(target)


def _arg(value: Any, names: dict) -> str:
    if isinstance(value, fx.Node):
        return names[value]
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{','.join(_arg(v, names) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_arg(v, names)}" for k, v in value.items()) + "}"
    if isinstance(value, slice):
        return f"slice({_arg(value.start, names)},{_arg(value.stop, names)},{_arg(value.step, names)})"
    return repr(value)[:200]


def edits_of(graph: fx.Graph, edits: list[tuple[str, fx.Node, tuple | None]]) -> tuple:
    """(attribute, value identity, reader identities or None) for each block, from the graph traced at
    apply time (before the calls are inserted)."""
    names = node_identities(graph)
    return tuple((attr, names[value], None if users is None else tuple(names[u] for u in users))
                 for attr, value, users in edits)


def dispatcher(variants: Variants, forwards: list, table: dict, variant: Callable) -> Callable:
    """A forward with the signature of the traced ones that runs the variant for its arguments' key."""
    signature = inspect.signature(forwards[0])
    parameters = list(signature.parameters.values())[1:]
    defaults = {f"_seinject_d{i}": p.default for i, p in enumerate(parameters) if p.default is not p.empty}
    heads, calls = [], []
    for i, p in enumerate(parameters):
        if p.kind is p.VAR_POSITIONAL:
            heads.append(f"*{p.name}")
            calls.append(f"*{p.name}")
        elif p.kind is p.VAR_KEYWORD:
            heads.append(f"**{p.name}")
            calls.append(f"**{p.name}")
        else:
            if p.kind is p.KEYWORD_ONLY and not any(h.startswith("*") for h in heads):
                heads.append("*")
            heads.append(p.name + (f"=_seinject_d{i}" if p.default is not p.empty else ""))
            calls.append(f"{p.name}={p.name}" if p.kind is p.KEYWORD_ONLY else p.name)
    # names the forward's own parameters cannot take: they all start with _seinject_
    parts = (["self.training"] if variants.modes else []) + [f"_seinject_key({name})" for name in variants.params]
    key = f"({', '.join(parts)}{',' if parts else ''})"
    src = (f"def forward(self, {', '.join(heads)}):\n"
           f"    _seinject_k = {key}\n"
           f"    _seinject_f = _seinject_table.get(_seinject_k)\n"
           f"    if _seinject_f is None:\n"
           f"        _seinject_f = _seinject_variant(self, _seinject_k)\n"
           f"    return _seinject_f(self, {', '.join(calls)})\n")
    namespace = {"_seinject_table": table, "_seinject_variant": variant, "_seinject_key": runtime_key, **defaults}
    exec(compile(src, "<seinject variant dispatch>", "exec"), namespace)
    return namespace["forward"]


def make_variant(module: torch.nn.Module, key: tuple, variants: Variants, original: type,
                 compile_source: Callable) -> Callable:
    """Trace the module's original forward (`variants.function`, else `original.forward`) for the call `key`
    stands for, put the blocks of `variants.edits` at the same computations, and return the compiled
    forward."""
    from .splice import insert_call
    from .trace import trace_module

    values = key[1:] if variants.modes else key
    call = Call(tuple((name, _call_value(v)) for name, v in zip(variants.params, values)))
    owner, this_call = type(module).__name__, _shown_key(variants.params, values)
    first = variants.keys[0] if variants.keys else ()
    traced_call = _shown_key(variants.params, first[1:] if variants.modes else first)
    traced = trace_module(module, "", call, function=variants.function or original.forward)
    if traced.graph is None:
        raise ModelError(f"{owner}: seinject rewrote this forward for {traced_call} and cannot trace it for this "
                         f"call ({this_call}): {traced.error}")
    graph = traced.graph
    found: dict[str, list[fx.Node]] = {}
    for node, name in node_identities(graph).items():
        found.setdefault(name, []).append(node)
    for attr, value_name, user_names in variants.edits:
        values_found = found.get(value_name, [])
        if not values_found:
            raise ModelError(f"{owner}: the forward for {this_call} does not compute the value SE block {attr!r} "
                             f"scales (seinject placed its blocks on the path of {traced_call}); apply with "
                             "example_inputs that make this call, or call the model as it was traced")
        users = None
        if user_names is not None:
            users = [found[u][0] for u in user_names if len(found.get(u, [])) == 1]
        if len(values_found) > 1 or users is not None and len(users) != len(user_names):
            raise ModelError(f"{owner}: the forward for {this_call} computes the value SE block {attr!r} scales but "
                             "feeds it elsewhere; seinject cannot place the block on that path (apply with "
                             "example_inputs that make this call)")
        insert_call(graph, module, values_found[0], users, attr)
    graph.lint()
    return compile_source(graph.python_code(root_module="self"))


def _shown_key(params: tuple, values: tuple) -> str:
    def show(v):
        return "a tensor" if v == "T" else (f"{v[1]} tensors" if v[0] in ("L", "U") else repr(v[1]))
    return ", ".join(f"{name}={show(v)}" for name, v in zip(params, values)) or "this call"
