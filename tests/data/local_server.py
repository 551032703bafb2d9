"""A tiny HTTP server on 127.0.0.1 serving in-memory files (for download/mirror tests)."""
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
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if short is None else body[:short])  # short: the server file is cut


@contextmanager
def serve(files: dict[str, bytes] | None = None):
    """Yield a server with ``.base`` (http://127.0.0.1:PORT), ``.files`` (path -> bytes), ``.requests``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.files = dict(files or {})
    httpd.short = {}
    httpd.requests = []
    httpd.lock = threading.Lock()
    httpd.base = "http://127.0.0.1:%d" % httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)
