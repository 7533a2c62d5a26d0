"""The SE checkpoint file: a safetensors file whose metadata says how to rebuild the blocks.

Tensors: the SE blocks' parameters and buffers (and those `also=` named) under their
state_dict names. Metadata (safetensors keeps str → str):

    format            "seinject.se"
    format_version    "1"
    seinject_version  the version that wrote the file
    model             class name of the model saved (for messages)
    rule              the rule as given to apply, as the YAML a rule file holds (seinject.rule.dump)
    overrides         JSON object: the keyword overrides given to apply (ratio, include, ...)
    sites             JSON list: one entry per SE block, as in the report's JSON
                      (module, name, position, channels, hidden, stage, ...)
    also              JSON list: the `also=` regexes whose tensors the file holds too

Reading uses safetensors, json and the safe YAML rule loader only: nothing in a file is
executed. Writing is atomic (seinject.safe_write): a hidden temporary file beside the
destination, renamed into place once complete; a failure or a signal leaves nothing behind.

Example:
    >>> FORMAT, FORMAT_VERSION
    ('seinject.se', 1)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError, ConfigError, RuleError, UsageError
from ..rule.dump import dump_rule, same_rule
from ..rule.loader import parse_rule
from ..rule.overrides import resolve_rule
from ..rule.schema import Rule
from ..safe_write import write_bytes

FORMAT = "seinject.se"
FORMAT_VERSION = 1
_JSON_KEYS = ("overrides", "sites", "also")


@dataclass(frozen=True)
class CheckpointHeader:
    """What a checkpoint says, read without loading its tensors.

    rule: the rule as given to apply; resolved: with the overrides applied (what made the
    blocks); sites: one dict per SE block (its `module` name first); shapes: every tensor's shape.
    """

    path: str
    rule: Rule
    overrides: dict[str, Any]
    resolved: Rule
    sites: list[dict[str, Any]]
    also: list[str]
    shapes: dict[str, tuple[int, ...]]
    model: str
    seinject_version: str
    format_version: int


def header_metadata(rule: Rule, overrides: dict[str, Any], sites: list[dict], also: list[str],
                    model: str, version: str) -> dict[str, str]:
    """The metadata strings of a checkpoint; CheckpointError when the rule or an override cannot be stored.

    Example:
        >>> from seinject.rule.loader import load_rule
        >>> meta = header_metadata(load_rule("conv_block"), {"ratio": 8}, [], [], "Net", "0.1.0")
        >>> meta["format"], meta["overrides"]
        ('seinject.se', '{"ratio": 8}')
    """
    text = dump_rule(rule)
    try:
        stored = same_rule(parse_rule(text, f"rule {rule.name!r}"), rule)
    except RuleError as exc:
        raise CheckpointError(f"rule {rule.name!r} cannot be stored as a rule file: {exc}") from None
    if not stored:
        raise CheckpointError(f"rule {rule.name!r} does not read back the same from a rule file; "
                              "give it as a YAML file or built-in name")
    for key, value in overrides.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise CheckpointError(f"override {key}={value!r} cannot be stored (not a JSON value); "
                                  "give it as a str, number, bool or list") from None
    return {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "seinject_version": version,
        "model": model,
        "rule": text,
        "overrides": json.dumps(overrides),
        "sites": json.dumps(sites),
        "also": json.dumps(also),
    }


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` with seinject.safe_write: a hidden temporary file beside it, renamed into
    place once complete, removed on any failure or SIGINT/SIGTERM/SIGHUP. A destination that is not a
    regular file (device, FIFO, folder) or whose folder is missing is a CheckpointError.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_atomically(folder / "se.safetensors", b"x")
        >>> sorted(p.name for p in folder.iterdir())
        ['se.safetensors']
        >>> write_atomically(Path("/dev/null"), b"x")
        Traceback (most recent call last):
        ...
        seinject.errors.CheckpointError: /dev/null: cannot write the checkpoint: output '/dev/null' is a character device; ...
    """
    try:
        write_bytes(path, data)
    except UsageError as exc:
        raise CheckpointError(f"cannot write the checkpoint: {exc}", str(path)) from None
    except OSError as exc:
        raise CheckpointError(f"cannot write the checkpoint: {exc.strerror or exc}", str(path)) from None


def read_header(path: "str | os.PathLike") -> CheckpointHeader:
    """The checkpoint's metadata and tensor shapes; CheckpointError for a missing file, a file that is
    not safetensors or not a seinject checkpoint, a newer format version, or a stored rule that does not load.

    Example:
        >>> read_header("/nonexistent/se.safetensors")
        Traceback (most recent call last):
        ...
        seinject.errors.CheckpointError: /nonexistent/se.safetensors: no such file
    """
    where = str(path)
    metadata, shapes = _read_safetensors(where)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"not a seinject checkpoint: its metadata has no 'format': {FORMAT!r} "
                              f"(metadata keys: {', '.join(sorted(metadata)) or 'none'})", where)
    version = _format_version(metadata, where)
    fields = {key: _json_field(metadata, key, where) for key in _JSON_KEYS}
    rule, resolved = _rule(metadata, fields["overrides"], where)
    return CheckpointHeader(path=where, rule=rule, overrides=fields["overrides"], resolved=resolved,
                            sites=_sites(fields["sites"], where), also=_strings(fields["also"], "also", where),
                            shapes=shapes, model=metadata.get("model", "?"),
                            seinject_version=metadata.get("seinject_version", "?"), format_version=version)


def _read_safetensors(where: str) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    try:
        with safe_open(where, framework="pt") as handle:
            metadata = handle.metadata() or {}
            shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except FileNotFoundError:
        raise CheckpointError("no such file", where) from None
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"not a safetensors file ({exc})", where) from None
    return metadata, shapes


def _format_version(metadata: dict[str, str], where: str) -> int:
    text = metadata.get("format_version", "")
    if not text.isdigit():
        raise CheckpointError(f"metadata 'format_version' must be a whole number, got {text!r}", where)
    version = int(text)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"written by seinject {metadata.get('seinject_version', '?')} in checkpoint "
                              f"format {version}; this seinject reads format {FORMAT_VERSION} and older: "
                              "upgrade seinject", where)
    return version


def _json_field(metadata: dict[str, str], key: str, where: str) -> Any:
    if key not in metadata:
        raise CheckpointError(f"metadata has no {key!r}", where)
    try:
        return json.loads(metadata[key])
    except ValueError as exc:
        raise CheckpointError(f"metadata {key!r} is not valid JSON: {exc}", where) from None


def _rule(metadata: dict[str, str], overrides: Any, where: str) -> tuple[Rule, Rule]:
    if "rule" not in metadata:
        raise CheckpointError("metadata has no 'rule'", where)
    if not isinstance(overrides, dict):
        raise CheckpointError(f"metadata 'overrides' must be a JSON object, got {overrides!r}", where)
    try:
        rule = parse_rule(metadata["rule"], f"{where} (metadata 'rule')")
        return rule, resolve_rule(rule, overrides)
    except (RuleError, ConfigError) as exc:
        raise CheckpointError(f"its stored rule does not load: {exc}", where) from None


def _sites(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(s, dict) and isinstance(s.get("module"), str)
                                              for s in value):
        raise CheckpointError("metadata 'sites' must be a JSON list of objects with a 'module' name", where)
    return value


def _strings(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CheckpointError(f"metadata {key!r} must be a JSON list of strings, got {value!r}", where)
    return value
