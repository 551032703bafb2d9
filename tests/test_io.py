"""File primitives: only regular files are read, OS failures are one line, and a folder is deleted
only when mmbench's marker proves it wrote everything in it."""
from __future__ import annotations

import errno
import os

import pytest

from mmbench.errors import DataError, StorageError
from mmbench.io import OWNED, atomic_write_text, check_owned, mark_owned, open_regular, read_json, remove_owned

from .helpers import fail_os_call


@pytest.mark.timeout(30)  # a blocking open of a fifo would hang here
@pytest.mark.parametrize("make,kind", [
    (lambda p: os.mkfifo(p), "a fifo \\(named pipe\\)"),
    (lambda p: p.mkdir(), "a folder"),
    (lambda p: p.symlink_to("/dev/null"), "a character device"),
])
def test_only_regular_files_are_read(tmp_path, make, kind):
    p = tmp_path / "data.inter"
    make(p)
    with pytest.raises(DataError, match=rf"data\.inter: is {kind}, expected a regular file"):
        open_regular(p)
    with pytest.raises(DataError, match=rf"data\.inter: is {kind}"):
        read_json(p)


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: file not found"):
        read_json(tmp_path / "nope.json")
    with pytest.raises(DataError, match=r"file not found"):
        open_regular(tmp_path / "a-file" / "below")


def test_unwritable_target_is_one_storage_line(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageError, match=r"f/sub: cannot write: Not a directory"):
        atomic_write_text(tmp_path / "f" / "sub" / "out.json", "{}")
    with pytest.raises(StorageError, match=r"cannot write: File name too long"):
        atomic_write_text(tmp_path / ("x" * 300), "{}")


def test_disk_full_leaves_the_target_untouched(tmp_path, monkeypatch):
    target = tmp_path / "t.txt"
    target.write_text("old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError, match=r"t\.txt: cannot write: No space left on device; free some space"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


# Tests run as root, so chmod or a read-only mount cannot provoke these: each OS call that
# atomic_open makes is made to fail as the kernel would (helpers.fail_os_call).
_HINT = {errno.ENOSPC: "free some space", errno.EACCES: "choose a folder you may write to",
         errno.EROFS: "choose a folder on a writable file system", errno.ENAMETOOLONG: None}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS, errno.ENAMETOOLONG],
                         ids=errno.errorcode.get)
@pytest.mark.parametrize("call", ["mkdir", "open", "fsync", "replace"])
def test_every_os_failure_is_one_storage_line_and_leaves_the_target_untouched(tmp_path, monkeypatch, call, code):
    """Disk full, permission denied, read-only, a name too long, wherever atomic_open meets it:
    one StorageError line naming the target's folder, with the errno's text and hint; an
    existing target keeps its bytes and no temp file is left."""
    folder = tmp_path / "new" if call == "mkdir" else tmp_path
    target = folder / "t.txt"
    if call != "mkdir":
        target.write_text("old")
    fail_os_call(monkeypatch, call, code)
    with pytest.raises(StorageError) as e:
        atomic_write_text(target, "new")
    monkeypatch.undo()
    line = str(e.value)
    assert "\n" not in line and line.startswith(str(folder)), line
    assert f": cannot write: {os.strerror(code)}" in line, line
    assert (_HINT[code] in line) if _HINT[code] else ";" not in line, line
    if call == "mkdir":
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    else:
        assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS], ids=errno.errorcode.get)
@pytest.mark.parametrize("call", ["open", "replace"])
def test_a_failure_on_the_temp_file_names_the_target(tmp_path, monkeypatch, call, code):
    target = tmp_path / "t.txt"
    target.write_text("old")
    fail_os_call(monkeypatch, call, code)
    with pytest.raises(StorageError) as e:
        atomic_write_text(target, "new")
    assert str(e.value).startswith(f"{target}: cannot write: "), str(e.value)


def test_owned_folder_is_deleted_only_when_everything_in_it_is_ours(tmp_path):
    d = tmp_path / "out"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "b.npy").write_bytes(b"b")
    with pytest.raises(DataError, match=rf"out: output folder has no {OWNED} \(it was not written by mmbench\)"):
        remove_owned(d, "output folder")
    mark_owned(d)
    (d / "a.txt").write_text("edited by the user")
    with pytest.raises(DataError, match=r"holds 'a\.txt', which mmbench did not write \(it was changed\)"):
        check_owned(d, "output folder")
    (d / "a.txt").write_text("a")
    (d / "notes.md").write_text("mine")
    with pytest.raises(DataError, match=r"holds 'notes\.md', which mmbench did not write; refusing to delete it"):
        remove_owned(d, "output folder")
    assert (d / "notes.md").exists()
    (d / "notes.md").unlink()
    (d / "link").symlink_to(tmp_path)
    with pytest.raises(DataError, match=r"holds 'link', which is not a regular file"):
        remove_owned(d, "output folder")
    (d / "link").unlink()
    remove_owned(d, "output folder")
    assert not d.exists() and tmp_path.exists()


def test_a_killed_writers_temp_is_removed_by_the_next_write_and_nothing_else(tmp_path):
    """A SIGKILLed writer leaves its temp; the next write of the same path removes it, but never a
    live writer's temp, another host's, another file's or a file of another pattern."""
    import signal
    import subprocess
    import sys

    import mmbench.io as mio

    target = tmp_path / "card.toml"
    child = subprocess.Popen([sys.executable, "-c", "\n".join([
        "import sys, time, mmbench.io as m",
        "with m.atomic_open(sys.argv[1]) as f:",
        "    f.write('half'); f.flush(); print('open', flush=True); time.sleep(60)"]), str(target)],
        stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "open"
    child.send_signal(signal.SIGKILL)
    child.wait()
    dead = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(dead) == 1 and f"-{child.pid}." in dead[0].name and not target.exists()
    live = tmp_path / f".card.toml.{mio._HOST}-{os.getpid()}.abc.tmp"
    foreign = tmp_path / f".card.toml.ffffff-{child.pid}.abc.tmp"
    other_file = tmp_path / f".other.toml.{mio._HOST}-{child.pid}.abc.tmp"
    not_ours = tmp_path / ".card.toml.notes.tmp"
    for p in (live, foreign, other_file, not_ours):
        p.write_text("x")
    atomic_write_text(target, "whole")
    assert target.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["card.toml", live.name, foreign.name, other_file.name, not_ours.name])
