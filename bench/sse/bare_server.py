"""The baseline: a bare asyncio SSE server with no database, no Redis and no framework.

    python -m bench.sse.bare_server --port P

``GET /stream/<channel>`` opens a stream; ``POST /publish/<channel>`` with a body writes that body,
as one SSE event whose id is the ``X-Id`` header, to every stream of the channel. This is the least
any SSE service can cost on this machine: the same fan-out with nothing else in the way.
"""

from __future__ import annotations

import argparse
import asyncio


async def main_async(port: int) -> None:
    channels: dict[str, set[asyncio.StreamWriter]] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readline()).decode().split()
        if len(request) < 2:
            writer.close()  # a connection that closed before sending a request
            return
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        method, path = request[0], request[1]
        if method == "GET" and path.startswith("/stream/"):
            channel = path.removeprefix("/stream/")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
                         b"retry: 2000\n\n")
            channels.setdefault(channel, set()).add(writer)
            try:
                await reader.read()  # until the client goes
            finally:
                channels[channel].discard(writer)
            return
        while method == "POST" and path.startswith("/publish/"):
            # One keep-alive connection from the producer carries every publish.
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            message = f"id: {headers['x-id']}\nevent: bench\ndata: ".encode() + body + b"\n\n"
            for stream in channels.get(path.removeprefix("/publish/"), ()):
                stream.write(message)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
            request = (await reader.readline()).decode().split()
            if not request:
                return
            method, path, headers = request[0], request[1], {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main_async(parser.parse_args().port))


if __name__ == "__main__":
    main()
