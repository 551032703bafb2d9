"""Fetch dataset files: resumable, retried, verified before they are ever called finished.

Layout in ``dest_dir`` for a source named ``NAME``:

* ``NAME``          the finished file; only ever created by ``os.replace`` after it verified;
* ``NAME.part``     bytes received so far; a rerun resumes from it (HTTP ``Range``);
* ``NAME.corrupt``  the last download that failed its checksum, kept for inspection;
* ``.NAME.lock``    an advisory lock so two processes do not write the same ``.part``.

Only ``http``, ``https`` and ``file`` URLs are fetched. A mirror (argument or
``$MMBENCH_MIRROR``) replaces the origin: a local directory, a ``file://`` URL or an
http(s) base URL under which the file is looked up by its name, or a list of them
separated by ``os.pathsep`` (``DIR1:DIR2``; a URL keeps its own ``:``), tried in order.
"""
from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import ConfigError, DataError, DownloadError
from ..io import open_regular, sha256_file, storage
from . import transfer
from .transfer import Stalled

__all__ = ["Source", "resolve_url", "mirror_list", "mirror_urls", "fetch", "fetch_all", "MIRROR_ENV"]

log = logging.getLogger(__name__)

MIRROR_ENV = "MMBENCH_MIRROR"
_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 16
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_MIRROR_HINT = f"check the mirror (${MIRROR_ENV} or --mirror) or whether the upstream file changed"


@dataclass(frozen=True)
class Source:
    """One file to download. ``sha256``/``size`` are checked when given."""

    url: str
    filename: str | None = None
    sha256: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        sha = self.sha256
        if sha is not None:
            sha = sha.strip().lower()
            if sha.startswith("sha256:"):
                sha = sha[len("sha256:"):]
            if not sha:
                sha = None
            elif not _SHA_RE.match(sha):
                raise ConfigError(f"sha256 must be 64 hex digits, got {self.sha256!r}", where=self.url)
            object.__setattr__(self, "sha256", sha)
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0):
            raise ConfigError(f"size must be a non-negative integer, got {self.size!r}", where=self.url)
        name = self.name
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ConfigError(
                f"cannot use {name!r} as a file name", where=self.url,
                hint="set filename to a plain file name (no folders)",
            )

    @property
    def name(self) -> str:
        if self.filename:
            return self.filename
        path = urllib.parse.urlparse(self.url).path
        return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])


# ----------------------------------------------------------------------------- URLs

def _is_local_path(text: str) -> bool:
    scheme = urllib.parse.urlparse(text).scheme
    return scheme == "" or (len(scheme) == 1 and os.name == "nt")  # "C:\\..." on Windows


# one entry of a POSIX mirror list: a URL (whose "scheme://host:port" colons are not separators) or a path
_MIRROR_ITEM = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/:]*(?::\d+)?[^:]*|[^:]+")


def mirror_list(mirror: str | os.PathLike | None = None) -> list[str]:
    """The mirrors of ``mirror`` (default ``$MMBENCH_MIRROR``), a list separated by ``os.pathsep``
    in which a URL keeps its own colons; empty when none is set."""
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or ""
    text = os.fspath(mirror)
    if os.pathsep != ":":
        return [m for m in text.split(os.pathsep) if m]
    return _MIRROR_ITEM.findall(text)


def resolve_url(source: Source, mirror: str | os.PathLike | None = None) -> str:
    """The URL ``fetch`` reads from one mirror: ``<mirror>/<name>`` when a mirror is set, else
    ``source.url``.

    ``mirror=None`` falls back to ``$MMBENCH_MIRROR`` (empty means unset; a list: its first
    entry, see :func:`mirror_urls`); ``""`` means the origin. A mirror that is a local path
    is returned as a ``file://`` URL.
    """
    if mirror is None:
        mirror = next(iter(mirror_list()), None)
    if not mirror:  # "" names no mirror: the origin
        url = source.url
    else:
        mirror = os.fspath(mirror)
        if _is_local_path(mirror):
            url = (Path(mirror).expanduser().resolve() / source.name).as_uri()
        else:
            url = mirror.rstrip("/") + "/" + urllib.parse.quote(source.name)
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise DownloadError(
            f"unsupported URL scheme {scheme or '(none)'!r}", where=url,
            hint="only http, https and file URLs (or a local mirror directory) are fetched",
        )
    return url


def mirror_urls(source: Source, mirror: str | os.PathLike | None = None) -> list[str]:
    """The URLs ``fetch`` tries in order: the file under each mirror of the list, else the origin."""
    return [resolve_url(source, m) for m in mirror_list(mirror)] or [resolve_url(source, "")]


def _file_url_path(url: str) -> Path:
    parts = urllib.parse.urlparse(url)
    if parts.netloc not in ("", "localhost"):
        raise DownloadError(f"file URL on a remote host {parts.netloc!r}", where=url,
                            hint="use file:///absolute/path or a plain directory path")
    return Path(urllib.request.url2pathname(parts.path))


# ----------------------------------------------------------------------------- helpers

class _Transient(Exception):
    """A failure worth retrying (network, 5xx, a stall, connection cut short); ``cut`` when the
    connection ended before the body did (the file is truncated, not unavailable)."""

    def __init__(self, message: str, *, have: int | None = None, total: int | None = None, cut: bool = False):
        super().__init__(message)
        self.have = have
        self.total = total
        self.cut = cut


def _user_agent() -> str:
    try:
        from .. import __version__
    except Exception:  # pragma: no cover - defensive
        __version__ = "0"
    return f"mmbench/{__version__} (+python-urllib)"


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool, name: str, total: int | None, initial: int) -> Any:
    if not enabled:
        return _NullBar()
    try:
        isatty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        isatty = False
    if not isatty:
        return _NullBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return _NullBar()
    return tqdm(total=total, initial=initial, desc=name, unit="B", unit_scale=True,
                unit_divisor=1024, leave=False, file=sys.stderr)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _content_length(headers: Any) -> int | None:
    value = headers.get("Content-Length") if headers is not None else None
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.I)


def _content_range(headers: Any) -> tuple[int | None, int | None, int | None]:
    """``(start, end, total)`` of a Content-Range header; ``None`` where absent or ``*``."""
    m = _RANGE_RE.match((headers.get("Content-Range") or "") if headers is not None else "")
    if not m:
        return None, None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    end = int(m.group(2)) if m.group(2) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, end, total


@contextlib.contextmanager
def _locked(dest_dir: Path, name: str) -> Iterator[None]:
    """Advisory exclusive lock per file (POSIX); a no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(dest_dir / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _verify_existing(path: Path, source: Source) -> str | None:
    """``None`` if ``path`` matches the source's size and sha256, else the reason."""
    size = _size(path)
    if source.size is not None and size != source.size:
        return f"size {size} bytes, expected {source.size}"
    if source.sha256 is not None:
        actual = sha256_file(path)
        if actual != source.sha256:
            return f"sha256 {actual}, expected {source.sha256}"
    return None


# ----------------------------------------------------------------------------- transfer

def _copy_local(url: str, part: Path, source: Source, progress: bool) -> int:
    """Copy a ``file://`` source into ``part`` (from zero); return the source's size."""
    path = _file_url_path(url)
    try:
        src = open_regular(path)
    except DataError as e:  # absent, a folder, a fifo, a device: never waited on
        raise DownloadError(str(e), hint=f"the mirror must hold {source.name!r} (a regular file) directly "
                                         f"under it") from None
    total = os.fstat(src.fileno()).st_size
    limit = source.size
    bar = _progress_bar(progress, source.name, total, 0)
    written = 0
    try:
        with src, open(part, "wb") as dst:
            for block in iter(lambda: src.read(_CHUNK), b""):
                dst.write(block)
                written += len(block)
                bar.update(len(block))
                if limit is not None and written > limit:
                    break  # larger than the card says: verification rejects it
            dst.flush()
            os.fsync(dst.fileno())
    except OSError as e:
        raise DownloadError(f"cannot copy: {e}", where=str(path)) from e
    finally:
        bar.close()
    return total


def _resume_offset(part: Path, source: Source) -> int | None:
    """Bytes of ``part`` to resume after; None when all the card's bytes are there (verification decides)."""
    offset = _size(part)
    if source.size is not None:
        if offset > source.size:
            log.info("%s: partial file is larger than expected; starting over", part)
            part.unlink()
            offset = 0
        elif offset == source.size and offset > 0:
            return None
    return offset


def _open(opener: urllib.request.OpenerDirector, url: str, offset: int, timeout: float) -> tuple[Any, int | None]:
    """``(response, None)`` for a request from byte ``offset``; ``(None, total)`` when the server says
    nothing follows ``offset`` (HTTP 416: the part holds the whole file)."""
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout), None
    except urllib.error.HTTPError as e:
        with contextlib.suppress(Exception):
            e.close()
        if e.code == 416 and offset:
            return None, _content_range(e.headers)[2]
        if e.code >= 500 or e.code in (408, 429):
            raise _Transient(f"HTTP {e.code} {e.reason}") from e
        raise DownloadError(
            f"HTTP {e.code} {e.reason}", where=url,
            hint="the file is not available there (not retried); " + _MIRROR_HINT,
        ) from e
    except DownloadError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, Stalled):
            raise _Transient(str(reason)) from e
        raise _Transient(f"{type(reason).__name__}: {reason}") from e


def _body_plan(resp: Any, url: str, part: Path, offset: int) -> tuple[int, int | None, int | None, str]:
    """``(offset, length, total, file mode)`` of a response: a range (206) appends, a whole file (200)
    starts over; ``length`` is what this response should carry, ``total`` the whole file's size."""
    if resp.status == 206:
        start, end, total = _content_range(resp.headers)
        if start != offset:
            part.unlink(missing_ok=True)  # cannot stitch; the next attempt starts over
            raise _Transient(f"server sent a range starting at {start}, asked for {offset}")
        length = _content_length(resp.headers)
        if length is None and end is not None:
            length = end - start + 1
        return offset, length, total, "ab"
    if resp.status == 200:
        if offset:
            log.info("%s: server ignored the Range request; restarting from zero", url)
        total = _content_length(resp.headers)
        return 0, total, total, "wb"
    raise DownloadError(f"unexpected HTTP status {resp.status}", where=url, hint=_MIRROR_HINT)


def _stream(resp: Any, part: Path, mode: str, offset: int, total: int | None, source: Source,
            progress: bool) -> int:
    """Write the response body to ``part`` (synced); returns the bytes received. Stops once the
    card's size is passed: verification rejects such a file."""
    received = 0
    bar = _progress_bar(progress, source.name, total if total is not None else source.size, offset)
    try:
        with storage(part), open(part, mode) as f:
            try:
                while True:
                    try:
                        chunk = resp.read1(_CHUNK)
                    except Stalled as e:
                        raise _Transient(f"{e} after {offset + received} bytes of the file", have=offset + received,
                                         total=total) from e
                    except (OSError, http.client.HTTPException) as e:
                        raise _Transient(f"connection lost after {offset + received} bytes: "
                                         f"{type(e).__name__}: {e}", have=offset + received, total=total,
                                         cut=True) from e
                    if not chunk:
                        break
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                    if source.size is not None and offset + received > source.size:
                        break
            finally:
                f.flush()
                os.fsync(f.fileno())
    finally:
        bar.close()
    return received


def _http_attempt(opener: urllib.request.OpenerDirector, url: str, part: Path, source: Source,
                  timeout: float, progress: bool) -> int | None:
    """One request. Appends to ``part``; returns the full file length when the server said it.

    Raises ``_Transient`` for what a retry may fix, ``DownloadError`` for what it will not.
    """
    offset = _resume_offset(part, source)
    if offset is None:
        return source.size
    resp, total = _open(opener, url, offset, timeout)
    if resp is None:
        return total
    with contextlib.closing(resp):
        offset, length, total, mode = _body_plan(resp, url, part, offset)
        received = _stream(resp, part, mode, offset, total, source, progress)
    if length is not None and received < length and not (
            source.size is not None and offset + received > source.size):
        raise _Transient(f"connection closed after {offset + received} of {total or '?'} bytes",
                         have=offset + received, total=total, cut=True)
    return total


def _download_http(url: str, part: Path, source: Source, *, retries: int, backoff: float,
                   timeout: float, progress: bool) -> int | None:
    opener = transfer.opener(timeout)
    attempt = 0
    while True:
        try:
            return _http_attempt(opener, url, part, source, timeout, progress)
        except _Transient as e:
            attempt += 1
            have = _size(part)
            if attempt > retries:
                total = source.size if source.size is not None else e.total
                if e.cut and total is not None and have < total:
                    msg = f"truncated: got {have} of {total} bytes ({e}; gave up after {attempt} attempts)"
                else:
                    msg = f"{e} (gave up after {attempt} attempts)"
                kept = f"{have} bytes are kept in {part}; rerun to resume, or " if have else ""
                raise DownloadError(msg, where=url, hint=kept + _MIRROR_HINT) from e
            delay = max(0.0, backoff) * (2 ** (attempt - 1))
            log.warning("%s: %s; retry %d/%d in %.1fs (resuming at %d bytes)",
                        url, e, attempt, retries, delay, have)
            if delay:
                time.sleep(delay)


def _finish(part: Path, final: Path, source: Source, total: int | None, url: str) -> Path:
    """Verify ``part``; only then move it to ``final``. A bad part goes to ``.corrupt``."""
    corrupt = final.with_name(final.name + ".corrupt")
    expected = source.size if source.size is not None else total
    have = _size(part)
    if not part.exists():
        raise DownloadError("nothing was downloaded", where=url, hint=_MIRROR_HINT)
    if expected is not None and have < expected:
        raise DownloadError(
            f"truncated: got {have} of {expected} bytes", where=str(final),
            hint=f"the partial file is kept in {part.name}; rerun to resume, or {_MIRROR_HINT}",
        )
    if expected is not None and have > expected:
        os.replace(part, corrupt)
        raise DownloadError(
            f"size mismatch: got {have} bytes, expected {expected} (from {url})", where=str(final),
            hint=f"the download was moved to {corrupt.name}; {_MIRROR_HINT}",
        )
    if source.sha256 is not None:
        actual = sha256_file(part)
        if actual != source.sha256:
            os.replace(part, corrupt)
            raise DownloadError(
                f"sha256 mismatch: expected {source.sha256}, got {actual} (from {url})",
                where=str(final),
                hint=f"the download was moved to {corrupt.name}; {_MIRROR_HINT}",
            )
    os.replace(part, final)
    return final


def _first_of(urls: list[str], part: Path, final: Path, source: Source, *, progress: bool, **http: Any) -> Path:
    """The file from the first of ``urls`` that yields it verified (a mirror list, in order)."""
    errors = []
    for url in urls:
        try:
            log.info("fetching %s -> %s", url, final)
            if urllib.parse.urlparse(url).scheme.lower() == "file":
                total: int | None = _copy_local(url, part, source, progress)
            else:
                total = _download_http(url, part, source, progress=progress, **http)
            return _finish(part, final, source, total, url)
        except DownloadError as e:
            if len(urls) == 1:
                raise
            errors.append(f"{url}: {e}")
            part.unlink(missing_ok=True)  # the next mirror starts from zero
    raise DownloadError(f"no mirror of the list has it: {' | '.join(errors)}", where=str(final), hint=_MIRROR_HINT)


def fetch(source: Source, dest_dir: str | os.PathLike, *, mirror: str | os.PathLike | None = None,
          retries: int = 3, backoff: float = 1.0, timeout: float = 30.0, progress: bool = True,
          force: bool = False) -> Path:
    """Download ``source`` to ``dest_dir/<name>`` and return that path.

    An existing file that verifies is returned without any network access (unless ``force``).
    One that does not verify is kept until a new download has verified, then replaced.
    ``retries`` is the number of retries after the first attempt; the wait before retry ``k``
    is ``backoff * 2**(k-1)`` seconds, and every retry resumes from the bytes on disk.
    """
    dest_dir = Path(dest_dir)
    with storage(dest_dir):
        dest_dir.mkdir(parents=True, exist_ok=True)
    name = source.name
    final = dest_dir / name
    part = dest_dir / f"{name}.part"
    urls = mirror_urls(source, mirror)

    with _locked(dest_dir, name):
        existing_problem: str | None = None
        if final.exists():
            if not final.is_file():
                raise DownloadError("exists but is not a regular file", where=str(final),
                                    hint="move it away and rerun")
            if not force:
                existing_problem = _verify_existing(final, source)
                if existing_problem is None:
                    log.debug("%s: present and verified", final)
                    return final
                log.warning("%s: existing file does not verify (%s); downloading it again",
                            final, existing_problem)
            else:
                part.unlink(missing_ok=True)  # force: do not resume from an old partial
        try:
            return _first_of(urls, part, final, source, retries=max(0, int(retries)), backoff=backoff,
                             timeout=timeout, progress=progress)
        except DownloadError as e:
            if existing_problem is None:
                raise
            raise DownloadError(
                f"existing file is corrupt ({existing_problem}) and downloading it again failed: {e}",
                where=str(final),
                hint="the corrupt file was left in place; delete it or fix the source and rerun",
            ) from e


def fetch_all(sources: Iterable[Source], dest_dir: str | os.PathLike, **kw: Any) -> list[Path]:
    """``fetch`` each source into ``dest_dir`` in order; stops at the first failure."""
    sources = list(sources)
    seen: dict[str, str] = {}
    for s in sources:
        if s.name in seen:
            raise DownloadError(f"two sources share the file name {s.name!r} ({seen[s.name]} and {s.url})",
                                where=str(dest_dir), hint="set a distinct filename on one of them")
        seen[s.name] = s.url
    return [fetch(s, dest_dir, **kw) for s in sources]
