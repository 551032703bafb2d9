"""A tiny HTTP server on 127.0.0.1 serving in-memory files (for download/mirror tests), with faults:
``short`` (path -> bytes sent before the server closes), ``status`` (path -> an error status it
always answers), ``trickle`` (path -> seconds between the bytes it sends, headers included) and
``trickle_body`` (the same after headers sent at once)."""
from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
            body = srv.files.get(self.path)
            short = srv.short.get(self.path)
            status = srv.status.get(self.path)
            trickle = srv.trickle.get(self.path)
            trickle_body = srv.trickle_body.get(self.path)
        if status is not None:
            self.send_error(status)
            return
        if body is None:
            self.send_error(404)
            return
        if trickle is not None:
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            self._trickle(head + body, trickle, srv)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if trickle_body is not None:
            self.wfile.flush()
            self._trickle(body, trickle_body, srv)
            return
        self.wfile.write(body if short is None else body[:short])  # short: the server file is cut

    def _trickle(self, data: bytes, pause: float, srv) -> None:
        """One byte at a time, ``pause`` seconds apart, until the client goes or the server stops."""
        for b in data:
            if srv.stopping.wait(pause):
                return
            try:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
            except OSError:
                return
        self.close_connection = True


@contextmanager
def serve(files: dict[str, bytes] | None = None):
    """Yield a server with ``.base`` (http://127.0.0.1:PORT), ``.files`` (path -> bytes), ``.requests``
    and the faults ``.short``, ``.status``, ``.trickle``, ``.trickle_body`` (see the module doc)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.files = dict(files or {})
    httpd.short, httpd.status, httpd.trickle, httpd.trickle_body = {}, {}, {}, {}
    httpd.requests = []
    httpd.lock = threading.Lock()
    httpd.stopping = threading.Event()
    httpd.base = "http://127.0.0.1:%d" % httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield httpd
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)
