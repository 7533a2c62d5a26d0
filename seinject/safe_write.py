"""Atomic, interrupt-safe file writes shared by seinject.onnx.apply_file and seinject.save.

- The destination is resolved first (symlinks followed, as shell redirection does: a link
  keeps pointing where it did and its target gets the new content). The target must be a
  regular file or absent: devices, FIFOs, sockets and folders are refused (UsageError)
  before anything is written.
- Data goes to hidden temporary files beside the target, created exclusively and named
  `.<name>.seinject-<host>-<pid>-<token>[.data].tmp`; the last step renames them into place.
- While they exist, SIGTERM and SIGHUP raise Terminated (a SystemExit with code 128 + signal
  number) so that the same cleanup runs as for Ctrl-C (KeyboardInterrupt): only on the main
  thread and only for signals whose handler is the default; the previous handlers come back.
- Before writing, temporary files for the same destination that a killed run on this host
  left behind (their PID no longer alive, owned by this user, regular files) are removed and
  logged; files that do not match the exact name pattern are never touched.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_bytes(folder / "a.bin", b"data").name
    'a.bin'
    >>> sorted(p.name for p in folder.iterdir())
    ['a.bin']
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import stat
import threading
import zlib
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UsageError
from .suggest import short

log = logging.getLogger("seinject")

HOST = f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')):08x}"
_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)
_KINDS = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"),
          (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "folder"))


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived while temporary files existed; exits with 128 + the signal number.

    Example:
        >>> Terminated(15).code
        143
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def file_kind(path: Path, follow: bool = True) -> str | None:
    """None for a regular file or a missing path, else what it is ("FIFO", "symbolic link", ...).

    Example:
        >>> file_kind(Path("/dev/null")), file_kind(Path("/nonexistent/x"))
        ('character device', None)
    """
    try:
        mode = os.stat(path).st_mode if follow else os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"path that cannot be examined ({getattr(exc, 'strerror', None) or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return next((name for test, name in _KINDS if test(mode)), "special file")


def resolve_output(path: "str | os.PathLike", what: str = "output") -> Path:
    """The file a write to `path` replaces: symlinks followed; UsageError unless it is a regular file
    or absent in an existing folder.

    Example:
        >>> resolve_output("/dev/null")
        Traceback (most recent call last):
        ...
        seinject.errors.UsageError: output '/dev/null' is a character device; seinject writes regular files only (refused)
    """
    given = Path(path)
    try:
        target = given.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loop, NUL byte
        raise UsageError(f"{what} {short(given)} cannot be resolved: {exc}") from None
    kind = file_kind(target)
    if kind is not None:
        raise UsageError(f"{what} {short(given)} is a {kind}; seinject writes regular files only (refused)")
    if not target.parent.is_dir():
        raise UsageError(f"{what} folder {short(given.parent)} does not exist")
    return target


def same_as_any(path: Path, files: Iterable[Path]) -> bool:
    """True when `path` names one of `files`: same resolved path, or same device and inode (hard links).

    Example:
        >>> same_as_any(Path("/tmp/../tmp/x"), [Path("/tmp/x")])
        True
    """
    files = list(files)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    if any(resolved == Path(f).resolve() for f in files):
        return True
    try:
        mine = os.stat(path)
    except (OSError, ValueError):
        return False
    for other in files:
        try:
            theirs = os.stat(other)
        except (OSError, ValueError):
            continue
        if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
            return True
    return False


def _own_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(name)}\.seinject-(?P<host>[0-9a-f]{{8}})-(?P<pid>[1-9][0-9]{{0,9}})"
                      rf"-[0-9a-f]{{8}}(?:\.data)?\.tmp")


def _legacy_pattern(name: str) -> re.Pattern:  # names of seinject versions before the owner id
    return re.compile(rf"\.{re.escape(name)}\.seinject-[0-9a-f]{{8}}(?:[0-9a-f]{{8}})?(?:\.data)?\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return True
    return True


def remove_stale(target: Path) -> list[Path]:
    """Remove the temporary files of `target` that a killed run on this host left; returns them.

    Only names of the exact pattern, with this host's id and a PID no longer alive, that are
    regular files (never symlinks) owned by this user. Older-style names are reported, not removed.

    Example:
        >>> import tempfile, subprocess, sys
        >>> folder = Path(tempfile.mkdtemp())
        >>> dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
        ...                       capture_output=True, text=True).stdout.strip()
        >>> _ = (folder / f".m.onnx.seinject-{HOST}-{dead}-0123abcd.tmp").write_bytes(b"")
        >>> [p.name for p in remove_stale(folder / "m.onnx")] == [f".m.onnx.seinject-{HOST}-{dead}-0123abcd.tmp"]
        True
    """
    if os.name != "posix":
        return []
    prefix, own, legacy = f".{target.name}.seinject-", _own_pattern(target.name), _legacy_pattern(target.name)
    removed: list[Path] = []
    old: list[str] = []
    try:
        with os.scandir(target.parent) as entries:
            candidates = [e for e in entries if e.name.startswith(prefix)]
    except OSError:
        return []
    for entry in candidates:
        found = own.fullmatch(entry.name)
        if found is None:
            if legacy.fullmatch(entry.name):
                old.append(entry.name)
            continue
        if found["host"] != HOST or _alive(int(found["pid"])):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                continue
            os.unlink(entry.path)  # unlink never follows a link; S_ISREG above excludes them anyway
        except OSError:
            continue
        removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary file(s) a killed seinject run left in %s: %s", len(removed),
                 target.parent, ", ".join(p.name for p in removed))
    if old:
        log.warning("temporary file(s) of an older seinject run in %s: %s (no owner recorded: remove "
                    "them by hand when no seinject is running)", target.parent, ", ".join(sorted(old)))
    return removed


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise Terminated (code 128 + signal) so cleanup code runs.

    Only on the main thread, and only for signals whose handler is the default; the
    previous handlers come back when the block ends. A second signal while the first one
    unwinds is ignored.

    Example:
        >>> with cleanup_on_signals():
        ...     signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        True
        >>> signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        True
    """
    installed: dict[int, object] = {}
    fired: list[int] = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Terminated(signum)

    if threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:
            try:
                if signal.getsignal(sig) is signal.SIG_DFL:
                    signal.signal(sig, handler)
                    installed[sig] = signal.SIG_DFL
            except (OSError, ValueError):
                pass
    try:
        yield
    except Terminated as exc:
        log.warning("stopped by signal %d; temporary files removed", exc.signum)
        raise
    finally:
        for sig, previous in installed.items():
            signal.signal(sig, previous)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back while a few renames must happen together (main thread only).

    Example:
        >>> with signals_deferred():
        ...     pass
    """
    mask = {signal.SIGINT, *_SIGNALS}
    blocking = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    if blocking:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    try:
        yield
    finally:
        if blocking:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class TempFiles:
    """Temporary files beside `target` for one write, removed on exit unless renamed away.

    Entering removes stale temporary files of `target` and installs the signal cleanup;
    `claim(suffix)` creates one file exclusively (O_EXCL, no symlink followed) and returns its path.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with TempFiles(folder / "x.bin") as temp:
        ...     _ = temp.claim("").write_bytes(b"...")
        >>> list(folder.iterdir())
        []
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        self.stem = f".{self.target.name}.seinject-{HOST}-{os.getpid()}-{secrets.token_hex(4)}"
        self.created: list[Path] = []
        self._signals = cleanup_on_signals()

    def path(self, suffix: str = "") -> Path:
        """The temporary file's name for `suffix` ("" for the main file, ".data" for a data file)."""
        return self.target.parent / f"{self.stem}{suffix}.tmp"

    def claim(self, suffix: str = "") -> Path:
        """Create the temporary file for `suffix` exclusively (empty); returns its path."""
        path = self.path(suffix)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        os.close(os.open(path, flags, 0o666))
        self.created.append(path)
        return path

    def move(self, path: Path, destination: Path) -> None:
        """Rename the temporary file `path` to `destination` (os.replace); it is no longer ours to remove."""
        os.replace(path, destination)
        self.created.remove(path)

    def __enter__(self) -> "TempFiles":
        remove_stale(self.target)
        self._signals.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        try:
            self.remove()
        finally:
            self._signals.__exit__(*exc)
        return False

    def remove(self) -> None:
        """Remove the temporary files still there (no error when they are already gone)."""
        while self.created:
            path = self.created.pop()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def write_bytes(path: "str | os.PathLike", data: bytes) -> Path:
    """Write `data` to the file `path` names, atomically (see the module docstring); returns the file written.

    OSError for I/O failures, UsageError for a destination that is not a regular file.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_bytes(folder / "b.bin", b"1").read_bytes()
        b'1'
    """
    target = resolve_output(path)
    with TempFiles(target) as temp:
        staged = temp.claim("")
        with open(staged, "r+b") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.move(staged, target)
    return target
