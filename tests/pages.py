"""Small HTML pages served on loopback for tests that point a real browser at a page of their own."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Served:
    base: str  # http://127.0.0.1:<port>
    port: int
    hits: list[str] = field(default_factory=list)  # the paths asked for, in order
    headers: list[dict[str, str]] = field(default_factory=list)  # each request's headers (names in lower case)
    redirects: dict[str, str] = field(default_factory=dict)  # path -> where a 302 sends it (may be set later)


@contextmanager
def pages_served(pages: Mapping[str, str], *, default: str = "", host: str = "127.0.0.1",
                 redirects: Mapping[str, str] | None = None) -> Iterator[Served]:
    """Serve ``pages`` (path -> HTML) on a free port of ``host`` (a loopback address), ``default`` for any other
    path, and a 302 for each path of ``redirects``; every request's path is kept in ``hits`` and its headers in
    ``headers``."""
    hits: list[str] = []
    headers: list[dict[str, str]] = []
    moves: dict[str, str] = dict(redirects or {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            headers.append({k.lower(): v for k, v in self.headers.items()})
            if self.path in moves:
                self.send_response(302)
                self.send_header("Location", moves[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = pages.get(self.path, default).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        yield Served(base=f"http://{host}:{port}", port=port, hits=hits, headers=headers, redirects=moves)
    finally:
        server.shutdown()
        server.server_close()
