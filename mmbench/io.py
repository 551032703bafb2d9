"""Small, safe file primitives: reading only regular files, atomic writes, hashing, canonical
JSON, and the marker that proves mmbench wrote a folder (so ``--force`` deletes nothing else).

Every OS-level failure (disk full, permission denied, read-only, a name too long) becomes one
:class:`~mmbench.errors.StorageError` line naming the path.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterator

from .errors import DataError, StorageError

_CHUNK = 1 << 20
_UMASK = os.umask(0)
os.umask(_UMASK)
OWNED = ".mmbench-owned.json"  # in a folder mmbench wrote: every file it wrote, with its sha256
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a fifo (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}
_HINTS = {errno.ENOSPC: "free some space (or point MMBENCH_HOME / --results elsewhere) and rerun",
          errno.EDQUOT: "free some space (or point MMBENCH_HOME / --results elsewhere) and rerun",
          errno.EACCES: "choose a folder you may write to", errno.EPERM: "choose a folder you may write to",
          errno.EROFS: "choose a folder on a writable file system"}


def storage_error(e: OSError, path: str | os.PathLike, action: str = "write") -> StorageError:
    """One line for an OS-level failure on ``path``: what failed and, where it helps, what to do."""
    named = getattr(e, "filename", None)
    if named is not None and _is_own_temp(Path(os.fsdecode(named)), Path(path)):
        named = None  # our hidden temp file (removed by now): the user asked for ``path``
    return StorageError(f"cannot {action}: {e.strerror or e}", where=str(named or path), hint=_HINTS.get(e.errno))


def _is_own_temp(named: Path, path: Path) -> bool:
    """Whether ``named`` is a temp file that :func:`atomic_open` makes for ``path``."""
    return named.parent == path.parent and named.name.startswith(_temp_prefix(path)) and named.name.endswith(".tmp")


@contextlib.contextmanager
def storage(path: str | os.PathLike, action: str = "write") -> Iterator[None]:
    """Run a block of file-system operations on ``path``; an OSError becomes a StorageError."""
    try:
        yield
    except OSError as e:
        raise storage_error(e, path, action) from None


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for binary reading, only if it is a regular file (symlinks followed).

    A folder, fifo, device or socket is a DataError and is never read or waited on: the file is
    opened without blocking and checked before the first byte is read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise DataError("file not found", where=str(path)) from None
    except OSError as e:
        raise storage_error(e, path, "read") from None
    except ValueError:  # a NUL byte in the name
        raise DataError("not a usable file name", where=repr(str(path))) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise DataError(f"is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, expected a regular file",
                        where=str(path), hint="mmbench reads data only from regular files")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`)."""
    with open_regular(path) as f, storage(path, "read"):
        return f.read()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open_regular(path) as f, storage(path, "read"):
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:200]}."


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else (EPERM): alive
        return True
    return True


def remove_dead_temps(path: Path) -> None:
    """Remove the temp files that writers of ``path`` on this host left when they were killed.

    Each temp is named ``.<name>.<host>-<pid>.<random>.tmp``: one whose writer ran on this host
    and no longer exists is a leftover of a SIGKILL (an exception removes its own temp). Temps of
    live processes, of other hosts and of any other name pattern are never touched.
    """
    prefix = _temp_prefix(path)
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for n in names:
        writer = n[len(prefix):-len(".tmp")].split(".", 1)[0]
        host, _, pid = writer.partition("-")
        if host == _HOST and pid.isdigit() and not _writer_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / n)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temp file beside ``path``; on success fsync and rename it over ``path``.

    On any exception the temp file is removed and ``path`` is untouched, so a reader never
    sees a half-written file. After a SIGKILL only the temp may remain; the next write of the
    same path removes it (:func:`remove_dead_temps`).
    """
    path = Path(path)
    with storage(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{_HOST}-{os.getpid()}.", suffix=".tmp",
                                   dir=path.parent)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # disk full, read-only, ...: one line, the target untouched
            raise storage_error(e, path) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _reject_nonfinite(obj: Any, where: str = "$") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite number at {where}: {obj!r} (NaN/inf is never written)")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _reject_nonfinite(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _reject_nonfinite(v, f"{where}[{i}]")


def canonical_json(obj: Any, *, indent: int | None = 2) -> str:
    """Deterministic JSON: sorted keys, no NaN/inf, trailing newline."""
    _reject_nonfinite(obj)
    return json.dumps(obj, sort_keys=True, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def hash_params(params: dict) -> str:
    """Stable hash of a parameter dict (canonical JSON, sha256 hex)."""
    return sha256_bytes(canonical_json(params, indent=None).encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, canonical_json(obj))


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value of a regular file; anything malformed is a DataError naming the file."""
    data = read_bytes(path)
    try:
        return json.loads(data.decode("utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", where=str(path)) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason} at byte {e.start})", where=str(path)) from None
    except (ValueError, RecursionError) as e:  # an integer of thousands of digits, nesting too deep
        raise DataError(f"invalid JSON: {type(e).__name__}: {str(e)[:100]}", where=str(path)) from None


# ----------------------------------------------------------------------------- folders mmbench owns
def mark_owned(folder: str | os.PathLike) -> None:
    """Write ``folder``'s marker: every file in it, with its sha256 (the proof that mmbench wrote them)."""
    folder = Path(folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != OWNED)
    write_json(folder / OWNED, {"schema": "mmbench.owned/1", "files": {f: sha256_file(folder / f) for f in files}})


def _not_owned(folder: Path) -> str | None:
    """Why ``folder`` is not wholly mmbench's, or None when its marker lists exactly what it holds."""
    if folder.is_symlink() or not folder.is_dir():
        return "is not a folder"
    if not (folder / OWNED).is_file():
        return f"has no {OWNED} (it was not written by mmbench)"
    try:
        listed = read_json(folder / OWNED).get("files")
    except (DataError, AttributeError):
        listed = None
    if not isinstance(listed, dict):
        return f"has an unreadable {OWNED}"
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink() or not (p.is_dir() or p.is_file()):
            return f"holds {rel!r}, which is not a regular file"
        if p.is_file() and rel != OWNED and (rel not in listed or listed[rel] != sha256_file(p)):
            return f"holds {rel!r}, which mmbench did not write" + (" (it was changed)" if rel in listed else "")
    return None


def check_owned(folder: str | os.PathLike, what: str) -> None:
    """A DataError unless mmbench wrote everything in ``folder`` (:func:`mark_owned`), naming the
    first file that proves otherwise."""
    problem = _not_owned(Path(folder))
    if problem:
        raise DataError(f"{what} {problem}; refusing to delete it", where=str(folder),
                        hint="choose another folder, or move it away yourself")


def remove_owned(folder: str | os.PathLike, what: str) -> None:
    """Delete ``folder`` only if :func:`check_owned` allows it; otherwise nothing is deleted."""
    check_owned(folder, what)
    with storage(folder, "delete"):
        shutil.rmtree(folder)
