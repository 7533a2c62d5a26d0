"""Load ONNX models safely and write them atomically.

Loading: a path is parsed without its external data first; every external data
location must be a relative path that resolves (symlinks followed) to a file inside
the model's folder, or the model is refused (UnsafeModelError) before its data is read
and before any runtime sees it. Not an ONNX file, a corrupt protobuf, no graph or an
opset outside 11..onnx's newest are ModelErrors that name the file.

Writing (StagedOutput): the model goes to a hidden temporary file in the destination
folder (its external data, if any, to a new temporary data file: onnx appends to an
existing data file, so a fresh name is the only safe one); the caller verifies it and
commits (rename into place, data file first) or discards (temporary files removed).

Example:
    >>> import onnx.helper as h
    >>> m = h.make_model(h.make_graph([], "g", [], []), opset_imports=[h.make_opsetid("", 17)])
    >>> load_model(m).opset
    17
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ..errors import ModelError, UnsafeModelError, UsageError
from .view import default_opset

MIN_OPSET = 11
PROTOBUF_LIMIT = 2**31 - 1
EXTERNAL_THRESHOLD = 1_800_000_000  # bytes of tensor data above which the output uses external data


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
    if files and with_data:
        try:
            external_data_helper.load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read external data: {exc}") from None
    return LoadedModel(model, path, files, opset)


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
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL and not tensor.raw_data:
            raise ModelError(f"{where}: tensor {tensor.name!r} keeps its data in an external file that is "
                             "not loaded; pass the model's path instead")


def check_external_data(model: onnx.ModelProto, folder: Path, where: str) -> set[Path]:
    """The external data files of a model loaded from `folder`; UnsafeModelError for any outside it.

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
        seinject.errors.UnsafeModelError: m.onnx: tensor 'w' refers to external data '../secret.bin' outside ...
    """
    root = folder.resolve()
    files: set[Path] = set()
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (root / location).resolve()
        inside = bool(location) and not os.path.isabs(location) and target.is_relative_to(root) and target != root
        if not inside:
            raise UnsafeModelError(f"{where}: tensor {tensor.name!r} refers to external data {location!r} "
                                   "outside the model's folder; refused")
        if not target.is_file():
            raise ModelError(f"{where}: external data file {location!r} of tensor {tensor.name!r} not found")
        end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        if end > target.stat().st_size:
            raise ModelError(f"{where}: external data of tensor {tensor.name!r} runs past the end of {location!r}")
        files.add(target)
    return files


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

    Example:
        >>> import tempfile, onnx.helper as h
        >>> folder = Path(tempfile.mkdtemp())
        >>> staged = StagedOutput(folder / "out.onnx")
        >>> staged.write(h.make_model(h.make_graph([], "g", [], [])))
        >>> staged.commit().name, sorted(p.name for p in folder.iterdir())
        ('out.onnx', ['out.onnx'])
    """

    def __init__(self, destination: Path, external: bool = False, protected: set[Path] | None = None):
        self.destination = Path(destination)
        self.folder = self.destination.parent
        token = secrets.token_hex(4)
        self.temp_model = self.folder / f".{self.destination.name}.seinject-{token}.tmp"
        self.temp_data = self.folder / f".{self.destination.name}.seinject-{token}.data.tmp"
        self.external = external
        self.final_data = _data_name(self.destination, protected or set())

    def write(self, model: onnx.ModelProto) -> None:
        """Serialize to the temporary file(s); with external data this empties the tensors of `model`."""
        if not self.folder.is_dir():
            raise UsageError(f"output folder {self.folder} does not exist")
        try:
            if self.external:
                onnx.save_model(model, str(self.temp_model), save_as_external_data=True,
                                all_tensors_to_one_file=True, location=self.temp_data.name, size_threshold=1024)
            else:
                onnx.save_model(model, str(self.temp_model))
        except BaseException:
            self.discard()
            raise

    def commit(self) -> Path:
        """Move the verified files into place: data file under its final name, then the model."""
        try:
            if self.external and self.temp_data.exists():
                model = onnx.load(str(self.temp_model), load_external_data=False)
                for tensor in external_data_helper._get_all_tensors(model):
                    for entry in tensor.external_data:
                        if entry.key == "location" and entry.value == self.temp_data.name:
                            entry.value = self.final_data.name
                onnx.save_model(model, str(self.temp_model))
                os.replace(self.temp_data, self.final_data)
            os.replace(self.temp_model, self.destination)
        except BaseException:
            self.discard()
            raise
        return self.destination

    def discard(self) -> None:
        """Remove the temporary files (no error when they are already gone)."""
        for path in (self.temp_model, self.temp_data):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _data_name(destination: Path, protected: set[Path]) -> Path:
    """<out>.data, or <out>.<n>.data when that name is a data file of the input."""
    candidate = destination.with_name(destination.name + ".data")
    n = 1
    while candidate.resolve() in protected:
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
