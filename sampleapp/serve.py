"""Serve the sample app: ``serve()`` for tests, ``python -m sampleapp.serve --port N`` by hand."""

from __future__ import annotations

import argparse
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # Request lines would drown test output and worker logs.
        pass

    def end_headers(self) -> None:
        # Recordings must show the current files, never a cached copy.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def serve(port: int = 0, host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, int]:
    """Start serving the sample app in a daemon thread; return the server and its bound port."""
    handler = functools.partial(_QuietHandler, directory=str(ROOT))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="sampleapp", daemon=True)
    thread.start()
    return server, int(server.server_address[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Screenreel sample app.")
    parser.add_argument("--port", type=int, default=8008)
    parser.add_argument("--host", default="127.0.0.1")
    ns = parser.parse_args(argv)
    server, port = serve(ns.port, ns.host)
    print(f"Sample app on http://{ns.host}:{port}/", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
