"""What the torch view builder holds for each fx value, and how a parent's call passes values to a child.

A value is a view op id (a tensor), a Struct / ListStruct (a tuple or list of values), a
DictStruct (a dict, a Hugging Face ModelOutput, a `**kwargs`), a Const (a tensor fetched with
get_attr), a Split (a chunk/split whose parts are read by index), None (a value the view does
not know, such as a shape read), or a plain Python value. `call_site` turns a parent's call
node into the Call a child is traced for (seinject.torch.calls).

Example:
    >>> import torch.fx as fx
    >>> graph = fx.Graph(); x = graph.placeholder("x")
    >>> value_of([x, 3], {x: "n0"})
    ('n0', 3)
"""

from __future__ import annotations

import dis
import functools
from dataclasses import dataclass
from typing import Any

import torch.fx as fx
from torch import nn
from torch.fx._symbolic_trace import PH

from .calls import Call, forward_function, forward_parameters, left_out, simple


class Struct(tuple):
    """A tuple of values (a module's returned tuple, an fx literal)."""


class ListStruct(Struct):
    """A list of values: kept apart from a tuple, a forward may branch on `isinstance(x, list)`."""


class DictStruct(dict):
    """A dict of values (a module's returned dict or Hugging Face ModelOutput, a `**kwargs`)."""

    def item(self, key: Any) -> Any:
        """`d[key]`; an int reads the int-th value that is not None, as ModelOutput's indexing does."""
        if isinstance(key, str):
            return self.get(key)
        if isinstance(key, int) and not isinstance(key, bool):
            present = [v for v in self.values() if v is not None]
            return present[key] if -len(present) <= key < len(present) else None
        return None


class Const:
    """A tensor fetched with get_attr (a parameter, buffer or constant)."""

    def __init__(self, tensor: Any):
        self.tensor = tensor


@dataclass
class Split:
    """A chunk/split call whose parts are each read by getitem: each read becomes a split op."""

    source: str
    attrs: dict


def value_of(arg: Any, env: dict) -> Any:
    if isinstance(arg, fx.Node):
        return env.get(arg)
    if isinstance(arg, (list, tuple)):
        return (ListStruct if isinstance(arg, list) else Struct)(value_of(a, env) for a in arg)
    if isinstance(arg, dict):
        return DictStruct((k, value_of(v, env)) for k, v in arg.items())
    return arg


@functools.lru_cache(maxsize=None)
def may_mutate_lists(function: Any) -> bool:
    """Whether a forward's own code calls a list-mutating method or assigns/deletes an item
    (`xs.append(y)`, `xs[0] = y`): traced with a list of placeholders, such changes to the caller's
    list would happen at trace time only."""
    code = getattr(function, "__code__", None)
    if code is None:
        return True
    return any(ins.opname in ("STORE_SUBSCR", "DELETE_SUBSCR")
               or (ins.opname in ("LOAD_METHOD", "LOAD_ATTR") and ins.argval in _LIST_MUTATIONS)
               for ins in dis.get_instructions(code))


def call_site(module: nn.Module, call: fx.Node, env: dict, fix_passed: bool) -> Call:
    """How the parent's call node calls `module`, as a Call for tracing it: values of simple type written
    in the parent's code (`self.block(x, None)`, `mode="fast"`) and the defaults the call leaves out
    are fixed; lists and tuples of tensors become lists of PH (unless the forward may change the list
    in place); with fix_passed, `*args` / `**kwargs` get what the call passes them (else they stay
    traced values, as fx makes them)."""
    parameters = forward_parameters(module)
    mutates = may_mutate_lists(forward_function(module))
    positional = list(call.args)
    keywords = dict(call.kwargs)
    named = {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    values = []
    for parameter in parameters:
        name = parameter.name
        if parameter.kind is parameter.VAR_POSITIONAL:
            if fix_passed:
                values.append((name, tuple(_argument(v, env, mutates) for v in positional)))
            positional = []
        elif parameter.kind is parameter.VAR_KEYWORD:
            if fix_passed:
                values.append((name, {k: _argument(v, env, mutates) for k, v in keywords.items() if k not in named}))
        elif positional and parameter.kind is not parameter.KEYWORD_ONLY:
            chosen = _argument(positional.pop(0), env, mutates)
            if chosen is not PH:
                values.append((name, chosen))
        elif name in keywords:
            chosen = _argument(keywords[name], env, mutates)
            if chosen is not PH:
                values.append((name, chosen))
        elif left_out(parameter) is not PH:
            values.append((name, left_out(parameter)))
    return Call(tuple(values))


def _argument(raw: Any, env: dict, mutates: bool) -> Any:
    """PH (a traced value, or one the view does not know), a list/tuple of PH (a list of traced tensors),
    or the value of one argument written in the parent's code (fixed)."""
    value = value_of(raw, env)
    if isinstance(value, Struct) and value and all(isinstance(item, str) for item in value):
        return PH if mutates else ([PH] * len(value) if isinstance(value, ListStruct) else (PH,) * len(value))
    if _holds_node(raw):
        return PH  # computed in the parent's graph: an op id, a structure holding some, a shape read
    return raw if simple(raw) else PH


def _holds_node(raw: Any) -> bool:
    if isinstance(raw, fx.Node):
        return True
    if isinstance(raw, (list, tuple)):
        return any(_holds_node(item) for item in raw)
    if isinstance(raw, dict):
        return any(_holds_node(item) for item in raw.values())
    return False


def required_inputs(module: nn.Module) -> int:
    """How many positional values a call must pass (at least one: a forward's first input)."""
    required = [p for p in forward_parameters(module) if p.default is p.empty and
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return max(1, len(required))


def without_mutated_lists(module: nn.Module, call: Call | None) -> Call | None:
    """The recorded call, with lists traced as one value when the forward may change them in place."""
    if call is None or not may_mutate_lists(forward_function(module)):
        return call
    return Call(tuple((k, PH if isinstance(v, (list, tuple)) and v and all(i is PH for i in v) else v)
                      for k, v in call.values))


def inputs_of(node: fx.Node, env: dict) -> tuple[list, list]:
    """Producer ids of a node's tensor inputs, and the local nodes carrying them."""
    inputs: list = []
    locals_: list = []
    for arg in node.args:
        _collect_inputs(arg, env, inputs, locals_)
    for arg in node.kwargs.values():
        _collect_inputs(arg, env, inputs, locals_)
    return inputs, locals_


def _collect_inputs(arg: Any, env: dict, inputs: list, locals_: list) -> None:
    # a module-level function, not a closure: a recursive closure is a reference cycle
    # that only the cyclic collector frees, and _inputs runs once per op
    if isinstance(arg, fx.Node):
        value = env.get(arg)
        if isinstance(value, str):
            inputs.append(value)
            locals_.append(arg)
        elif isinstance(value, (Struct, DictStruct)):
            for item in (value.values() if isinstance(value, DictStruct) else value):
                if isinstance(item, str):
                    inputs.append(item)
                    locals_.append(None)
    elif isinstance(arg, (list, tuple)):
        for item in arg:
            _collect_inputs(item, env, inputs, locals_)
    elif isinstance(arg, dict):
        for item in arg.values():
            _collect_inputs(item, env, inputs, locals_)


def bind(graph: fx.Graph, call: fx.Node, env: dict) -> dict:
    """Map a child graph's placeholders to the values the parent passes in."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    bound: dict = {}
    positional = list(call.args)
    named = {str(ph.target) for ph in placeholders}
    for ph in placeholders:
        name = str(ph.target)
        if name.startswith("**"):
            bound[ph] = DictStruct((k, value_of(v, env)) for k, v in call.kwargs.items() if k not in named)
        elif name.startswith("*"):
            bound[ph] = Struct(value_of(a, env) for a in positional)
            positional = []
        elif positional:
            bound[ph] = value_of(positional.pop(0), env)
        elif name in call.kwargs:
            bound[ph] = value_of(call.kwargs[name], env)
    return bound


_LIST_MUTATIONS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "__setitem__",
                             "__delitem__", "__iadd__"})


def mutated_list(value: object) -> bool:
    """Whether an fx value (a list the forward was given) is changed in place by the forward."""
    return isinstance(value, fx.Node) and any(
        user.op == "call_method" and user.target in _LIST_MUTATIONS and user.args and user.args[0] is value
        for user in value.users)
