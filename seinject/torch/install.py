"""Give a module its rewritten forward, and take it back: the class swap behind a splice.

A module that receives SE blocks becomes an instance of a subclass of its own class whose
forward is the edited fx code (isinstance, methods, attributes and children stay). Modules
whose forward compiles to the same code share one subclass. A leaf child of a plain
nn.Sequential instead gets its block attached: its subclass runs `se(original forward)`
(or the original forward on `se(input)`), so the block goes wherever the child goes.
An fx.GraphModule keeps its class: its own graph gets the calls (see splice); every
inserted block carries a mark, which copying and pickling keep. The module remembers its original class and the names of
its SE children, so `restore` can undo everything. nn.Sequential / nn.ModuleList owners
whose forward holds a block keep their length, iteration and indexing (the SE children
are hidden from them), and refuse to be sliced, which would drop the block.

Rewritten classes pickle by recipe: an instance pickles as (`rebuild`, its class's `Recipe`,
its state). The recipe holds the original class by reference, the forward source code,
the train/eval dispatch flag and the code's globals (python modules by import name), so
`pickle`, `torch.save`, `copy.deepcopy` and multiprocessing work, and modules that shared
a class share it again after loading in one process. Loading such a pickle compiles and
runs the stored forward source, as loading any pickle can run code: load only pickles
you trust.

Example:
    >>> import torch.nn as nn
    >>> restore(nn.Sequential(nn.ReLU()))
    0
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import types
import weakref
from dataclasses import dataclass

import torch.fx as fx
from torch import nn

from ..errors import ModelError
from .variants import Variants, dispatcher, make_variant

ORIGINAL_CLASS = "_seinject_original_class"
SE_NAMES = "_seinject_se_names"
ATTACHED = "_seinject_attached"      # ([names run on the input], [names run on the output])
INSERTED = "_seinject_inserted"      # on every block seinject inserts
# a rewritten forward whose blocks all act on its input or output: ([on the input], [on the output])
AROUND = "_seinject_around"
REPLACED = "_seinject_replaced_forward"  # the instance forward the rewrite was traced from
_PRESERVED = "_user_preserved_attributes"  # GraphModule.meta key: attributes deepcopy sets again

# Variants of a rewritten forward made on first use, per module (seinject.torch.variants), at most
# MAX_VARIANTS each: a flag given a new value at every call would trace at every call.
_VARIANTS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
MAX_VARIANTS = 64

# Rewritten classes, shared by every instance whose forward compiles to the same code
# (the 16 bottlenecks of a ResNet-50 that get the same edit share one class).
_CLASSES: "weakref.WeakValueDictionary[tuple, type]" = weakref.WeakValueDictionary()


@dataclass(frozen=True, eq=False)
class _ModuleRef:
    """A python module in a forward's globals, by import name (module objects do not pickle)."""

    name: str


@dataclass(frozen=True, eq=False)
class Recipe:
    """What makes a rewritten class: the original class, the forward source per traced
    mode (none: a leaf with attached blocks), the mode traced first when there are two,
    and each source's globals with python modules replaced by their import names.

    Immutable: copying a model shares it.

    Example:
        >>> Recipe(nn.ReLU, (), (), None).make().__name__
        'ReLU'
    """

    original: type
    sources: tuple[str, ...]
    globals: tuple[dict, ...]
    traced_training: bool | None
    variants: Variants | None = None  # a forward traced with fixed flags: serve the other values too

    @classmethod
    def of(cls, original: type, codes: list, traced_training: bool | None,
           variants: Variants | None = None) -> "Recipe":
        portable = tuple({k: _ModuleRef(v.__name__) if isinstance(v, types.ModuleType) else v
                          for k, v in code.globals.items()} for code in codes)
        return cls(original, tuple(code.src for code in codes), portable, traced_training, variants)

    def key(self) -> tuple:
        return (self.original, self.sources, self.traced_training, self.variants)

    def make(self) -> type:
        """The rewritten class (from the cache when this process has made it already)."""
        new_class = _CLASSES.get(self.key())
        if new_class is None:
            new_class = _CLASSES.setdefault(self.key(), self._build())
        return new_class

    def _build(self) -> type:
        original = self.original
        body = {"__module__": original.__module__, "__reduce_ex__": _reduce_ex, "_seinject_recipe": self,
                "__setattr__": _setattr}
        if self.sources:
            name = original.__name__
            forwards = [_compile(src, _resolve(g), name) for src, g in zip(self.sources, self.globals)]
            variants = self.variants
            if variants is None and len(forwards) > 1:  # a forward that reads self.training: one per mode
                variants = Variants((), True, ((self.traced_training,), (not self.traced_training,)), ())
            body["forward"] = forwards[0] if variants is None else self._dispatcher(forwards, variants)
            if issubclass(original, (nn.Sequential, nn.ModuleList)):
                body.update(_HIDE_SE)
        else:
            body["forward"] = _attached_forward(original.forward)
        new_class = type(original.__name__, (original,), body)
        new_class.__qualname__ = original.__qualname__
        return new_class

    def _dispatcher(self, forwards: list, variants: Variants):
        """The forward that runs the variant for its call's flags (seinject.torch.variants). The variants
        traced at apply time serve every module of the class; one made on first use is the module's own
        (modules that share a class may differ off the traced path), kept while the module lives and
        made again in a copy."""
        table = {key: forwards[min(i, len(forwards) - 1)] for i, key in enumerate(variants.keys)}
        name = self.original.__name__

        def variant(module: nn.Module, key: tuple):
            own = _VARIANTS.setdefault(module, {})
            made = own.get(key)
            if made is None:
                if len(own) >= MAX_VARIANTS:
                    raise ModelError(f"{name}: called with more than {MAX_VARIANTS} values of the flags its "
                                     f"rewrite was traced for ({', '.join(variants.params)}); each needs a "
                                     "forward of its own: pass them as tensors, or apply for the call you make")
                made = own[key] = make_variant(module, key, variants, self.original,
                                               lambda code: _compile(code.src, dict(code.globals), name))
            return made

        return dispatcher(variants, forwards, table, variant)

    def __copy__(self) -> "Recipe":
        return self

    def __deepcopy__(self, memo: dict) -> "Recipe":
        return self


def rebuild(recipe: Recipe) -> nn.Module:
    """An uninitialised instance of the recipe's class; unpickling then sets its state.

    Loading a pickle that calls this compiles and runs the recipe's forward source.

    Example:
        >>> type(rebuild(Recipe(nn.ReLU, (), (), None))).__mro__[1] is nn.ReLU
        True
    """
    new_class = recipe.make()
    return new_class.__new__(new_class)


def _reduce_ex(self, protocol: int):
    return rebuild, (type(self).__dict__["_seinject_recipe"],), self.__getstate__()


def _resolve(portable: dict) -> dict:
    return {k: _import(v.name) if isinstance(v, _ModuleRef) else v for k, v in portable.items()}


def _import(name: str) -> types.ModuleType:
    module = sys.modules.get(name)
    return module if module is not None else importlib.import_module(name)


def _compile(src: str, namespace: dict, owner: str):
    exec(compile(src, f"<seinject forward of {owner}>", "exec"), namespace)
    return namespace["forward"]


def _setattr(self, name: str, value) -> None:
    """A rewritten module keeps its blocks when one of its own methods becomes its forward later:
    ultralytics' `fuse()` sets `m.forward = m.forward_fuse` on every Conv. That forward runs with the
    module's blocks around it when they all act on the forward's input or output (seinject's blocks
    after a conv → norm → act chain do); a module with a block inside its forward refuses it with a
    ModelError naming the blocks. Any other callable (accelerate's hooks: a partial that calls the
    forward it replaces, blocks included) is set as given, as are other attributes.

    Example:
        >>> import torch
        >>> class Act(nn.ReLU):
        ...     def forward_doubled(self, x): return 2 * super().forward(x)
        >>> act = Act()
        >>> act.add_module("se", nn.Identity())
        >>> attach(act, "se", before=False)
        >>> act.forward = act.forward_doubled  # the blocks stay around it
        >>> act(torch.tensor([-1.0, 1.0])).tolist(), type(act.forward).__name__
        ([0.0, 2.0], 'Around')
    """
    if name == "forward" and _own_method(self, value):
        if _blocks_around(self) is None:
            raise ModelError(f"cannot replace the forward of this {type(self).__name__}: seinject put the SE "
                             f"block(s) {self.__dict__.get(SE_NAMES)} inside it, and the new forward would run "
                             "without them; replace or fuse the forward before seinject.apply, or remove the blocks")
        value = Around(self, value)
    recipe = next(k.__dict__["_seinject_recipe"] for k in type(self).__mro__ if "_seinject_recipe" in k.__dict__)
    recipe.original.__setattr__(self, name, value)


class Around:
    """A forward assigned to a rewritten module, run with the module's blocks on its input and output.

    A small class, not a closure: copying the module (deepcopy, pickle) copies it with the module.

    Example:
        >>> relu = nn.ReLU()
        >>> relu.add_module("se", nn.Identity()); attach(relu, "se", before=False)
        >>> Around(relu, relu.forward).override.__name__
        'forward'
    """

    def __init__(self, module: nn.Module, override) -> None:
        self.module = module
        self.override = override

    def __call__(self, *args, **kwargs):
        before, after = _blocks_around(self.module)
        blocks = self.module._modules
        for name in before:
            args = (blocks[name](args[0]),) + args[1:]
        out = self.override(*args, **kwargs)
        for name in after:
            out = blocks[name](out)
        return out


def _own_method(module: nn.Module, value) -> bool:
    """A method of the module itself, other than the forward it runs now (ultralytics' forward_fuse)."""
    return getattr(value, "__self__", None) is module and getattr(value, "__func__", None) is not type(module).forward


def _blocks_around(module: nn.Module):
    """([blocks on the input], [blocks on the output]) of a rewritten module, None when one is inside."""
    if ATTACHED in module.__dict__:
        return module.__dict__[ATTACHED]
    return module.__dict__.get(AROUND)


def install(module: nn.Module, graphs: list[fx.Graph], names: list[str], around=None,
            variants: Variants | None = None) -> None:
    """Give the module the forward of `graphs` (one per traced mode) on a rewritten class; `around`:
    ([names on the input], [names on the output]) when every block acts there, else None; `variants`:
    for a forward traced with fixed flags, how to serve their other values."""
    original = module.__dict__.get(ORIGINAL_CLASS, type(module))
    codes = [graph.python_code(root_module="self") for graph in graphs]
    recipe = Recipe.of(original, codes, module.training if len(codes) > 1 else None, variants)
    adopt(module, recipe.make(), names, around)


def adopt(module: nn.Module, new_class: type, names: list[str], around=None) -> None:
    """Give the module its rewritten class, remembering the original and the SE names. A forward the
    instance holds (one of its own methods, which the rewrite was traced from) is put away, to come
    back with `restore`."""
    original = module.__dict__.get(ORIGINAL_CLASS, type(module))
    held = module.__dict__.pop("forward", None)
    if held is not None:
        module.__dict__[REPLACED] = held
    module.__class__ = new_class
    module.__dict__[ORIGINAL_CLASS] = original
    module.__dict__[SE_NAMES] = list(module.__dict__.get(SE_NAMES, [])) + names
    if ATTACHED not in module.__dict__:
        module.__dict__[AROUND] = around if len(module.__dict__[SE_NAMES]) == len(names) else None


def attach(module: nn.Module, name: str, before: bool) -> None:
    """Make the module run its child `name` on its output (on its input when `before`).

    Example:
        >>> import torch
        >>> relu = nn.ReLU()
        >>> relu.add_module("se", nn.Identity())
        >>> attach(relu, "se", before=False)
        >>> type(relu).__name__, relu(torch.tensor([-1.0, 2.0])).tolist(), restore(relu)
        ('ReLU', [0.0, 2.0], 1)
    """
    if ATTACHED not in module.__dict__:
        held = module.__dict__.pop("forward", None)  # an instance forward keeps running, blocks around it
        module.__dict__[ATTACHED] = ([], [])
        adopt(module, Recipe(type(module), (), (), None).make(), [])
        if held is not None:
            module.__dict__["forward"] = Around(module, held)
    module.__dict__[ATTACHED][0 if before else 1].append(name)
    module.__dict__[SE_NAMES].append(name)


def _attached_forward(inner):
    def forward(self, *args, **kwargs):
        before, after = self.__dict__[ATTACHED]
        blocks = self._modules
        for name in before:
            args = (blocks[name](args[0]),) + args[1:]
        out = inner(self, *args, **kwargs)
        for name in after:
            out = blocks[name](out)
        return out
    return forward


def mark_inserted(block: nn.Module) -> None:
    """Mark a block as inserted by seinject (the mark survives copying and pickling).

    Example:
        >>> block = nn.Identity(); mark_inserted(block); is_inserted(block)
        True
    """
    block.__dict__[INSERTED] = True


def is_inserted(block: nn.Module) -> bool:
    """Whether seinject inserted this block (see mark_inserted)."""
    return block.__dict__.get(INSERTED, False) is True


def keep_across_copies(module: nn.Module, key: str, value: object) -> None:
    """Set module.<key> = value; on a GraphModule also list it in meta, since its deepcopy
    keeps only the attributes listed there (value None: drop it from both).

    Example:
        >>> net = nn.ReLU()
        >>> keep_across_copies(net, "note", 1); net.note
        1
    """
    preserved = module.meta.setdefault(_PRESERVED, {}) if isinstance(module, fx.GraphModule) else {}
    if value is None:
        module.__dict__.pop(key, None)
        preserved.pop(key, None)
    else:
        module.__dict__[key] = preserved[key] = value


def _visible(self) -> list:
    hidden = set(self.__dict__.get(SE_NAMES, ()))
    return [(k, m) for k, m in self._modules.items() if k not in hidden]


def _len(self) -> int:
    return len(_visible(self))


def _iter(self):
    return iter(m for _, m in _visible(self))


def _getitem(self, idx):
    items = _visible(self)
    if isinstance(idx, slice):
        raise ModelError(f"cannot slice this {self.__dict__[ORIGINAL_CLASS].__name__}: its forward calls the "
                         f"SE block(s) {self.__dict__[SE_NAMES]}, which a slice would drop; slice the model "
                         "before seinject.apply, or after seinject.remove")
    return items[idx][1]


# Sequential/ModuleList owners keep their length, iteration and indexing: SE children hide.
_HIDE_SE = {"__len__": _len, "__iter__": _iter, "__getitem__": _getitem}


def restore(model: nn.Module) -> int:
    """Undo every splice in `model` (in place); returns the number of SE blocks removed.

    Example:
        >>> restore(nn.Sequential(nn.ReLU()))
        0
    """
    removed = 0
    for module in list(model.modules()):
        if isinstance(module, fx.GraphModule):
            removed += _restore_graph(module)
        removed += _restore_module(module)
    return removed


def restore_blocks(model: nn.Module, names: "set[str]") -> int:
    """Take out only the blocks with these qualified names (in place); returns how many went.

    A module keeping other blocks gets a class whose forward skips the removed ones: the
    call `self.<block>(x)` of its fx-generated source becomes `x`.

    Example:
        >>> relu = nn.ReLU()
        >>> for name in ("se", "se_1"):
        ...     relu.add_module(name, nn.Identity()); attach(relu, name, before=False)
        >>> restore_blocks(relu, {"se"}), list(relu._modules)
        (1, ['se_1'])
    """
    removed = 0
    for path, module in list(model.named_modules()):
        prefix = f"{path}." if path else ""
        if isinstance(module, fx.GraphModule):
            removed += _restore_graph(module, {n[len(prefix):] for n in names if n.startswith(prefix)})
        mine = [n for n in module.__dict__.get(SE_NAMES, []) if prefix + n in names]
        if not mine:
            continue
        if len(mine) == len(module.__dict__[SE_NAMES]):
            removed += _restore_module(module)
            continue
        if ATTACHED in module.__dict__:
            for side in module.__dict__[ATTACHED]:
                side[:] = [n for n in side if n not in mine]
        else:
            recipe = type(module).__dict__["_seinject_recipe"]
            sources = tuple(_skip_calls(src, mine) for src in recipe.sources)
            variants = recipe.variants and dataclasses.replace(
                recipe.variants, edits=tuple(e for e in recipe.variants.edits if e[0] not in mine))
            module.__class__ = Recipe(recipe.original, sources, recipe.globals, recipe.traced_training,
                                      variants).make()
        module.__dict__[SE_NAMES] = [n for n in module.__dict__[SE_NAMES] if n not in mine]
        if module.__dict__.get(AROUND) is not None:
            module.__dict__[AROUND] = tuple([n for n in side if n not in mine] for side in module.__dict__[AROUND])
        for name in mine:
            del module._modules[name]
        removed += len(mine)
    return removed


def _skip_calls(source: str, names: list[str]) -> str:
    """fx-generated source with each `self.<name>(arg)` call replaced by `arg`."""
    for name in names:
        call = re.compile(rf"\bself\.{re.escape(name)}\((\w+)\)")
        source, count = call.subn(r"\1", source)
        if count == 0:
            raise ModelError(f"cannot find the call of SE block {name!r} in its module's forward")
    return source


def _restore_module(module: nn.Module) -> int:
    """Give one rewritten module its original class back and drop its SE children."""
    original = module.__dict__.get(ORIGINAL_CLASS)
    if original is None:
        return 0
    removed = 0
    for name in module.__dict__.pop(SE_NAMES, []):
        if name in module._modules:
            del module._modules[name]
            removed += 1
    module.__dict__.pop(ATTACHED, None)
    module.__dict__.pop(AROUND, None)
    del module.__dict__[ORIGINAL_CLASS]
    assigned, replaced = module.__dict__.get("forward"), module.__dict__.pop(REPLACED, None)
    module.__class__ = original
    if isinstance(assigned, Around):  # the forward assigned or held at the rewrite comes back
        module.__dict__["forward"] = assigned.override
    elif assigned is None and replaced is not None:
        module.__dict__["forward"] = replaced
    return removed


def _restore_graph(module: fx.GraphModule, only: "set[str] | None" = None) -> int:
    """Take the marked blocks' calls out of a GraphModule's graph, and the blocks with them
    (only those named in `only` when given)."""
    removed = 0
    for node in list(module.graph.nodes):
        block = module._modules.get(node.target) if node.op == "call_module" else None
        if block is not None and is_inserted(block) and (only is None or node.target in only):
            node.replace_all_uses_with(node.args[0])
            module.graph.erase_node(node)
            del module._modules[node.target]
            removed += 1
    if removed:
        module.recompile()
    return removed
