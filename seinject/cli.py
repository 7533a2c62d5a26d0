"""The `seinject` command: `seinject onnx IN OUT` rewrites ONNX files; `seinject rules list|show|check`.

Exit codes: 0 success; 1 verification or runtime failure; 2 usage, rule or input error;
3 no site matched with --strict. Only the report goes to stdout; warnings, notes and
errors go to stderr.

Example:
    >>> main(["--version"])
    seinject 0.1.0
    0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import typing
import warnings
from dataclasses import Field, asdict, fields
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .rule.config import SEConfig
from .errors import ConfigError, NoSitesError, SEInjectError, SEInjectWarning, UsageError, VerificationError
from .rule.loader import builtin_rule_names, builtin_rules_dir, load_rule
from .rule.schema import Filters

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_SITES = 0, 1, 2, 3
log = logging.getLogger("seinject")

ONNX_EXAMPLES = """\
examples:
  seinject onnx in.onnx out.onnx                          # default rule after_residual
  seinject onnx in.onnx out.onnx --rule residual_branch --ratio 16 --divisor 8
  seinject onnx in.onnx out.onnx --rule my_rules/stage34.yaml --dry-run   # plan only
  seinject onnx in.onnx out.onnx --json                   # machine-readable report
  seinject onnx in.onnx out.onnx --include layer3 --include layer4 --input-shape x:1,3,224,224

exit codes: 0 success, 1 verification/runtime failure, 2 usage/rule/input error,
            3 no site matched (with --strict; without it: a warning, no output written)
"""
RULES_EXAMPLES = """\
examples:
  seinject rules list
  seinject rules show residual_branch
  seinject rules check my_rules/stage34.yaml
"""


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors kept at exit code 2 and help formatted with examples."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `seinject` command.

    Example:
        >>> build_parser().parse_args(["onnx", "a.onnx", "b.onnx", "--ratio", "8"]).ratio
        8.0
    """
    parser = _Parser(prog="seinject", description="Insert Squeeze-and-Excitation blocks into trained models "
                     "by graph rewriting; the blocks start at identity.",
                     epilog=ONNX_EXAMPLES + "\n" + RULES_EXAMPLES)
    parser.add_argument("--version", action="version", version=f"seinject {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _onnx_parser(commands)
    _rules_parser(commands)
    return parser


def _verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    group.add_argument("-q", "--quiet", action="store_true", help="no warnings or notes on stderr")


def _onnx_parser(commands) -> None:
    p = commands.add_parser("onnx", help="insert SE blocks into an ONNX model file",
                            description="Insert SE blocks into an ONNX model where a rule matches. IN is never "
                            "modified; OUT is written only after it passed verification.",
                            epilog=ONNX_EXAMPLES)
    p.add_argument("input", metavar="IN", help="ONNX model to read")
    p.add_argument("output", metavar="OUT", nargs="?", help="ONNX model to write (not needed with --dry-run)")
    p.add_argument("-r", "--rule", default="after_residual",
                   help="built-in rule name or path to a YAML rule (default: after_residual; "
                   "see `seinject rules list`)")
    se = p.add_argument_group("SE settings (override the rule's se:)")
    _config_options(se, SEConfig)
    se.add_argument("--seed", type=int, default=0, help="seed for init=random and verification inputs (default 0)")
    _config_options(p.add_argument_group("filters (override the rule's filters:)"), Filters)
    o = p.add_argument_group("output and verification")
    o.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    o.add_argument("--json", action="store_true", help="print the report as JSON")
    o.add_argument("--strict", action="store_true", help="exit 3 when no site matched")
    o.add_argument("--no-verify", action="store_true", help="skip onnx.checker full_check and the onnxruntime comparison "
                   "(a structural onnx.checker pass still runs)")
    o.add_argument("--input-shape", action="append", metavar="NAME:D0,D1,...", type=_input_shape,
                   help="shape for an input with symbolic dims (repeatable; NAME may be left out for a "
                   "single input); default: 2 for the batch dim, 64 for the others")
    o.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance of the comparison (default 1e-6)")
    o.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance of the comparison (default 1e-5)")
    o.add_argument("--ort-opt-level", choices=("disable", "basic", "extended", "all"), default="basic",
                   help="onnxruntime graph optimizations for the comparison (default basic)")
    o.add_argument("--overwrite", action="store_true", help="allow OUT to be IN (replaced only after verification)")
    o.add_argument("--external-data", action="store_true",
                   help="store weights in OUT.data (automatic for inputs with external data and models over ~1.8 GB)")
    _verbosity(p)
    p.set_defaults(handler=_run_onnx)


def _rules_parser(commands) -> None:
    p = commands.add_parser("rules", help="list, show or check placement rules", epilog=RULES_EXAMPLES,
                            description="Built-in placement rules and your own YAML rules.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    sub.required = True
    ls = sub.add_parser("list", help="the built-in rules", epilog="example:\n  seinject rules list --json\n")
    ls.add_argument("--json", action="store_true", help="print as JSON")
    _verbosity(ls)
    ls.set_defaults(handler=_run_rules_list)
    show = sub.add_parser("show", help="print a rule (built-in name or YAML path)",
                          epilog="examples:\n  seinject rules show after_residual\n"
                          "  seinject rules show my_rules/stage34.yaml --json\n")
    show.add_argument("rule", metavar="NAME", help="built-in rule name or path to a YAML rule")
    show.add_argument("--json", action="store_true", help="print the parsed rule as JSON")
    _verbosity(show)
    show.set_defaults(handler=_run_rules_show)
    check = sub.add_parser("check", help="validate YAML rule files (exit 2 on the first error)",
                           epilog="example:\n  seinject rules check my_rules/*.yaml\n")
    check.add_argument("files", metavar="FILE.yaml", nargs="+", help="rule files to validate")
    _verbosity(check)
    check.set_defaults(handler=_run_rules_check)


def _config_options(group, config: type) -> None:
    """One option per field of a config dataclass (--min-hidden sets min_hidden): typed by the field's
    annotation, help and metavar from its metadata. Tuple fields repeat (--include A --include B);
    integer tuples also take commas (--stages 3,4). Values are checked where the config is built.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _config_options(parser, Filters)
        >>> parser.parse_args(["--stages", "3,4", "--stages", "1", "--include", "a", "--include", "b"]).stages
        [3, 4, 1]
    """
    hints = typing.get_type_hints(config)
    for f in _option_fields(config):
        kind = _without_none(hints[f.name])
        options: dict[str, Any] = {"help": f.metadata["help"], "metavar": f.metadata.get("metavar")}
        if typing.get_origin(kind) is tuple:
            ints = typing.get_args(kind)[0] is int
            options.update(action="extend" if ints else "append", type=_int_list if ints else str,
                           help=options["help"] + " (repeatable)")
        elif kind is bool:
            options.update(type=_boolean, metavar="{true,false}")
        else:
            options["type"] = kind
        group.add_argument("--" + f.name.replace("_", "-"), **options)


def _boolean(text: str) -> bool:
    """true/false (also yes/no, 1/0) for a boolean setting such as --bias false.

    Example:
        >>> _boolean("False"), _boolean("yes")
        (False, True)
    """
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if text.lower() not in words:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return words[text.lower()]


def _option_fields(config: type) -> list[Field]:
    """The fields of a config dataclass that are command-line options (metadata "cli" is not False)."""
    return [f for f in fields(config) if f.metadata.get("cli", True)]


def _without_none(hint: Any) -> Any:
    """int for `int | None`; the hint itself when it is not optional."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint
    return next(arg for arg in typing.get_args(hint) if arg is not type(None))


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def _input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """'x:1,3,224,224', 'x:[1,3,224,224]', '1x3x224x224' → (name or '', dims)."""
    name, _, dims = text.rpartition(":")
    dims = dims.strip().strip("[]()")
    parts = [d for d in dims.replace("x", ",").replace("*", ",").split(",") if d.strip()]
    try:
        values = tuple(int(d) for d in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad input shape {text!r}: expected NAME:D0,D1,... with integer dims") \
            from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"bad input shape {text!r}: dims must be positive integers")
    return name, values


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Example:
        >>> main(["rules", "show", "no_such_rule"])
        2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    _setup_logging(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SEInjectWarning)
        try:
            code = args.handler(args)
        except NoSitesError as exc:
            code = _fail(EXIT_NO_SITES, exc)
        except VerificationError as exc:
            code = _fail(EXIT_FAILED, exc)
        except SEInjectError as exc:
            code = _fail(EXIT_USAGE, exc)
        except KeyboardInterrupt:
            print("seinject: interrupted", file=sys.stderr)
            code = 130
        except OSError as exc:
            code = _fail(EXIT_FAILED, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        except Exception as exc:  # an unexpected failure: exit 1, traceback with -v
            log.debug("traceback", exc_info=True)
            code = _fail(EXIT_FAILED, f"unexpected {type(exc).__name__}: {exc}"
                         + ("" if args.verbose else " (run with -v for the traceback)"))
    if not getattr(args, "quiet", False):
        for w in caught:
            if issubclass(w.category, SEInjectWarning):
                print(f"seinject: warning: {w.message}", file=sys.stderr)
    return code


def _fail(code: int, message: Any) -> int:
    print(f"seinject: error: {message}", file=sys.stderr)
    return code


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING
    if getattr(args, "verbose", 0) == 1:
        level = logging.INFO
    elif getattr(args, "verbose", 0) >= 2:
        level = logging.DEBUG
    if getattr(args, "quiet", False):
        level = logging.ERROR
    log.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("seinject: %(message)s"))
        log.addHandler(handler)
    log.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (main() may run many times in one process)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


# -- onnx -----------------------------------------------------------------------------------
def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The SE settings and filters given on the command line, as keyword overrides."""
    names = [f.name for config in (SEConfig, Filters) for f in _option_fields(config)]
    out = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if "ratio" in out and float(out["ratio"]).is_integer():
        out["ratio"] = int(out["ratio"])
    return out


def _shapes(args: argparse.Namespace) -> dict[str, tuple] | None:
    if not args.input_shape:
        return None
    shapes: dict[str, tuple] = {}
    for name, dims in args.input_shape:
        if name in shapes:
            raise ConfigError(f"--input-shape given twice for {name or 'the input'}")
        shapes[name] = dims
    return shapes


def _run_onnx(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"the ONNX backend needs the onnx extra: pip install 'seinject[onnx]' ({exc})") from None
    from .onnx import apply_file, plan

    overrides = _overrides(args)
    if args.dry_run:
        result = plan(args.input, args.rule, input_shapes=_shapes(args) or "auto", **overrides)
        _print(result, args)
        if args.strict and not len(result):
            raise NoSitesError(f"rule {result.rule!r} matched no site in {args.input}")
        return EXIT_OK
    if not args.output:
        raise UsageError("give OUT, the file to write (or --dry-run to only plan)")
    report = apply_file(args.input, args.output, args.rule, verify=not args.no_verify, overwrite=args.overwrite,
                        strict=args.strict, seed=args.seed, input_shapes=_shapes(args), atol=args.atol,
                        rtol=args.rtol, opt_level=args.ort_opt_level,
                        external_data=True if args.external_data else None, **overrides)
    _print(report, args)
    if report.seconds:
        log.info("seconds: %s", ", ".join(f"{k} {v:.3f}" for k, v in report.seconds.items()))
    return EXIT_OK


def _print(result: Any, args: argparse.Namespace) -> None:
    """The report on stdout: JSON with --json, else aligned text (plain, so it pipes and diffs well)."""
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)


# -- rules ----------------------------------------------------------------------------------
def _run_rules_list(args: argparse.Namespace) -> int:
    rows = []
    for name in builtin_rule_names():
        rule = load_rule(name)
        first = rule.description.splitlines()[0] if rule.description else ""
        rows.append({"name": name, "position": rule.insert.position, "ratio": rule.se.ratio,
                     "description": " ".join(rule.description.split()), "summary": first})
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "summary"} for r in rows], indent=2))
        return EXIT_OK
    from .graph.table import format_table

    print(format_table(("rule", "position", "ratio", "description"),
                       [(r["name"], r["position"], f"{r['ratio']:g}", _clip(r["description"], 70)) for r in rows]))
    print(f"\n{len(rows)} built-in rules in {builtin_rules_dir()}; `seinject rules show NAME` prints one")
    return EXIT_OK


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _run_rules_show(args: argparse.Namespace) -> int:
    rule = load_rule(args.rule)
    if args.json:
        data = asdict(rule)
        for spec in data["pattern"]:
            spec.pop("line", None)
        print(json.dumps(data, indent=2, default=list))
        return EXIT_OK
    source = Path(rule.source) if rule.source else None
    if source is not None and source.is_file():
        print(f"# {source}")
        print(source.read_text(encoding="utf-8").rstrip())
    else:  # pragma: no cover - rules always come from files here
        print(rule)
    return EXIT_OK


def _run_rules_check(args: argparse.Namespace) -> int:
    for file in args.files:
        if not Path(file).is_file():
            raise UsageError(f"{file}: no such file")
        rule = load_rule(Path(file))
        kinds = " → ".join("|".join(s.kinds) + ("?" if s.optional else "") for s in rule.pattern)
        print(f"{file}: ok: rule {rule.name!r}: {kinds}; insert {rule.insert.position}"
              + (f" {rule.insert.node}" if rule.insert.node else ""))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
