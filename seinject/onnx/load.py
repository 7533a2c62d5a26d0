"""Load ONNX models safely and write them atomically.

Loading: a path is parsed without its external data first; every external data
reference (initializers, sparse initializers' values and indices, tensor attributes
such as Constant's value/sparse_value/tensors, in the main graph, in If/Loop/Scan
bodies, in model functions and training graphs) must be a relative path without `..`
that resolves (symlinks followed) to a regular file inside the model's folder, with
offset and length plain decimal numbers inside that file, or the model is refused
(UnsafeModelError) before its data is read and before any runtime sees it. Not an
ONNX file, a corrupt protobuf, no graph or an opset outside 11..onnx's newest are
ModelErrors that name the file.

Writing (StagedOutput, on seinject.safe_write): the destination is resolved (symlinks
followed) and must be a regular file or absent; the model goes to a hidden temporary
file beside it (its external data, if any, to a new temporary data file: onnx appends
to an existing data file, so a fresh name is the only safe one); the caller verifies it
and commits (rename into place, data file first) or discards (temporary files removed,
also on SIGINT, SIGTERM and SIGHUP). The data file is "<OUT>.data"; when that name is one
of the input's files (same path or same inode) the write is refused, unless the input
model itself is being replaced (--overwrite): then it is "<OUT>.<n>.data". It never
replaces an input file. An existing data file of that name that is a symlink or a special file is
refused (UsageError).

Example:
    >>> import onnx.helper as h
    >>> m = h.make_model(h.make_graph([], "g", [], []), opset_imports=[h.make_opsetid("", 17)])
    >>> load_model(m).opset
    17
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ..errors import ModelError, UnsafeModelError, UsageError
from ..safe_write import TempFiles, file_kind, resolve_output, same_as_any, signals_deferred
from ..suggest import short
from .view import default_opset

MIN_OPSET = 11
PROTOBUF_LIMIT = 2**31 - 1
EXTERNAL_THRESHOLD = 1_800_000_000  # bytes of tensor data above which the output uses external data
_NUMBER = re.compile(r"[0-9]{1,19}")  # external data offset/length: plain decimal, below 10**19


@dataclass
class LoadedModel:
    """A model with where it came from: its file (None for in-memory models), folder and data files."""

    model: onnx.ModelProto
    path: Path | None = None
    external_files: set[Path] = field(default_factory=set)
    opset: int = 0

    @property
    def has_external_data(self) -> bool:
        """True when the file kept tensors in external data files."""
        return bool(self.external_files)


def load_model(source: Any, with_data: bool = True) -> LoadedModel:
    """A LoadedModel from a path, serialized bytes or a ModelProto (not copied).

    with_data=False leaves a file's external data unread (its locations are still checked).

    Example:
        >>> load_model(b"not an onnx model")
        Traceback (most recent call last):
        ...
        seinject.errors.ModelError: <bytes>: not an ONNX model (protobuf parse failed: ...)
    """
    if isinstance(source, onnx.ModelProto):
        _check_loaded(source, "<ModelProto>")
        return LoadedModel(source, opset=_check_model(source, "<ModelProto>"))
    if isinstance(source, (bytes, bytearray)):
        model = _parse(bytes(source), "<bytes>")
        _check_loaded(model, "<bytes>")
        return LoadedModel(model, opset=_check_model(model, "<bytes>"))
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source), with_data)
    raise ModelError(f"expected an ONNX model (path, bytes, onnx.ModelProto, onnx_graphsurgeon.Graph "
                     f"or onnx_ir.Model), got {type(source).__name__}")


def _load_path(path: Path, with_data: bool = True) -> LoadedModel:
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror or exc}") from None
    model = _parse(data, str(path))
    opset = _check_model(model, str(path))
    files = check_external_data(model, path.parent, str(path))
    loaded = LoadedModel(model, path, files, opset)
    if with_data:
        read_external_data(loaded)
    return loaded


def read_external_data(loaded: LoadedModel) -> None:
    """Read the (already checked) external data of a model loaded with with_data=False into its tensors.

    Example:
        >>> import onnx.helper as h
        >>> read_external_data(LoadedModel(h.make_model(h.make_graph([], "g", [], []))))
    """
    if not loaded.external_files or loaded.path is None:
        return
    folder = str(loaded.path.parent)
    for tensor, _ in all_tensors(loaded.model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        try:
            external_data_helper.load_external_data_for_tensor(tensor, folder)
        except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
            raise ModelError(f"{loaded.path}: cannot read external data of tensor {short(tensor.name)}: "
                             f"{str(exc)[:200]}") from None


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{where}: not an ONNX model (protobuf parse failed: {reason})") from None
    return model


def _check_model(model: onnx.ModelProto, where: str) -> int:
    """The model's ai.onnx opset, after checking that it is a model seinject can process."""
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ModelError(f"{where}: not an ONNX model (no ir_version or no graph)")
    opset = default_opset(model)
    newest = onnx.defs.onnx_opset_version()
    if opset == 0 and len(model.graph.node) == 0:
        return opset
    if opset == 0:
        raise ModelError(f"{where}: the model imports no ai.onnx opset; seinject inserts ai.onnx ops")
    if opset < MIN_OPSET:
        raise ModelError(f"{where}: unsupported opset {opset}: seinject needs opset >= {MIN_OPSET} "
                         "(convert it with onnx.version_converter.convert_version(model, 13))")
    if opset > newest:
        raise ModelError(f"{where}: unsupported opset {opset}: the installed onnx {onnx.__version__} "
                         f"knows opsets up to {newest}")
    return opset


def _check_loaded(model: onnx.ModelProto, where: str) -> None:
    """An in-memory model may not refer to external data: a runtime would read it relative to the
    current folder."""
    for tensor, place in all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelError(f"{where}: tensor {short(tensor.name)} ({place}) keeps its data in an external "
                             "file that is not loaded; pass the model's path instead")


def all_tensors(model: onnx.ModelProto) -> Iterator[tuple[onnx.TensorProto, str]]:
    """Every TensorProto of a model, with where it is: initializers, sparse initializers (values and
    indices), tensor attributes (t, tensors, sparse_tensor, sparse_tensors) of every node in the graph,
    in subgraphs (If/Loop/Scan bodies), in model functions and in training graphs.

    Example:
        >>> import onnx.helper as h
        >>> from onnx import TensorProto
        >>> c = h.make_node("Constant", [], ["c"], value=h.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
        >>> body = h.make_graph([c], "body", [], [h.make_tensor_value_info("c", TensorProto.FLOAT, [1])])
        >>> node = h.make_node("If", ["b"], ["y"], then_branch=body, else_branch=body)
        >>> [place for _, place in all_tensors(h.make_model(h.make_graph([node], "g", [], [])))]
        ["node 'If' attribute else_branch: node 'Constant' attribute value", "node 'If' attribute then_branch: node 'Constant' attribute value"]
    """
    stack: list[tuple[Any, str]] = [(model.graph, "")]
    stack += [(f, f"function {short(f.name)}: ") for f in model.functions]
    for info in model.training_info:
        stack += [(info.initialization, "training initialization: "), (info.algorithm, "training algorithm: ")]
    stack.reverse()
    while stack:
        graph, prefix = stack.pop()
        if isinstance(graph, onnx.GraphProto):
            for tensor in graph.initializer:
                yield tensor, f"{prefix}initializer"
            for sparse in graph.sparse_initializer:
                yield sparse.values, f"{prefix}sparse initializer values"
                yield sparse.indices, f"{prefix}sparse initializer indices"
        subgraphs = []
        for node in graph.node:
            for attr in node.attribute:
                where = f"{prefix}node {short(node.name or node.op_type, 40)} attribute {short(attr.name, 40)[1:-1]}"
                if attr.HasField("t"):
                    yield attr.t, where
                for tensor in attr.tensors:
                    yield tensor, where
                sparse_tensors = [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []
                for sparse in (*sparse_tensors, *attr.sparse_tensors):
                    yield sparse.values, where
                    yield sparse.indices, where
                if attr.HasField("g"):
                    subgraphs.append((attr.g, f"{where}: "))
                subgraphs += [(g, f"{where}: ") for g in attr.graphs]
        stack += reversed(subgraphs)


def check_external_data(model: onnx.ModelProto, folder: Path, where: str) -> set[Path]:
    """The external data files of a model loaded from `folder`; UnsafeModelError for a reference outside
    it (absolute, `..`, a symlink leading out), to something that is not a regular file, with a malformed
    or repeated key, or with an offset/length that is not a plain decimal number; ModelError for a missing
    file or data past its end. Every tensor all_tensors() finds is checked.

    Example:
        >>> import onnx.helper as h
        >>> from onnx import TensorProto
        >>> t = h.make_tensor("w", TensorProto.FLOAT, [1], [0.0], raw=False)
        >>> t.raw_data = b"\\0" * 4
        >>> external_data_helper.set_external_data(t, location="../secret.bin")
        >>> m = h.make_model(h.make_graph([], "g", [], [], initializer=[t]))
        >>> check_external_data(m, Path("/tmp"), "m.onnx")
        Traceback (most recent call last):
        ...
        seinject.errors.UnsafeModelError: m.onnx: tensor 'w' (initializer) refers to external data '../secret.bin' outside ...
    """
    root = folder.resolve()
    files: set[Path] = set()
    sizes: dict[Path, int] = {}
    for tensor, place in all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        label = f"tensor {short(tensor.name)} ({place})"
        info: dict[str, str] = {}
        for entry in tensor.external_data:
            if entry.key in info:
                raise UnsafeModelError(f"{where}: {label} gives external data key {short(entry.key)} twice; refused")
            info[entry.key] = entry.value
        location = info.get("location", "")
        target = _inside(root, location)
        if target is None:
            raise UnsafeModelError(f"{where}: {label} refers to external data {short(location)} "
                                   "outside the model's folder; refused")
        kind = file_kind(target)
        if kind is not None:
            raise UnsafeModelError(f"{where}: external data {short(location)} of {label} is a {kind}, "
                                   "not a regular file; refused")
        if not target.exists():
            raise ModelError(f"{where}: external data file {short(location)} of {label} not found")
        numbers = {}
        for key in ("offset", "length"):
            text = info.get(key)
            if text is not None and not _NUMBER.fullmatch(text):
                raise UnsafeModelError(f"{where}: {label} has external data {key} {short(text)}; "
                                       "expected a whole number of bytes")
            numbers[key] = int(text) if text is not None else None
        size = sizes.setdefault(target, target.stat().st_size)
        offset = numbers["offset"] or 0
        end = offset + numbers["length"] if numbers["length"] is not None else offset
        if end > size:
            raise ModelError(f"{where}: external data of {label} runs past the end of {short(location)} "
                             f"(offset {offset}, length {numbers['length']}, file size {size})")
        files.add(target)
    return files


def _inside(root: Path, location: str) -> Path | None:
    """The file `location` names below `root` (symlinks resolved), or None when it is not a safe
    relative reference into root."""
    if not location or "\0" in location or os.path.isabs(location) or location.startswith(("/", "\\")):
        return None
    if ".." in re.split(r"[/\\]", location):
        return None
    try:
        target = (root / location).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return target if target.is_relative_to(root) and target != root else None


def tensor_bytes(model: onnx.ModelProto) -> int:
    """Bytes of tensor data held in the model (raw_data and typed fields, approximately).

    Example:
        >>> import onnx.helper as h
        >>> tensor_bytes(h.make_model(h.make_graph([], "g", [], [])))
        0
    """
    total = 0
    for tensor in model.graph.initializer:
        total += len(tensor.raw_data) or 4 * (len(tensor.float_data) + len(tensor.int32_data)) \
            + 8 * (len(tensor.int64_data) + len(tensor.double_data))
    return total


class StagedOutput:
    """An output written to a temporary file beside its destination, then committed or discarded.

    The destination is checked when the object is made (UsageError: a device, FIFO, socket or
    folder, or a data file name that is one); use it as a context manager (or call commit or
    discard) so that the temporary files and signal handlers go away.

    Example:
        >>> import tempfile, onnx.helper as h
        >>> folder = Path(tempfile.mkdtemp())
        >>> with StagedOutput(folder / "out.onnx") as staged:
        ...     staged.write(h.make_model(h.make_graph([], "g", [], [])))
        ...     staged.commit().name
        'out.onnx'
        >>> sorted(p.name for p in folder.iterdir())
        ['out.onnx']
    """

    def __init__(self, destination: Path, external: bool = False, protected: set[Path] | None = None,
                 replacing_input: bool = False):
        self.destination = Path(destination)
        self.target = resolve_output(self.destination)
        self.folder = self.target.parent
        self.temp = TempFiles(self.target)
        self.temp_model = self.temp.path("")
        self.temp_data = self.temp.path(".data")
        self.external = external
        self.final_data = _data_name(self.target, protected or set(), replacing_input) if external else \
            self.target.with_name(self.target.name + ".data")
        kind = file_kind(self.final_data, follow=False) if external else None
        if kind is not None:
            raise UsageError(f"output data file {short(self.final_data)} is a {kind}; refused "
                             "(remove it or choose another OUT)")
        self._open = False

    def __enter__(self) -> "StagedOutput":
        self._start()
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        self._close(exc)
        return False

    def _start(self) -> None:
        if not self._open:
            self.temp.__enter__()
            self._open = True

    def write(self, model: onnx.ModelProto) -> None:
        """Serialize to the temporary file(s); with external data this empties the tensors of `model`."""
        if not self.folder.is_dir():
            raise UsageError(f"output folder {short(self.folder)} does not exist")
        self._start()
        try:
            self.temp.claim("")
            if self.external:
                self.temp.claim(".data")
                onnx.save_model(model, str(self.temp_model), save_as_external_data=True,
                                all_tensors_to_one_file=True, location=self.temp_data.name, size_threshold=1024)
            else:
                onnx.save_model(model, str(self.temp_model))
            _sync(self.temp.created)
        except BaseException as exc:
            self._close(exc)
            raise

    def commit(self) -> Path:
        """Move the verified files into place: data file under its final name, then the model."""
        try:
            moved_data = False
            if self.external and self.temp_data.exists():
                model = onnx.load(str(self.temp_model), load_external_data=False)
                for tensor, _ in all_tensors(model):
                    for entry in tensor.external_data:
                        if entry.key == "location" and entry.value == self.temp_data.name:
                            entry.value, moved_data = self.final_data.name, True
                if moved_data:
                    onnx.save_model(model, str(self.temp_model))
                    _sync([self.temp_model])
            for path, what in ((self.target, "output"), (self.final_data if moved_data else None, "output data file")):
                kind = path is not None and file_kind(path, follow=path != self.final_data)
                if kind:  # it changed since the check in __init__
                    raise UsageError(f"{what} {short(path)} is a {kind}; refused")
            with signals_deferred():  # both renames or neither
                if moved_data:
                    self.temp.move(self.temp_data, self.final_data)
                self.temp.move(self.temp_model, self.target)
        except BaseException as exc:
            self._close(exc)
            raise
        self._close()
        return self.destination

    def discard(self) -> None:
        """Remove the temporary files (no error when they are already gone) and restore signal handlers."""
        self._close()

    def _close(self, exc: BaseException | None = None) -> None:
        if self._open:
            self._open = False
            self.temp.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        else:
            self.temp.remove()


def _sync(paths) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _data_name(destination: Path, protected: set[Path], replacing_input: bool = False) -> Path:
    """<out>.data. When that is the input or one of its data files (same path or inode): a UsageError,
    or, when the input model file itself is being replaced (--overwrite), <out>.<n>.data.

    Example:
        >>> _data_name(Path("/tmp/m.onnx"), {Path("/tmp/m.onnx.data")}, replacing_input=True).name
        'm.onnx.1.data'
        >>> _data_name(Path("/tmp/m.onnx"), {Path("/tmp/m.onnx.data")})
        Traceback (most recent call last):
        ...
        seinject.errors.UsageError: output data file '/tmp/m.onnx.data' is the input or one of its ...
    """
    candidate = destination.with_name(destination.name + ".data")
    if same_as_any(candidate, protected) and not replacing_input:
        raise UsageError(f"output data file {short(candidate)} is the input or one of its external-data "
                         "files; writing it would destroy the input's weights (refused): choose another OUT name")
    n = 1
    while same_as_any(candidate, protected):
        candidate = destination.with_name(f"{destination.name}.{n}.data")
        n += 1
    return candidate


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (or would, once created).

    Example:
        >>> same_file(Path("/tmp/x.onnx"), Path("/tmp/../tmp/x.onnx"))
        True
    """
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
