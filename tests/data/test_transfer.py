"""Every network read has a progress deadline; errors say what happened (not 'truncated' for a 500)."""
from __future__ import annotations

import pytest

from mmbench.data.download import Source, fetch
from mmbench.errors import DownloadError

from .local_server import serve

pytestmark = pytest.mark.network


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.mark.timeout(60)  # without the deadline this would take 200 x 0.2 s per attempt, or forever
@pytest.mark.parametrize("fault", ["trickle", "trickle_body"])
def test_a_trickling_server_is_given_up_on(tmp_path, fault):
    """One byte every 0.2 s never trips a per-read timeout of 1 s; the progress deadline does:
    fewer than 64 KiB in 1 s is a stall (headers and body alike), reported as one."""
    with serve({"/f.bin": b"x" * 200}) as srv:
        getattr(srv, fault)["/f.bin"] = 0.2
        with pytest.raises(DownloadError, match=r"/f\.bin: stalled: fewer than 65536 bytes in 1 s .*gave up after 2 "
                                                r"attempts") as e:
            fetch(Source(srv.base + "/f.bin"), tmp_path, retries=1, backoff=0, timeout=1.0, progress=False)
    assert "truncated" not in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "f.bin").exists()


def test_http_500_is_not_called_truncated(tmp_path):
    with serve({"/f.bin": b"x" * 10}) as srv:
        srv.status["/f.bin"] = 500
        with pytest.raises(DownloadError, match=r"/f\.bin: HTTP 500 Internal Server Error \(gave up after 2 attempts\)"
                           ) as e:
            fetch(Source(srv.base + "/f.bin", size=10), tmp_path, retries=1, backoff=0, timeout=5, progress=False)
    assert "truncated" not in str(e.value) and "rerun to resume" not in str(e.value)


def test_a_cut_connection_is_still_truncated(tmp_path):
    with serve({"/f.bin": b"x" * 100}) as srv:
        srv.short["/f.bin"] = 30
        with pytest.raises(DownloadError, match=r"truncated: got 30 of 100 bytes .*rerun to resume"):
            fetch(Source(srv.base + "/f.bin", size=100), tmp_path, retries=0, backoff=0, timeout=5, progress=False)
