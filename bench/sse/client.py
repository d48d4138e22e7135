"""Many SSE streams in one asyncio process: notes when each event id arrived on each stream.

    python -m bench.sse.client --urls FILE --out FILE [--ready FILE]

Raw sockets and a line parser rather than an HTTP library, so that the client's own cost stays far
below the server's. Writes ``ready`` once every stream has its first bytes; on SIGTERM writes, per
stream, the ids it received with their arrival times, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit


async def _stream(url: str, headers: dict[str, str], arrivals: list[tuple[str, float]], opened: asyncio.Event,
                  errors: list[str]) -> None:
    parts = urlsplit(url)
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80, limit=1 << 20)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n{extra}\r\n"
                     .encode())
        status = await reader.readline()
        if b" 200 " not in status:
            errors.append(status.decode(errors="replace").strip())
            opened.set()
            return
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # the response headers
        opened.set()
        while True:
            line = await reader.readline()
            if not line:
                errors.append("closed by the server")
                return
            if line.startswith(b"id: "):
                arrivals.append((line[4:].strip().decode(), time.time()))
            # Chunked transfer framing (hex sizes) and other SSE fields are simply not "id: " lines.
    except OSError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        opened.set()


async def main_async(urls: list[str], headers: dict[str, str], out: Path, ready: Path | None,
                     open_rate: float) -> None:
    arrivals: list[list[tuple[str, float]]] = [[] for _ in urls]
    errors: list[str] = []
    opened = [asyncio.Event() for _ in urls]
    tasks = []
    started = time.monotonic()
    for i, url in enumerate(urls):
        tasks.append(asyncio.create_task(_stream(url, headers, arrivals[i], opened[i], errors)))
        if i % 10 == 9:  # streams open at open_rate per second, as browsers arrive, not all at once
            await asyncio.sleep(max(0.0, started + (i + 1) / open_rate - time.monotonic()))
    for event in opened:
        await event.wait()
    if ready is not None:
        ready.write_text(json.dumps({"streams": len(urls), "errors": errors[:20], "error_count": len(errors)}))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    out.write_text(json.dumps({"arrivals": arrivals, "errors": errors[:20], "error_count": len(errors)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", type=Path, required=True, help="a JSON list of stream URLs")
    parser.add_argument("--header", action="append", default=[], help="Name: value, sent on every stream")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--open-rate", type=float, default=2500.0, help="streams opened per second")
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    asyncio.run(main_async(json.loads(args.urls.read_text()), headers, args.out, args.ready, args.open_rate))


if __name__ == "__main__":
    main()
