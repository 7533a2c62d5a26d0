"""Hostile outputs: special files, outputs that are the input or its data, signals while writing, and
the temporary files a killed run leaves behind. Every case builds its own files in the test folder."""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import onnx
import pytest

import seinject.onnx as so
from seinject.errors import CheckpointError, UsageError
from seinject.safe_write import HOST, remove_stale
from seinject.torch.checkpoint_file import write_atomically
from tests.onnx_backend.graphs import residual_net

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="FIFOs, hard links and signals as on POSIX")


def model(folder: Path, name: str = "in.onnx", external: str | None = None) -> Path:
    """residual_net saved as folder/name, its weights in the file `external` when given."""
    path = folder / name
    if external:
        onnx.save_model(residual_net(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=external, size_threshold=0)
    else:
        onnx.save(residual_net(), path)
    return path


def no_write(monkeypatch):
    """Fail the test if anything tries to create a temporary file (the refusal must come first)."""
    import seinject.safe_write as sw

    def claim(self, suffix=""):
        raise AssertionError("a temporary file was about to be written")

    monkeypatch.setattr(sw.TempFiles, "claim", claim)


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


# --- special files --------------------------------------------------------------------------------

def test_fifo_out_is_refused_and_stays_a_fifo(folder, cli, monkeypatch):
    src = model(folder.path)
    os.mkfifo(folder.path / "out.onnx")
    folder.snapshot()
    no_write(monkeypatch)
    code, err = cli("onnx", src, folder.path / "out.onnx")
    assert code == 2 and "out.onnx' is a FIFO; seinject writes regular files only (refused)" in err
    assert stat.S_ISFIFO(os.lstat(folder.path / "out.onnx").st_mode)
    folder.assert_untouched()


def test_dev_null_out_is_refused_before_anything_is_written(folder, cli, monkeypatch):
    src = model(folder.path)
    folder.snapshot()
    no_write(monkeypatch)
    code, err = cli("onnx", src, "/dev/null")
    assert code == 2 and "output '/dev/null' is a character device" in err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    folder.assert_untouched()


def test_socket_out_is_refused(folder, cli, monkeypatch):
    src = model(folder.path)
    server = socket.socket(socket.AF_UNIX)
    try:
        try:
            server.bind(str(folder.path / "s.onnx"))
        except OSError as exc:  # a tmp path too long for AF_UNIX
            pytest.skip(f"cannot bind a socket here: {exc}")
        folder.snapshot()
        no_write(monkeypatch)
        code, err = cli("onnx", src, folder.path / "s.onnx")
        assert code == 2 and "is a socket" in err
        assert stat.S_ISSOCK(os.lstat(folder.path / "s.onnx").st_mode)
    finally:
        server.close()
    folder.assert_untouched()


def test_symlink_to_a_fifo_is_refused(folder, cli, monkeypatch):
    src = model(folder.path)
    os.mkfifo(folder.path / "pipe")
    os.symlink(folder.path / "pipe", folder.path / "out.onnx")
    folder.snapshot()
    no_write(monkeypatch)
    code, err = cli("onnx", src, folder.path / "out.onnx")
    assert code == 2 and "out.onnx' is a FIFO" in err
    assert os.path.islink(folder.path / "out.onnx")
    folder.assert_untouched()


def test_symlink_out_writes_its_target_and_stays_a_link(folder):
    """The documented choice: OUT is resolved; the link's target gets the new model, the link is kept."""
    src = model(folder.path)
    (folder.path / "models").mkdir()
    (folder.path / "models" / "v1.onnx").write_bytes(b"old")
    os.symlink("models/v1.onnx", folder.path / "latest.onnx")
    folder.snapshot()
    report = so.apply_file(src, folder.path / "latest.onnx")
    assert report.verified and report.output == str(folder.path / "latest.onnx")
    assert os.readlink(folder.path / "latest.onnx") == "models/v1.onnx"
    assert onnx.load(folder.path / "models" / "v1.onnx").graph.node[0].name  # a model now
    folder.before.pop("models/v1.onnx")  # replaced on purpose
    folder.assert_untouched(created=("models/v1.onnx",))


def test_python_api_refuses_a_fifo(folder, monkeypatch):
    src = model(folder.path)
    os.mkfifo(folder.path / "out.onnx")
    folder.snapshot()
    no_write(monkeypatch)
    with pytest.raises(UsageError, match="is a FIFO"):
        so.apply_file(src, folder.path / "out.onnx")
    folder.assert_untouched()


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_out_data_file_that_is_special_or_a_link_is_refused(folder, cli, kind):
    src = model(folder.path, external="w.bin")
    (folder.path / "elsewhere").write_bytes(b"keep me")
    if kind == "fifo":
        os.mkfifo(folder.path / "out.onnx.data")
    else:
        os.symlink(folder.path / "elsewhere", folder.path / "out.onnx.data")
    folder.snapshot()
    code, err = cli("onnx", src, folder.path / "out.onnx")
    assert code == 2 and "output data file" in err and "out.onnx.data" in err
    assert ("FIFO" if kind == "fifo" else "symbolic link") in err
    folder.assert_untouched()


def test_checkpoint_to_special_files_is_refused(folder):
    os.mkfifo(folder.path / "se.safetensors")
    folder.snapshot()
    with pytest.raises(CheckpointError, match="se.safetensors.*is a FIFO"):
        write_atomically(folder.path / "se.safetensors", b"x")
    with pytest.raises(CheckpointError, match="is a character device"):
        write_atomically(Path("/dev/null"), b"x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    folder.assert_untouched()


# --- OUT that is the input or its data ------------------------------------------------------------

@pytest.mark.parametrize("overwrite", [False, True])
def test_out_naming_an_external_data_file_of_in_is_refused(folder, cli, overwrite):
    src = model(folder.path, external="w.bin")
    folder.snapshot()
    code, err = cli("onnx", src, folder.path / "w.bin", *(["--overwrite"] if overwrite else []))
    assert code == 2 and "w.bin' is an external data file of the input" in err
    folder.assert_untouched()


@pytest.mark.parametrize("overwrite", [False, True])
def test_out_hard_linked_to_in_data_is_refused(folder, cli, overwrite):
    src = model(folder.path, external="w.bin")
    os.link(folder.path / "w.bin", folder.path / "copy.bin")
    folder.snapshot()
    code, err = cli("onnx", src, folder.path / "copy.bin", *(["--overwrite"] if overwrite else []))
    assert code == 2 and "copy.bin" in err and "is an external data file of the input" in err
    folder.assert_untouched()


def test_out_hard_linked_to_in_is_the_input(folder, cli):
    src = model(folder.path)
    os.link(src, folder.path / "other.onnx")
    folder.snapshot()
    code, err = cli("onnx", src, folder.path / "other.onnx")
    assert code == 2 and "other.onnx' is the input file; pass --overwrite" in err
    folder.assert_untouched()


def test_in_named_like_outs_data_file_is_refused(folder, cli):
    """IN is m.onnx.data (external weights in w.bin), OUT m.onnx: OUT's data would be m.onnx.data,
    which is IN: refused before anything is written."""
    src = model(folder.path, name="m.onnx.data", external="w.bin")
    folder.snapshot()
    code, err = cli("onnx", src, folder.path / "m.onnx")
    assert code == 2 and "m.onnx.data' is the input or one of its external-data files" in err, err
    folder.assert_untouched()


def test_overwriting_in_with_external_data_keeps_its_old_data_file(folder, cli):
    src = model(folder.path, name="m.onnx", external="m.onnx.data")
    before = (folder.path / "m.onnx.data").read_bytes()
    code, err = cli("onnx", src, src, "--overwrite")
    assert code == 0, err
    assert (folder.path / "m.onnx.data").read_bytes() == before
    assert sorted(p.name for p in folder.path.iterdir()) == ["m.onnx", "m.onnx.1.data", "m.onnx.data"]


# --- signals while the temporary files exist ------------------------------------------------------

SLOW_APPLY = textwrap.dedent("""
    import signal, sys, time
    for sig in (signal.SIGTERM, signal.SIGHUP):   # as in a normal shell, whatever the test runner ignores
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import seinject.onnx.api as api

    def slow(*args, **kwargs):                    # verification that takes long: the temp files exist
        print("READY", flush=True)
        time.sleep(120)

    api.compare = slow
    from seinject.cli import main
    sys.exit(main(sys.argv[1:]))
""")

SLOW_SAVE = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from pathlib import Path
    from seinject.torch.checkpoint_file import write_atomically

    def slow(fd):
        print("READY", flush=True)
        time.sleep(120)

    os.fsync = slow
    write_atomically(Path(sys.argv[1]), b"x" * 1000)
""")


def run_until_ready(script: str, *argv) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    watchdog = threading.Timer(180, proc.kill)  # never hang the suite on a subprocess that is stuck
    watchdog.start()
    try:
        line = proc.stdout.readline()
    finally:
        watchdog.cancel()
    if line.strip() != "READY":
        proc.kill()
        pytest.fail(f"the subprocess did not get to the write: {line!r} {proc.communicate()[1][-2000:]}")
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_while_writing_leaves_no_temporary_file(folder, sig, code):
    src = model(folder.path, external="w.bin")
    folder.snapshot()
    proc = run_until_ready(SLOW_APPLY, "onnx", src, folder.path / "out.onnx")
    temps = sorted(p.name for p in folder.path.iterdir() if ".seinject-" in p.name)
    assert len(temps) == 2 and all(f".seinject-{HOST}-{proc.pid}-" in t for t in temps)  # model + data
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    assert ("interrupted" if sig == signal.SIGINT else "stopped by signal") in proc.stderr.read()
    folder.assert_untouched()


def test_sigterm_while_saving_a_checkpoint_leaves_nothing(folder):
    (folder.path / "se.safetensors").write_bytes(b"previous")
    folder.snapshot()
    proc = run_until_ready(SLOW_SAVE, folder.path / "se.safetensors")
    assert any(".seinject-" in p.name for p in folder.path.iterdir())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    folder.assert_untouched()


def test_signal_handlers_come_back_and_an_applications_own_handler_is_kept(folder, monkeypatch):
    import seinject.onnx.api as api

    src = model(folder.path)
    seen = []

    def mine(signum, frame):
        pass

    real = api.compare

    def spy(*args, **kwargs):
        seen.append((signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)))
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "compare", spy)
    term, hup = signal.signal(signal.SIGTERM, signal.SIG_DFL), signal.signal(signal.SIGHUP, mine)
    try:
        so.apply_file(src, folder.path / "out.onnx")
        assert seen[0][0] not in (signal.SIG_DFL, mine) and seen[0][1] is mine  # ours for TERM, theirs for HUP
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and signal.getsignal(signal.SIGHUP) is mine
    finally:
        signal.signal(signal.SIGTERM, term)
        signal.signal(signal.SIGHUP, hup)


# --- stale temporary files ------------------------------------------------------------------------

def test_stale_temporary_files_of_a_killed_run_are_removed_and_nothing_else(folder, caplog):
    src = model(folder.path)
    dead, alive = dead_pid(), os.getppid()
    (folder.path / "keep.txt").write_bytes(b"the target of a link that looks like a temp file")
    stale = [f".out.onnx.seinject-{HOST}-{dead}-0123abcd.tmp", f".out.onnx.seinject-{HOST}-{dead}-0123abcd.data.tmp"]
    kept = [f".out.onnx.seinject-{HOST}-{alive}-0123abcd.tmp",         # its process is alive
            f".out.onnx.seinject-0badc0de-{dead}-0123abcd.tmp",         # another host's
            f".out.onnx.seinject-{HOST}-{dead}-0123abcd.tmp.bak",      # not the exact pattern
            f".other.onnx.seinject-{HOST}-{dead}-0123abcd.tmp",        # another destination's
            f".out.onnx.seinject-{HOST}-{dead}-zzzzzzzz.tmp",
            ".out.onnx.seinject-0123abcd.tmp"]                          # an older seinject's: reported
    for name in stale + kept:
        (folder.path / name).write_bytes(b"partial model")
    link = f".out.onnx.seinject-{HOST}-{dead}-feedbeef.tmp"
    os.symlink(folder.path / "keep.txt", folder.path / link)
    folder.snapshot()
    with caplog.at_level(logging.INFO, logger="seinject"):
        so.apply_file(src, folder.path / "out.onnx")
    names = {p.name for p in folder.path.iterdir()}
    assert not names & set(stale) and set(kept) | {link} <= names
    assert os.path.islink(folder.path / link)
    assert "removed 2 temporary file(s) a killed seinject run left" in caplog.text
    assert ".out.onnx.seinject-0123abcd.tmp (no owner recorded" in caplog.text
    for name in stale:  # removed on purpose: drop them from the record
        folder.before.pop(name)
    folder.assert_untouched(created=("out.onnx",))


def test_stale_checkpoint_temporary_files_are_removed(folder):
    dead = dead_pid()
    name = f".se.safetensors.seinject-{HOST}-{dead}-0123abcd.tmp"
    (folder.path / name).write_bytes(b"half a checkpoint")
    write_atomically(folder.path / "se.safetensors", b"new")
    assert sorted(p.name for p in folder.path.iterdir()) == ["se.safetensors"]


def test_stale_files_owned_by_nobody_alive_but_not_regular_are_left(folder):
    dead = dead_pid()
    name = f".x.bin.seinject-{HOST}-{dead}-0123abcd.tmp"
    os.mkfifo(folder.path / name)
    (folder.path / f".x.bin.seinject-{HOST}-{dead}-0123abce.tmp").mkdir()
    assert remove_stale(folder.path / "x.bin") == []
    assert stat.S_ISFIFO(os.lstat(folder.path / name).st_mode)
