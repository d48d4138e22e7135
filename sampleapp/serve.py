"""Serve the sample app: ``serve()`` for tests, ``python -m sampleapp.serve --port N`` by hand.

As a static app by default; with a ``SignIn`` (``--signin`` on the command line) every page needs a session got
through the app's own two-step sign-in (sampleapp/signin.py).
"""

from __future__ import annotations

import argparse
import functools
import os
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sampleapp.signin import Gate, SignIn, SignInHandler

ROOT = Path(__file__).resolve().parent

# The account for --signin. From the environment, never from argv: any user of the machine reads argv in ps.
SIGNIN_ENV = ("SAMPLEAPP_SIGNIN_EMAIL", "SAMPLEAPP_SIGNIN_PASSWORD", "SAMPLEAPP_SIGNIN_TOTP")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # Request lines would drown test output and worker logs.
        pass

    def end_headers(self) -> None:
        # Recordings must show the current files, never a cached copy.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class _QuietSignInHandler(SignInHandler, _QuietHandler):
    """The same quiet, uncached files, behind the sign-in."""


class SampleAppServer(ThreadingHTTPServer):
    """The server, and its sign-in's ``gate`` when it has one (tests read the sessions it issued there)."""

    gate: Gate | None = None


def serve(port: int = 0, host: str = "127.0.0.1", signin: SignIn | None = None,
          root: Path = ROOT) -> tuple[SampleAppServer, int]:
    """Start serving the sample app in a daemon thread; return the server and its bound port. ``root``: the
    app's files (a test serves an edited copy, as a new release of the app)."""
    handler: Callable[..., _QuietHandler]
    gate = Gate(signin) if signin is not None else None
    if gate is None:
        handler = functools.partial(_QuietHandler, directory=str(root))
    else:
        handler = functools.partial(_QuietSignInHandler, directory=str(root), gate=gate)
    server = SampleAppServer((host, port), handler)
    server.gate = gate
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="sampleapp", daemon=True)
    thread.start()
    return server, int(server.server_address[1])


def _signin_from_env(parser: argparse.ArgumentParser) -> SignIn:
    missing = [name for name in SIGNIN_ENV if not os.environ.get(name)]
    if missing:
        parser.error(f"--signin reads the account from the environment; set {', '.join(missing)}")
    email, password, seed = (os.environ[name] for name in SIGNIN_ENV)
    try:
        return SignIn(email=email, password=password, totp_seed=seed)
    except ValueError as exc:
        parser.error(f"--signin: {exc}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Screenreel sample app.")
    parser.add_argument("--port", type=int, default=8008)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--signin", action="store_true",
                        help=f"every page needs a signed-in session; the account comes from {', '.join(SIGNIN_ENV)}")
    ns = parser.parse_args(argv)
    signin = _signin_from_env(parser) if ns.signin else None
    server, port = serve(ns.port, ns.host, signin)
    print(f"Sample app on http://{ns.host}:{port}/" + (f" (sign in as {signin.email})" if signin else ""), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
