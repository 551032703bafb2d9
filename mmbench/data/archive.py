"""Extract downloaded archives safely: all or nothing, inside the target, within a size budget.

``extract`` builds into ``<target>.incomplete`` and renames it to ``target`` only when every
member was written, so a reader never sees a half-extracted dataset. It refuses (``DataError``
naming the archive and the member) absolute paths, ``..`` components, links and device files,
more than ``max_members`` members, and more than ``max_total_bytes`` uncompressed bytes --
checked on the sizes the archive declares before anything is written, and again on the bytes
actually written.
"""
from __future__ import annotations

import gzip
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator

from ..errors import DataError

__all__ = ["extract", "archive_kind", "DEFAULT_MAX_TOTAL_BYTES", "DEFAULT_MAX_MEMBERS"]

DEFAULT_MAX_TOTAL_BYTES = 20 * 2**30
DEFAULT_MAX_MEMBERS = 1_000_000
_CHUNK = 1 << 20
_DRIVE_RE = re.compile(r"^[A-Za-z]:")

_KINDS = (
    (".tar.gz", "tar"), (".tgz", "tar"), (".tar.bz2", "tar"), (".tbz2", "tar"), (".tbz", "tar"),
    (".tar.xz", "tar"), (".txz", "tar"), (".tar", "tar"), (".zip", "zip"), (".gz", "gz"),
)


def archive_kind(path: str | os.PathLike) -> str | None:
    """``"zip"``, ``"tar"`` (any compression) or ``"gz"`` (one gzipped file) by file name."""
    name = Path(path).name.lower()
    for suffix, kind in _KINDS:
        if name.endswith(suffix):
            return kind
    return None


class _Budget:
    """Counts bytes actually written across all members."""

    def __init__(self, archive: Path, limit: int):
        self.archive = archive
        self.limit = limit
        self.used = 0

    def add(self, n: int, member: str) -> None:
        self.used += n
        if self.used > self.limit:
            raise DataError(
                f"member {member!r} takes the uncompressed size past {self.limit} bytes "
                "(possible archive bomb)", where=str(self.archive),
                hint="raise max_total_bytes only if this archive is trusted",
            )


def _safe_parts(archive: Path, member: str) -> tuple[str, ...]:
    """Relative path components of ``member``; ``DataError`` if it could leave the target."""
    if "\0" in member:
        raise DataError(f"member {member!r} has a NUL byte in its name", where=str(archive))
    norm = member.replace("\\", "/")
    if norm.startswith("/") or _DRIVE_RE.match(norm):
        raise DataError(f"member {member!r} has an absolute path; refusing to extract",
                        where=str(archive), hint="the archive is unsafe or corrupt")
    parts = tuple(p for p in PurePosixPath(norm).parts if p not in ("", "."))
    if ".." in parts:
        raise DataError(f"member {member!r} contains '..' (path traversal); refusing to extract",
                        where=str(archive), hint="the archive is unsafe or corrupt")
    return parts


def _dest(root: Path, parts: tuple[str, ...], archive: Path, member: str) -> Path:
    dest = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(dest)]) != real_root:
        raise DataError(f"member {member!r} resolves outside the target; refusing to extract",
                        where=str(archive))
    return dest


def _write_stream(src: IO[bytes], dest: Path, budget: _Budget, member: str,
                  declared: int | None, archive: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_dir():
        raise DataError(f"member {member!r} is a file but a folder of that name exists",
                        where=str(archive))
    written = 0
    with open(dest, "wb") as out:
        for block in iter(lambda: src.read(_CHUNK), b""):
            written += len(block)
            if declared is not None and written > declared:
                raise DataError(f"member {member!r} is larger than its declared {declared} bytes",
                                where=str(archive), hint="the archive is corrupt or malicious")
            budget.add(len(block), member)
            out.write(block)
    if declared is not None and written < declared:
        raise DataError(f"member {member!r} ends after {written} of its declared {declared} bytes",
                        where=str(archive), hint="the archive is truncated; delete it and download again")


def _check_declared(archive: Path, entries: Iterator[tuple[str, int]], max_total_bytes: int,
                    max_members: int) -> None:
    total = 0
    for count, (name, size) in enumerate(entries, 1):
        if count > max_members:
            raise DataError(f"more than {max_members} members (at {name!r})", where=str(archive),
                            hint="raise max_members only if this archive is trusted")
        total += max(0, size)
        if total > max_total_bytes:
            raise DataError(
                f"declared uncompressed size passes {max_total_bytes} bytes at member {name!r} "
                "(possible archive bomb)", where=str(archive),
                hint="raise max_total_bytes only if this archive is trusted",
            )


# ----------------------------------------------------------------------------- formats

def _extract_zip(archive: Path, root: Path, max_total_bytes: int, max_members: int) -> list[tuple[str, ...]]:
    files: list[tuple[str, ...]] = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        _check_declared(archive, ((i.filename, i.file_size) for i in infos), max_total_bytes, max_members)
        checked = []
        for info in infos:  # every member is vetted before the first byte is written
            parts = _safe_parts(archive, info.filename)
            ftype = stat.S_IFMT((info.external_attr >> 16) & 0xFFFF)  # 0 when no Unix type is stored
            if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
                raise DataError(f"member {info.filename!r} is a link or special file; refusing to extract",
                                where=str(archive), hint="only regular files and folders are allowed")
            checked.append((info, parts))
        budget = _Budget(archive, max_total_bytes)
        for info, parts in checked:
            if not parts:
                continue
            dest = _dest(root, parts, archive, info.filename)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src:
                _write_stream(src, dest, budget, info.filename, info.file_size, archive)
            files.append(parts)
    return files


def _tar_members(tf: tarfile.TarFile, archive: Path, max_members: int) -> list[tarfile.TarInfo]:
    members = []
    while True:
        m = tf.next()
        if m is None:
            return members
        members.append(m)
        if len(members) > max_members:
            raise DataError(f"more than {max_members} members (at {m.name!r})", where=str(archive),
                            hint="raise max_members only if this archive is trusted")


def _extract_tar(archive: Path, root: Path, max_total_bytes: int, max_members: int) -> list[tuple[str, ...]]:
    files: list[tuple[str, ...]] = []
    with tarfile.open(archive, "r:*") as tf:
        members = _tar_members(tf, archive, max_members)
        _check_declared(archive, ((m.name, m.size if m.isfile() else 0) for m in members),
                        max_total_bytes, max_members)
        checked = []
        for m in members:  # every member is vetted before the first byte is written
            parts = _safe_parts(archive, m.name)
            if m.issym() or m.islnk():
                raise DataError(f"member {m.name!r} is a link (to {m.linkname!r}); refusing to extract",
                                where=str(archive), hint="only regular files and folders are allowed")
            if not (m.isfile() or m.isdir()):
                raise DataError(f"member {m.name!r} is a device, fifo or other special file; "
                                "refusing to extract", where=str(archive),
                                hint="only regular files and folders are allowed")
            checked.append((m, parts))
        budget = _Budget(archive, max_total_bytes)
        for m, parts in checked:
            if not parts:
                continue
            dest = _dest(root, parts, archive, m.name)
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            src = tf.extractfile(m)
            if src is None:  # pragma: no cover - isfile() members always have data
                raise DataError(f"member {m.name!r} has no data", where=str(archive))
            with src:
                _write_stream(src, dest, budget, m.name, m.size, archive)
            if m.mode & 0o111:
                os.chmod(dest, 0o755)
            files.append(parts)
    return files


def _extract_gz(archive: Path, root: Path, max_total_bytes: int, max_members: int) -> list[tuple[str, ...]]:
    name = archive.name[:-3] if archive.name.lower().endswith(".gz") else archive.name + ".out"
    parts = _safe_parts(archive, name)
    if not parts:
        raise DataError("cannot derive an output file name", where=str(archive))
    budget = _Budget(archive, max_total_bytes)
    with gzip.open(archive, "rb") as src:
        _write_stream(src, _dest(root, parts, archive, name), budget, name, None, archive)
    return [parts]


_EXTRACTORS: dict[str, Callable[[Path, Path, int, int], list[tuple[str, ...]]]] = {
    "zip": _extract_zip, "tar": _extract_tar, "gz": _extract_gz,
}


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def extract(archive: str | os.PathLike, target: str | os.PathLike, *,
            max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
            max_members: int = DEFAULT_MAX_MEMBERS) -> list[Path]:
    """Extract ``archive`` (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz or one-file .gz) to ``target``.

    All or nothing: on any refusal or error the staging folder is removed, and ``target`` is
    left as it was (absent, or the previous complete extraction). An existing ``target`` is
    replaced only after the new tree is fully built. Returns the extracted files, sorted.
    """
    archive = Path(archive)
    target = Path(target)
    if not archive.is_file():
        raise DataError("archive not found", where=str(archive), hint="download it first")
    kind = archive_kind(archive)
    if kind is None:
        if zipfile.is_zipfile(archive):
            kind = "zip"
        elif tarfile.is_tarfile(archive):
            kind = "tar"
        else:
            raise DataError("unknown archive format", where=str(archive),
                            hint="supported: .zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz, .gz")

    staging = target.with_name(target.name + ".incomplete")
    old = target.with_name(target.name + ".old")
    target.parent.mkdir(parents=True, exist_ok=True)
    _rmtree(staging)  # leftover of a killed run
    staging.mkdir()
    try:
        rel = _EXTRACTORS[kind](archive, staging, int(max_total_bytes), int(max_members))
    except DataError:
        _rmtree(staging)
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error,
            gzip.BadGzipFile, lzma.LZMAError, OSError, RuntimeError, ValueError) as e:
        _rmtree(staging)
        raise DataError(f"cannot extract: {type(e).__name__}: {e}", where=str(archive),
                        hint="the archive is corrupt or incomplete; delete it and download again") from e
    except BaseException:
        _rmtree(staging)
        raise

    # Swap in: the previous tree is removed only after the new one is complete.
    if target.exists() or target.is_symlink():
        _rmtree(old)
        os.replace(target, old)
        try:
            os.replace(staging, target)
        except BaseException:
            os.replace(old, target)
            _rmtree(staging)
            raise
        _rmtree(old)
    else:
        os.replace(staging, target)
    return sorted({target.joinpath(*parts) for parts in rel})

