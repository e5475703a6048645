"""The one writer (t5peek.outfile): what is at the named path decides how it is written, and nothing the user did
not name is replaced. Nodes are made with os.mknod and os.mkfifo inside tmp_path, never under /dev."""

from __future__ import annotations

import os
import socket
import stat
import threading

import pytest

from helpers import assert_clean_error, run_cli
from t5peek.errors import T5PeekError, UsageError
from t5peek.outfile import check_target, write_target

PROMPT = "translate English to German : the red house is small"
PAGE = b"<!doctype html><p>report</p>\n"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="os.mknod of a device node needs root (CI runs as root)")


def write(path, data: bytes = PAGE, option: str = "--html") -> None:
    write_target(check_target(path, option), data)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def leftovers(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".part"))


# ----------------------------------------------------------------------------- regular files and links


def test_a_new_file_gets_the_umasks_mode(tmp_path, umask_022):
    write(tmp_path / "report.html")
    assert (tmp_path / "report.html").read_bytes() == PAGE
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
    os.umask(0o027)
    write(tmp_path / "other.html")
    assert stat.S_IMODE((tmp_path / "other.html").stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_a_replaced_file_keeps_its_mode(tmp_path, umask_022):
    target = tmp_path / "report.html"
    target.write_bytes(b"old")
    target.chmod(0o604)
    write(target)
    assert target.read_bytes() == PAGE
    assert stat.S_IMODE(target.stat().st_mode) == 0o604


def test_a_symlink_is_written_through_and_kept(tmp_path):
    (tmp_path / "site").mkdir()
    real = tmp_path / "site" / "report.html"
    real.write_bytes(b"old content")
    link = tmp_path / "report.html"
    link.symlink_to(os.path.join("site", "report.html"))
    write(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("site", "report.html")
    assert real.read_bytes() == PAGE
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "site") == []


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "report.html"
    link.symlink_to(tmp_path / "made.html")
    write(link)
    assert link.is_symlink() and (tmp_path / "made.html").read_bytes() == PAGE


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_bytes(b"old")
    checked = check_target(target, "--html")

    def full(descriptor, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(T5PeekError) as caught:
        write_target(checked, PAGE)
    assert not isinstance(caught.value, UsageError) and caught.value.exit_code == 1
    assert "No space left on device" in caught.value.message and "\n" not in caught.value.message
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- nodes: written in place


def read_while_writing(fifo, path) -> list[bytes]:
    """What a reader of `fifo` receives while t5peek writes to `path` (the FIFO, or a link to it)."""
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write(path)
    reader.join(10)
    return received


def test_a_fifo_is_written_directly_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert read_while_writing(fifo, fifo) == [PAGE]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmp_path) == []


def test_a_socket_is_written_directly_and_stays_a_socket(tmp_path):
    path = tmp_path / "sock"
    received = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                chunks = iter(lambda: connection.recv(65536), b"")
                received.append(b"".join(chunks))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        write(path)
        thread.join(10)
    assert received == [PAGE]
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@needs_root
def test_a_null_device_stays_a_device(tmp_path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    write(null)
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)
    assert leftovers(tmp_path) == []


@needs_root
def test_a_full_device_is_an_error_and_stays_a_device(tmp_path):
    full = tmp_path / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    with pytest.raises(T5PeekError) as caught:
        write(full)
    assert caught.value.exit_code == 1 and "No space left on device" in caught.value.message
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_a_symlink_to_a_fifo_writes_the_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "stdout"
    link.symlink_to(fifo)
    assert read_while_writing(fifo, link) == [PAGE]
    assert link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)


# ----------------------------------------------------------------------------- refused before anything runs


@pytest.mark.parametrize("name, fragment", [
    ("folder", "is a folder"),
    ("folder/", "names a folder"),
    ("new/", "names a folder"),
    ("nope/report.html", "does not exist"),
])
def test_folders_are_refused(tmp_path, name, fragment):
    (tmp_path / "folder").mkdir()
    with pytest.raises(UsageError, match=fragment):
        check_target(str(tmp_path / name) + ("/" if name.endswith("/") else ""), "--html")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["/proc/self/comm", "/sys/kernel/mm/report.html", "/proc"])
def test_kernel_folders_are_refused(name):
    with pytest.raises(UsageError, match="kernel"):
        check_target(name, "--html")


def test_a_symlink_into_proc_is_refused(tmp_path):
    link = tmp_path / "report.html"
    link.symlink_to("/proc/self/comm")
    with pytest.raises(UsageError, match="kernel"):
        check_target(link, "--html")


@needs_root
def test_a_block_device_is_refused(tmp_path):
    disk = tmp_path / "disk"
    os.mknod(disk, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    with pytest.raises(UsageError, match="block device"):
        check_target(disk, "--html")
    assert stat.S_ISBLK(os.lstat(disk).st_mode)


def test_an_unknown_users_home_is_a_usage_error():
    with pytest.raises(UsageError, match="no user 'no-such-user-t5peek'"):
        check_target("~no-such-user-t5peek/report.html", "--html")


def test_a_home_folder_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write("~/report.html")
    assert (tmp_path / "report.html").read_bytes() == PAGE


# ----------------------------------------------------------------------------- through the command


@pytest.fixture
def no_weights(monkeypatch):
    from t5peek import loading

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the usage error")

    monkeypatch.setattr(loading, "load_model", refuse)


@pytest.mark.parametrize("target", ["{tmp}/", "{tmp}/new/", "/proc/self/comm", "/sys/report.html", "{tmp}"])
def test_generate_refuses_bad_targets_before_loading(tiny_t5, no_weights, tmp_path, target):
    result = run_cli("generate", PROMPT, "-m", tiny_t5, "--html", target.format(tmp=tmp_path))
    assert_clean_error(result, 2, "--html")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@needs_root
def test_generate_into_a_full_device_fails_in_one_line(tiny_t5, tmp_path):
    full = tmp_path / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    result = run_cli("generate", PROMPT, "-m", tiny_t5, "-n", "2", "--html", full, "--json")
    assert_clean_error(result, 1, "No space left on device")
    assert "wrote the HTML report" not in result.stderr
    assert stat.S_ISCHR(os.lstat(full).st_mode)


@needs_root
def test_generate_into_a_null_device_keeps_it(tiny_t5, tmp_path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    result = run_cli("generate", PROMPT, "-m", tiny_t5, "-n", "2", "--html", null, "--json")
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode)
