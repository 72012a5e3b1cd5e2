"""A local web site (a button page) served over real HTTP from a thread: for the demo and tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUTTON_PAGE = b"""<!doctype html>
<html><head><title>Button page</title>
<style>
  body { margin: 0; font-family: sans-serif; background: #fff; }
  #go { position: absolute; left: 100px; top: 100px; width: 200px; height: 80px; }
  #status { position: absolute; left: 100px; top: 220px; }
  #name { position: absolute; left: 100px; top: 300px; width: 300px; }
</style></head>
<body>
  <button id="go" onclick="document.getElementById('status').textContent = 'clicked'">Go</button>
  <h1 id="status">waiting</h1>
  <input id="name" placeholder="your name">
</body></html>
"""
BUTTON_CENTER = (200, 140)


def _handler(
    pages: Mapping[str, str | bytes], fallback: bytes | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(self.path.split("?")[0], fallback)
            body = page if page is not None else "not found"
            data = body.encode() if isinstance(body, str) else body
            self.send_response(200 if page is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextmanager
def serve_pages(pages: Mapping[str, str | bytes] | None = None) -> Iterator[str]:
    """Serve `pages` (path -> HTML; by default the button page at every path); yields the base
    URL. A path not in `pages` is a 404."""
    handler = _handler(pages, None) if pages is not None else _handler({}, BUTTON_PAGE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
