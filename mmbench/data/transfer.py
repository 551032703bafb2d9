"""HTTP(S) reads with a progress deadline: a server that stalls or trickles is given up on.

A socket timeout bounds each read, so a server that sends one byte every few seconds would
never time out. Here every read of a connection -- the status line, the headers and the body
-- goes through one :class:`ProgressDeadline`: within every ``seconds`` the server must send at
least ``min_bytes`` (or finish), else the read raises :class:`Stalled`. Redirects are
followed, but only to http(s).
"""
from __future__ import annotations

import http.client
import io
import socket
import time
import urllib.parse
import urllib.request

from ..errors import DownloadError

MIN_BYTES = 64 * 1024  # progress a transfer must make in each window of ``seconds``


class Stalled(OSError):
    """The server sent too little within the deadline (raised from a read)."""


class ProgressDeadline:
    """At least ``min_bytes`` in every window of ``seconds``: a window closes once it has them."""

    def __init__(self, seconds: float, min_bytes: int = MIN_BYTES):
        self.seconds, self.min_bytes = float(seconds), int(min_bytes)
        self.start, self.got, self.total = time.monotonic(), 0, 0

    def remaining(self) -> float:
        """Seconds left in this window; :class:`Stalled` once it is over."""
        left = self.start + self.seconds - time.monotonic()
        if left <= 0:
            raise Stalled(f"stalled: fewer than {self.min_bytes} bytes in {self.seconds:g} s "
                          f"({self.total} bytes received on this connection)")
        return left

    def advance(self, n: int) -> None:
        self.got += n
        self.total += n
        if self.got >= self.min_bytes:
            self.start, self.got = time.monotonic(), 0


class _Reader(io.RawIOBase):
    """A socket's bytes, each read bounded by what is left of the deadline's window."""

    def __init__(self, sock: socket.socket, deadline: ProgressDeadline):
        self._sock, self._raw, self._deadline = sock, sock.makefile("rb", buffering=0), deadline

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        self._sock.settimeout(self._deadline.remaining())
        try:
            n = self._raw.readinto(b) or 0
        except socket.timeout:
            self._deadline.remaining()  # raises Stalled: the window is over
            raise
        self._deadline.advance(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What ``HTTPResponse`` is given instead of the socket: ``makefile`` reads under the deadline."""

    def __init__(self, sock: socket.socket, deadline: ProgressDeadline):
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str = "rb", *args, **kwargs):
        return io.BufferedReader(_Reader(self._sock, self._deadline))


def _connection(base: type, seconds: float, min_bytes: int):
    """A connection class of ``base`` whose responses read under a fresh :class:`ProgressDeadline`."""

    class Connection(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            deadline = ProgressDeadline(seconds, min_bytes)
            self.response_class = lambda sock, **kw: http.client.HTTPResponse(_DeadlineSocket(sock, deadline), **kw)

    return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, seconds: float, min_bytes: int):
        super().__init__()
        self._conn = _connection(http.client.HTTPConnection, seconds, min_bytes)

    def http_open(self, req):
        return self.do_open(self._conn, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, seconds: float, min_bytes: int):
        super().__init__()
        self._conn = _connection(http.client.HTTPSConnection, seconds, min_bytes)

    def https_open(self, req):
        return self.do_open(self._conn, req, context=self._context)


class _NoCrossSchemeRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects (CDNs need them) but never to anything but http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        scheme = urllib.parse.urlparse(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise DownloadError(f"refusing redirect to {newurl!r}", where=req.full_url,
                                hint="only http(s) redirects are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener(seconds: float, min_bytes: int = MIN_BYTES) -> urllib.request.OpenerDirector:
    """An opener whose every read has a progress deadline (``min_bytes`` per ``seconds``)."""
    return urllib.request.build_opener(_HTTPHandler(seconds, min_bytes), _HTTPSHandler(seconds, min_bytes),
                                       _NoCrossSchemeRedirect())
