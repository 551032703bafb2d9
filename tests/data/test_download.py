"""Downloads and archive extraction, against a local HTTP server on 127.0.0.1 (no internet)."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import random
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mmbench.data.archive import extract
from mmbench.data.download import Source, fetch, fetch_all, mirror_list, resolve_url
from mmbench.errors import DataError, DownloadError

PAYLOAD = bytes((i * 7 + i // 251) % 256 for i in range(200_000))  # deterministic, 200 kB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"backoff": 0, "timeout": 5.0, "progress": False}


# ----------------------------------------------------------------------------- local server

@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    cut_after: dict[str, int] = field(default_factory=dict)  # drop the connection after N body bytes, once
    fail_once: dict[str, int] = field(default_factory=dict)  # answer this status once
    ignore_range: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, path: str | None = None) -> int:
        return sum(1 for p, _ in self.requests if path is None or p == path)


class Handler(http.server.BaseHTTPRequestHandler):
    state: ServerState  # set per server

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        st = self.server.state  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        with st.lock:
            st.requests.append((self.path, rng))
            status = st.fail_once.pop(self.path, None)
            cut = st.cut_after.pop(self.path, None)
            body = st.files.get(self.path)
        if status is not None:
            return self.send_error(status)
        if body is None:
            return self.send_error(404)
        start = 0
        if rng and not st.ignore_range:
            assert rng.startswith("bytes=") and rng.endswith("-"), rng
            start = int(rng[len("bytes="):-1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if cut is not None:  # simulate a dropped connection mid-transfer
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    httpd.base = f"http://{host}:{port}"  # type: ignore[attr-defined]
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("MMBENCH_MIRROR", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _source(server, path="/files/data.bin", **kw) -> Source:
    kw.setdefault("sha256", PAYLOAD_SHA)
    kw.setdefault("size", len(PAYLOAD))
    return Source(url=server.base + path, **kw)


# ----------------------------------------------------------------------------- 1. plain download

def test_plain_download_verifies_and_leaves_no_part(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD
    out = fetch(_source(server), tmp_path / "dl", **FAST)
    assert out == tmp_path / "dl" / "data.bin"
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "dl" / "data.bin.part").exists()
    assert not (tmp_path / "dl" / "data.bin.corrupt").exists()
    assert server.state.requests == [("/files/data.bin", None)]


def test_source_name_and_validation():
    assert Source("https://h/a/b/x%20y.zip?download=1").name == "x y.zip"
    assert Source("https://h/a/b.zip", filename="c.zip").name == "c.zip"
    assert Source("https://h/a.zip", sha256="SHA256:" + "AB" * 32).sha256 == "ab" * 32
    assert Source("https://h/a.zip", sha256="").sha256 is None
    from mmbench.errors import ConfigError
    with pytest.raises(ConfigError):
        Source("https://h/a.zip", sha256="abc")
    with pytest.raises(ConfigError):
        Source("https://h/")  # no file name
    with pytest.raises(ConfigError):
        Source("https://h/a.zip", filename="../a.zip")


# ----------------------------------------------------------------------------- 2. wrong checksum

def test_wrong_checksum_moves_download_aside(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD
    wrong = "0" * 64
    with pytest.raises(DownloadError) as ei:
        fetch(_source(server, sha256=wrong), tmp_path, **FAST)
    msg = str(ei.value)
    assert wrong in msg and PAYLOAD_SHA in msg and "mirror" in msg and "data.bin" in msg
    assert not (tmp_path / "data.bin").exists()
    assert not (tmp_path / "data.bin.part").exists()
    assert (tmp_path / "data.bin.corrupt").read_bytes() == PAYLOAD


def test_oversized_download_is_rejected(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD + b"extra"
    with pytest.raises(DownloadError, match="size mismatch"):
        fetch(_source(server, sha256=None), tmp_path, **FAST)
    assert not (tmp_path / "data.bin").exists()
    assert (tmp_path / "data.bin.corrupt").exists()


# ----------------------------------------------------------------------------- 3. truncated, then resumed

def test_truncated_keeps_part_and_rerun_resumes_with_range(server, tmp_path):
    cut = 123_456
    server.state.files["/files/data.bin"] = PAYLOAD[:cut]  # a broken server file
    with pytest.raises(DownloadError, match=f"truncated: got {cut} of {len(PAYLOAD)} bytes"):
        fetch(_source(server), tmp_path, **FAST)
    part = tmp_path / "data.bin.part"
    assert part.read_bytes() == PAYLOAD[:cut]
    assert not (tmp_path / "data.bin").exists()

    server.state.files["/files/data.bin"] = PAYLOAD  # fixed
    out = fetch(_source(server), tmp_path, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert server.state.requests[-1] == ("/files/data.bin", f"bytes={cut}-")
    assert not part.exists()


# ----------------------------------------------------------------------------- 4. interrupted, retried

def test_dropped_connection_resumes_within_retries(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD
    server.state.cut_after["/files/data.bin"] = 50_000
    out = fetch(_source(server), tmp_path, retries=2, **FAST)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == PAYLOAD_SHA
    ranges = [r for _, r in server.state.requests]
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) > 0
    assert not (tmp_path / "data.bin.part").exists()


def test_dropped_connection_without_retries_keeps_part(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD
    server.state.cut_after["/files/data.bin"] = 50_000
    with pytest.raises(DownloadError, match="truncated") as ei:
        fetch(_source(server, sha256=None, size=None), tmp_path, retries=0, **FAST)
    assert f"of {len(PAYLOAD)} bytes" in str(ei.value)  # total from Content-Length
    kept = (tmp_path / "data.bin.part").read_bytes()
    assert 0 < len(kept) < len(PAYLOAD) and PAYLOAD.startswith(kept)
    assert not (tmp_path / "data.bin").exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD
    server.state.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(b"garbage that is not a prefix")
    out = fetch(_source(server), tmp_path, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert server.state.requests[0][1] == "bytes=28-"


def test_416_means_part_is_complete(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    out = fetch(_source(server, size=None), tmp_path, **FAST)  # size unknown: must ask the server
    assert out.read_bytes() == PAYLOAD
    assert server.state.requests == [("/files/data.bin", f"bytes={len(PAYLOAD)}-")]


# ----------------------------------------------------------------------------- 5. 500 retried, 404 not

def test_500_once_is_retried(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD
    server.state.fail_once["/files/data.bin"] = 500
    out = fetch(_source(server), tmp_path, retries=1, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert server.state.hits() == 2


def test_500_beyond_retries_fails(server, tmp_path):
    server.state.files["/files/data.bin"] = PAYLOAD
    server.state.fail_once["/files/data.bin"] = 503
    with pytest.raises(DownloadError, match="503"):
        fetch(_source(server), tmp_path, retries=0, **FAST)
    assert server.state.hits() == 1


def test_404_is_not_retried(server, tmp_path):
    src = _source(server, path="/files/missing.bin")
    with pytest.raises(DownloadError) as ei:
        fetch(src, tmp_path, retries=3, **FAST)
    assert src.url in str(ei.value) and "404" in str(ei.value)
    assert server.state.hits() == 1
    assert not (tmp_path / "missing.bin").exists()


def test_connection_refused_is_retried_then_fails(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        fetch(Source(f"http://127.0.0.1:{port}/x.bin"), tmp_path, retries=2, **FAST)


# ----------------------------------------------------------------------------- 6. mirrors

def _mirror_dir(tmp_path) -> Path:
    d = tmp_path / "mirror dir"
    d.mkdir()
    (d / "data.bin").write_bytes(PAYLOAD)
    return d


def test_mirror_directory(server, tmp_path):
    d = _mirror_dir(tmp_path)
    out = fetch(_source(server), tmp_path / "dl", mirror=str(d), **FAST)
    assert out.read_bytes() == PAYLOAD
    assert server.state.hits() == 0  # origin never contacted


def test_mirror_file_url(server, tmp_path):
    d = _mirror_dir(tmp_path)
    assert resolve_url(_source(server), d.as_uri()) == d.as_uri() + "/data.bin"
    out = fetch(_source(server), tmp_path / "dl", mirror=d.as_uri(), **FAST)
    assert out.read_bytes() == PAYLOAD
    assert server.state.hits() == 0


def test_mirror_http_base(server, tmp_path):
    server.state.files["/mirror/data.bin"] = PAYLOAD
    src = Source("https://origin.invalid/some/path/data.bin", sha256=PAYLOAD_SHA, size=len(PAYLOAD))
    out = fetch(src, tmp_path, mirror=server.base + "/mirror/", **FAST)
    assert out.read_bytes() == PAYLOAD
    assert server.state.requests == [("/mirror/data.bin", None)]


def test_mirror_from_env(server, tmp_path, monkeypatch):
    d = _mirror_dir(tmp_path)
    monkeypatch.setenv("MMBENCH_MIRROR", str(d))
    assert resolve_url(_source(server), None) == (d.resolve() / "data.bin").as_uri()
    out = fetch(_source(server), tmp_path / "dl", **FAST)
    assert out.read_bytes() == PAYLOAD
    assert server.state.hits() == 0


def test_mirror_copy_is_verified(server, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "data.bin").write_bytes(PAYLOAD[:-1] + b"\x00")
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(_source(server), tmp_path / "dl", mirror=d, **FAST)
    assert not (tmp_path / "dl" / "data.bin").exists()
    with pytest.raises(DownloadError, match="not found"):
        fetch(_source(server, path="/files/other.bin"), tmp_path / "dl", mirror=d, **FAST)


def test_unsupported_scheme(tmp_path):
    with pytest.raises(DownloadError, match="unsupported URL scheme 'ftp'"):
        fetch(Source("ftp://example.org/a.zip"), tmp_path, **FAST)
    with pytest.raises(DownloadError, match="unsupported URL scheme"):
        resolve_url(Source("https://example.org/a.zip"), "s3://bucket/prefix")


# ----------------------------------------------------------------------------- 7. existing files

def test_existing_verified_file_makes_no_request(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(PAYLOAD)
    out = fetch(_source(server), tmp_path, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert server.state.hits() == 0


def test_existing_corrupt_file_is_replaced_only_when_new_verifies(server, tmp_path):
    final = tmp_path / "data.bin"
    final.write_bytes(b"corrupt")
    # redownload fails: the corrupt file stays, the error names it
    with pytest.raises(DownloadError, match="existing file is corrupt") as ei:
        fetch(_source(server), tmp_path, **FAST)
    assert str(final) in str(ei.value)
    assert final.read_bytes() == b"corrupt"
    # server has the file: replaced by the verified download
    server.state.files["/files/data.bin"] = PAYLOAD
    assert fetch(_source(server), tmp_path, **FAST).read_bytes() == PAYLOAD


def test_fetch_all_and_duplicate_names(server, tmp_path):
    server.state.files["/a/one.bin"] = b"1" * 10
    server.state.files["/a/two.bin"] = b"2" * 20
    paths = fetch_all([Source(server.base + "/a/one.bin", size=10), Source(server.base + "/a/two.bin")],
                      tmp_path, **FAST)
    assert [p.read_bytes() for p in paths] == [b"1" * 10, b"2" * 20]
    with pytest.raises(DownloadError, match="share the file name"):
        fetch_all([Source(server.base + "/a/one.bin"), Source(server.base + "/b/one.bin")], tmp_path, **FAST)


# ----------------------------------------------------------------------------- 8. archives

def _listing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def _make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode="w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


@pytest.fixture
def arena(tmp_path):
    """Archives in ``arc/``; extraction into ``out/ds`` so an escape would land in ``out/``."""
    (tmp_path / "arc").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


def _assert_nothing_left(arena: Path) -> None:
    assert os.listdir(arena / "out") == []  # no target, no .incomplete, nothing escaped
    assert sorted(os.listdir(arena)) == ["arc", "out"]


def test_extract_zip(arena):
    arc = _make_zip(arena / "arc" / "d.zip", {"d/a.txt": b"a", "d/sub/b.txt": b"bb", "d/empty/": b""})
    files = extract(arc, arena / "out" / "ds")
    target = arena / "out" / "ds"
    assert files == [target / "d" / "a.txt", target / "d" / "sub" / "b.txt"]
    assert (target / "d" / "sub" / "b.txt").read_bytes() == b"bb"
    assert (target / "d" / "empty").is_dir()
    assert os.listdir(arena / "out") == ["ds"]


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar", "w"),
                                         (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz")])
def test_extract_tar(arena, suffix, mode):
    arc = _make_tar(arena / "arc" / f"d{suffix}", [("./x/a.csv", b"1,2\n"), ("x/y/b.csv", b"3\n")], mode)
    files = extract(arc, arena / "out" / "ds")
    assert [f.relative_to(arena / "out" / "ds").as_posix() for f in files] == ["x/a.csv", "x/y/b.csv"]
    assert files[0].read_bytes() == b"1,2\n"
    assert os.listdir(arena / "out") == ["ds"]


def test_extract_single_gz(arena):
    arc = arena / "arc" / "ratings.csv.gz"
    arc.write_bytes(gzip.compress(b"u,i\n" * 1000))
    files = extract(arc, arena / "out" / "ds")
    assert files == [arena / "out" / "ds" / "ratings.csv"]
    assert files[0].read_bytes() == b"u,i\n" * 1000


def test_reextract_replaces_old_tree_and_failure_keeps_it(arena):
    target = arena / "out" / "ds"
    extract(_make_zip(arena / "arc" / "v1.zip", {"old.txt": b"old"}), target)
    extract(_make_zip(arena / "arc" / "v2.zip", {"new.txt": b"new"}), target)
    assert _listing(target) == {"new.txt"}
    with pytest.raises(DataError):
        extract(_make_zip(arena / "arc" / "bad.zip", {"ok.txt": b"x", "../evil.txt": b"x"}), target)
    assert _listing(target) == {"new.txt"}  # previous complete tree untouched
    assert os.listdir(arena / "out") == ["ds"]


def test_zip_slip_refused(arena):
    arc = _make_zip(arena / "arc" / "slip.zip", {"good.txt": b"ok", "../evil.txt": b"pwned"})
    with pytest.raises(DataError) as ei:
        extract(arc, arena / "out" / "ds")
    assert "slip.zip" in str(ei.value) and "../evil.txt" in str(ei.value)
    _assert_nothing_left(arena)


def test_absolute_member_refused(arena):
    outside = arena / "abs_evil.txt"
    arc = _make_zip(arena / "arc" / "abs.zip", {str(outside): b"pwned"})
    with pytest.raises(DataError, match="absolute"):
        extract(arc, arena / "out" / "ds")
    assert not outside.exists()
    _assert_nothing_left(arena)

    tar = _make_tar(arena / "arc" / "abs.tar.gz", [("a.txt", b"ok"), (str(outside), b"pwned")])
    with pytest.raises(DataError, match="absolute"):
        extract(tar, arena / "out" / "ds")
    assert not outside.exists()
    _assert_nothing_left(arena)


def test_tar_traversal_refused(arena):
    tar = _make_tar(arena / "arc" / "t.tar.gz", [("d/../../evil.txt", b"pwned")])
    with pytest.raises(DataError, match=r"\.\."):
        extract(tar, arena / "out" / "ds")
    _assert_nothing_left(arena)


@pytest.mark.parametrize("linktype", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_link_escaping_target_refused(arena, linktype):
    link = tarfile.TarInfo("data/link")
    link.type = linktype
    link.linkname = "../../.." if linktype == tarfile.SYMTYPE else "../../outside.txt"
    through = ("data/link/evil.txt", b"pwned")  # would write through the link if followed
    tar = _make_tar(arena / "arc" / "link.tar.gz", [("data/ok.txt", b"ok"), link, through])
    with pytest.raises(DataError) as ei:
        extract(tar, arena / "out" / "ds")
    assert "is a link" in str(ei.value) and "data/link" in str(ei.value)
    _assert_nothing_left(arena)


def test_tar_device_refused(arena):
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    tar = _make_tar(arena / "arc" / "dev.tar", [dev], mode="w")
    with pytest.raises(DataError, match="device"):
        extract(tar, arena / "out" / "ds")
    _assert_nothing_left(arena)


def test_zip_bomb_declared_size_refused(arena):
    arc = _make_zip(arena / "arc" / "bomb.zip", {"small.txt": b"x" * 10, "big.bin": b"\0" * 5000})
    with pytest.raises(DataError) as ei:
        extract(arc, arena / "out" / "ds", max_total_bytes=1000)
    assert "bomb.zip" in str(ei.value) and "big.bin" in str(ei.value)
    _assert_nothing_left(arena)


def test_actual_bytes_are_counted_too(arena):
    arc = arena / "arc" / "bomb.bin.gz"  # a gzip declares no trustworthy size: counted while writing
    arc.write_bytes(gzip.compress(b"\0" * 50_000))
    with pytest.raises(DataError, match="past 1000 bytes"):
        extract(arc, arena / "out" / "ds", max_total_bytes=1000)
    _assert_nothing_left(arena)


def test_member_count_limit(arena):
    arc = _make_zip(arena / "arc" / "many.zip", {f"f{i}.txt": b"" for i in range(5)})
    with pytest.raises(DataError, match="more than 3 members"):
        extract(arc, arena / "out" / "ds", max_members=3)
    _assert_nothing_left(arena)


def test_corrupt_archive_is_data_error(arena):
    arc = arena / "arc" / "broken.tar.gz"
    noise = random.Random(0).randbytes(100_000)  # incompressible, so the cut lands mid-member
    data = _make_tar(arena / "arc" / "good.tar.gz", [("a.txt", noise)]).read_bytes()
    arc.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="broken.tar.gz"):
        extract(arc, arena / "out" / "ds")
    _assert_nothing_left(arena)


def test_a_mirror_list_is_tried_in_order(server, tmp_path):
    empty, d = tmp_path / "empty", _mirror_dir(tmp_path)
    empty.mkdir()
    both = f"{empty}{os.pathsep}{d}"
    assert mirror_list(both) == [str(empty), str(d)]
    assert mirror_list(f"{empty}{os.pathsep}{server.base}/mirror/") == [str(empty), server.base + "/mirror/"]
    out = fetch(_source(server), tmp_path / "dl", mirror=both, **FAST)
    assert out.read_bytes() == PAYLOAD and server.state.hits() == 0
    with pytest.raises(DownloadError, match="no mirror of the list has it: .*empty/data.bin.* \\| "):
        fetch(_source(server), tmp_path / "dl2", mirror=f"{empty}{os.pathsep}{tmp_path / 'none'}", **FAST)
