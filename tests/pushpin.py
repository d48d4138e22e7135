"""A real Pushpin (the Debian package) of a test's or a benchmark's own, in front of a local origin."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.processes import free_port, wait_for_port

KEY = "test-grip-key"  # the test Pushpin's sig_key, nothing else


@dataclass(frozen=True)
class Pushpin:
    url: str  # where clients connect
    publish_url: str  # where the service publishes


def _wait_until_proxying(url: str, timeout: float = 20) -> None:
    """Pushpin's port opens before its parts are connected to each other; until they are, requests get 502."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code != 502:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Pushpin did not proxy to the origin within {timeout} s")


@contextmanager
def pushpin(origin_port: int, workdir: Path, *, publish_port: int | None = None, key: str = KEY,
            log_level: int = 2) -> Iterator[Pushpin]:
    """Pushpin on free ports (its publish endpoint on ``publish_port`` if given), routing everything to
    127.0.0.1:``origin_port``, as docs/live-events.md sets it up."""
    run, logs = workdir / "run", workdir / "log"
    run.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    http, push_in, push_sub, command = (free_port() for _ in range(4))
    publish = publish_port or free_port()
    (workdir / "routes").write_text(f"* 127.0.0.1:{origin_port}\n")
    (workdir / "pushpin.conf").write_text(f"""[global]
include={{libdir}}/internal.conf
rundir={run}
ipc_prefix=pushpin-
port_offset=0

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port={http}
logdir={logs}
log_level={log_level}
client_maxconn=50000

[proxy]
routesfile=routes
sig_iss=pushpin
sig_key={key}
# zurl (Pushpin's HTTP client, for recovery requests) runs under the runner: its sockets are in rundir.
zurl_out_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in
zurl_out_stream_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in-stream
zurl_in_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-out

[handler]
push_in_spec=tcp://127.0.0.1:{push_in}
push_in_sub_specs=tcp://127.0.0.1:{push_sub}
push_in_http_addr=127.0.0.1
push_in_http_port={publish}
command_spec=tcp://127.0.0.1:{command}
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
# No limit on the messages per second Pushpin writes to clients, all streams together (its default of
# 2,500 would throttle 5,000 streams at one event per second, and any limit batches writes every 25 ms).
message_rate=0
message_hwm=200000
""")
    proc = subprocess.Popen(["pushpin", "--config", str(workdir / "pushpin.conf")], cwd=workdir,
                            stdout=(logs / "runner.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(http, proc)
        wait_for_port(publish, proc)
        _wait_until_proxying(f"http://127.0.0.1:{http}/")
        yield Pushpin(url=f"http://127.0.0.1:{http}", publish_url=f"http://127.0.0.1:{publish}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
