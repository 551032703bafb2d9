"""Fetch a card's URL source into the data home: download, verify, extract, verify again.

Layout for source ``S`` of card ``NAME`` version ``V``::

    $MMBENCH_HOME/downloads/NAME/V/S/            downloaded files (plain sources: the folder returned)
    $MMBENCH_HOME/downloads/NAME/V/S/extracted/  an archive's members (archive sources)
    $MMBENCH_HOME/downloads/NAME/V/S/extracted.json  what was extracted from which archive bytes

A source is either one archive (``url`` + ``archive = true``) or one or more plain files
(``url``, or ``[[sources.downloads]]`` with a URL per file). Every file is fetched with
:func:`mmbench.data.download.fetch` (resume, retries, sha256 + size), archives are extracted
with :func:`mmbench.data.archive.extract` (all or nothing, no path traversal), and the
card's ``checksums`` of extracted or downloaded files are verified before the folder is
returned. A mirror (``--mirror`` / ``$MMBENCH_MIRROR``: a folder or a base URL) replaces
every origin: each file is looked up by its file name directly under the mirror (a list
of mirrors separated by ``os.pathsep`` is tried in order). A mirror without an archive may
hold its members unpacked instead: then each file the card's ``checksums`` name is fetched
from it and verified (the others are not read).

Nothing that verified is deleted on a later failure: a checksum mismatch in an archive's
members removes only the extracted tree (it is rebuilt from the verified archive).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import DataError, DownloadError
from ..io import read_json, sha256_file, write_json
from ..paths import downloads_dir
from .archive import extract
from .download import MIRROR_ENV, Source, fetch

__all__ = ["fetch_source", "source_dir", "source_files"]

EXTRACTED = "extracted"
UNPACKED = "unpacked"  # an archive's members taken one by one from a mirror holding them unpacked
RETRIES = 3  # retries after the first attempt of each file
BACKOFF = 1.0  # seconds before the first retry, doubled each time


def source_dir(card, src: dict) -> Path:
    """Where the files of ``src`` are kept in the data home."""
    return downloads_dir() / card.name / card.version / src["name"]


def source_files(src: dict) -> list[dict]:
    """The downloads of a source as a list of ``{url, file, sha256, size, archive, strip}``."""
    if src.get("downloads"):
        return [dict(d) for d in src["downloads"]]
    keys = ("url", "sha256", "size", "archive", "strip")
    return [{k: src[k] for k in keys if k in src}]


def _as_download(d: dict, checksums: dict, where: str) -> Source:
    try:
        s = Source(url=d["url"], filename=d.get("file"), sha256=d.get("sha256"), size=d.get("size"))
    except Exception as e:  # ConfigError from Source validation: keep it one line, name the card
        raise DownloadError(str(e), where=where) from None
    if s.sha256 is None and s.name in checksums:  # a plain file's checksum doubles as its download sha
        s = Source(url=s.url, filename=d.get("file"), sha256=checksums[s.name], size=s.size)
    return s


def _mirror_set(mirror) -> bool:
    return bool(mirror if mirror is not None else os.environ.get(MIRROR_ENV))


def _verify(folder: Path, checksums: dict, where_hint: str) -> None:
    for name, expected in sorted(checksums.items()):
        p = folder / name
        if not p.is_file():
            raise DataError("file listed in the card's checksums is missing", where=str(p), hint=where_hint)
        got = sha256_file(p)
        if got != expected.lower():
            raise DataError(f"sha256 mismatch: expected {expected}, got {got}", where=str(p), hint=where_hint)


def _pick_root(root: Path, strip: str | None, archive: Path) -> Path:
    """The folder inside an extraction that holds the data files."""
    if strip:
        folder = root.joinpath(*[p for p in strip.replace("\\", "/").split("/") if p not in ("", ".")])
        if ".." in Path(strip).parts or not folder.is_dir():
            have = ", ".join(sorted(p.name for p in root.iterdir())) or "nothing"
            raise DataError(f"folder {strip!r} (the card's strip) is not in the archive (top level: {have})",
                            where=str(archive), hint="fix sources.strip in the card")
        return folder
    entries = [p for p in root.iterdir() if not p.name.startswith("__MACOSX")]
    if len(entries) == 1 and entries[0].is_dir():  # a single top-level folder: descend (strip = auto)
        return entries[0]
    return root


def _extract_once(archive: Path, target: Path, checksums: dict, strip: str | None) -> Path:
    """Extract ``archive`` unless the extraction beside it came from the same bytes and verified."""
    marker = target.with_name(target.name + ".json")
    st = archive.stat()
    stamp = {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if target.is_dir() and marker.is_file():
        try:
            info = read_json(marker)
        except DataError:
            info = {}
        if {k: info.get(k) for k in stamp} == stamp and info.get("checksums") == checksums:
            return _pick_root(target, strip, archive)
    marker.unlink(missing_ok=True)
    extract(archive, target)
    folder = _pick_root(target, strip, archive)
    try:
        _verify(folder, checksums, "the archive's content differs from the card; the extracted files were "
                                   "removed (the archive is kept) -- check the mirror or the card")
    except DataError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    write_json(marker, {**stamp, "sha256": sha256_file(archive), "checksums": checksums})
    return folder


def _unpacked(url: str, checksums: dict, folder: Path, **kw) -> Path:
    """An archive's members from a mirror that holds them unpacked (one file each, by name,
    each pinned by the card's checksums); only the members the checksums name."""
    for name, sha in sorted(checksums.items()):
        fetch(Source(url=url, filename=name, sha256=sha), folder, **kw)
    return folder


def fetch_source(card, src: dict, mirror: str | os.PathLike | None = None, *, progress: bool = True,
                 retries: int | None = None, backoff: float | None = None, timeout: float = 60.0) -> Path:
    """Download (or reuse) every file of ``src`` and return the folder holding the data files."""
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF if backoff is None else backoff
    where = f"{card.path} (source {src['name']!r})"
    if src.get("manual") and not _mirror_set(mirror):
        names = ", ".join(Source(url=d["url"], filename=d.get("file")).name for d in source_files(src))
        origin = src.get("url") or card.meta.get("homepage", "")
        raise DownloadError(f"this source cannot be downloaded automatically (needs a browser): {origin}",
                            where=where, hint=f"download {names} by hand into a folder and pass it with "
                                              f"--mirror DIR or ${MIRROR_ENV}")
    dest = source_dir(card, src)
    checksums = {k: str(v) for k, v in src.get("checksums", {}).items()}
    downloads = source_files(src)
    kw = {"mirror": mirror, "progress": progress, "retries": retries, "backoff": backoff, "timeout": timeout}
    if len(downloads) == 1 and downloads[0].get("archive", src.get("archive", False)):
        try:
            got = fetch(_as_download(downloads[0], checksums, where), dest, **kw)
        except DownloadError:
            if not (checksums and _mirror_set(mirror)):
                raise
            return _unpacked(downloads[0]["url"], checksums, dest / UNPACKED, **kw)
        return _extract_once(got, dest / EXTRACTED, checksums, downloads[0].get("strip", src.get("strip")))
    for d in downloads:
        fetch(_as_download(d, checksums, where), dest, **kw)
    _verify(dest, {k: v for k, v in checksums.items()},
            "the downloaded file differs from the card; check the mirror or the card")
    return dest
