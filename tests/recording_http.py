"""A local HTTP server that records what browsers send it: as a site, and as a forward proxy.

As a site it records each request's path and headers. As a proxy (`proxy_auth` set) it answers
every request whose target is an absolute URL itself (a page naming the host it was asked for),
after checking `Proxy-Authorization` (407 with a Basic challenge otherwise, as real proxies do),
and counts those it served: a request it counts went through it, with the right credentials.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = "<!doctype html><html><head><title>{title}</title></head><body>{title}</body></html>"


@dataclass
class Recorder:
    url: str = ""
    """The base URL (ending in '/')."""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(path or absolute URL, headers with lower-case names) of each request served."""
    refused: int = 0
    """Proxy requests refused for want of the right credentials."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, path: str) -> list[dict[str, str]]:
        """The headers of each request served for `path` (a path, or an absolute URL)."""
        with self._lock:
            return [headers for got, headers in self.requests if got == path]


@contextmanager
def recording_server(proxy_auth: tuple[str, str] | None = None) -> Iterator[Recorder]:
    recorder = Recorder()
    wanted = None
    if proxy_auth is not None:
        wanted = "Basic " + base64.b64encode(":".join(proxy_auth).encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            if wanted is not None and headers.get("proxy-authorization") != wanted:
                with recorder._lock:
                    recorder.refused += 1
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with recorder._lock:
                recorder.requests.append((self.path, headers))
            data = PAGE.format(title=headers.get("host", "")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
