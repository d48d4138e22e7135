"""A local HTTP server that answers as ElevenLabs' text-to-speech API is documented to.

``POST /v1/text-to-speech/{voice_id}[/with-timestamps]?output_format=...`` with ``xi-api-key``: 401 with
``{"detail": {"status": "invalid_api_key", ...}}`` for a wrong key, 422 with a pydantic-style
``{"detail": [{"loc": [...], "msg": ...}]}`` for a bad body, else ``audio/mpeg`` bytes (or, with
timestamps, JSON with ``audio_base64`` and an ``alignment`` spreading the characters evenly over the
audio's ``seconds``) with ``request-id`` and ``character-cost`` headers. Tests can queue canned answers
(429, 500, ...) that are served before the normal behaviour; every request is recorded.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

OUTPUT_FORMATS = {"mp3_44100_128", "mp3_44100_64", "mp3_22050_32"}


@dataclass
class Received:
    voice_id: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: dict[str, Any] | None


@dataclass
class Canned:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Emulator:
    api_key: str
    mp3: bytes
    seconds: float = 2.0  # how long ``mp3`` plays: the alignment spreads the characters over it
    server: http.server.ThreadingHTTPServer | None = None
    received: list[Received] = field(default_factory=list)
    queued: deque[Canned] = field(default_factory=deque)
    issued_ids: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def queue(self, status: int, body: dict[str, Any], **headers: str) -> None:
        self.queued.append(Canned(status, body, {k.replace("_", "-"): v for k, v in headers.items()}))

    def start(self) -> Emulator:
        emulator = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(body).encode(), "application/json", headers or {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                parts = urlsplit(self.path)
                prefix = "/v1/text-to-speech/"
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = None
                voice = unquote(parts.path[len(prefix):]) if parts.path.startswith(prefix) else ""
                timestamps = voice.endswith("/with-timestamps")
                voice = voice.removesuffix("/with-timestamps")
                emulator.received.append(Received(voice, parse_qs(parts.query),
                                                  {k.lower(): v for k, v in self.headers.items()}, data))
                if not parts.path.startswith(prefix) or not voice or "/" in voice:
                    self._json(404, {"detail": {"status": "not_found", "message": "Not found"}})
                    return
                if self.headers.get("xi-api-key") != emulator.api_key:
                    self._json(401, {"detail": {"status": "invalid_api_key",
                                                "message": "Invalid API key"}})
                    return
                if emulator.queued:
                    canned = emulator.queued.popleft()
                    self._json(canned.status, canned.body, canned.headers)
                    return
                fmt = parse_qs(parts.query).get("output_format", ["mp3_44100_128"])[0]
                errors = []
                if fmt not in OUTPUT_FORMATS:
                    errors.append({"type": "enum", "loc": ["query", "output_format"],
                                   "msg": f"Input should be one of {sorted(OUTPUT_FORMATS)}"})
                if not isinstance(data, dict):
                    errors.append({"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"})
                elif not isinstance(data.get("text"), str) or not data["text"].strip():
                    errors.append({"type": "missing", "loc": ["body", "text"], "msg": "Field required"})
                elif not isinstance(data.get("previous_request_ids", []), list) or len(
                        data.get("previous_request_ids", [])) > 3:
                    errors.append({"type": "too_long", "loc": ["body", "previous_request_ids"],
                                   "msg": "List should have at most 3 items"})
                if errors:
                    self._json(422, {"detail": errors})
                    return
                assert isinstance(data, dict)
                request_id = uuid.uuid4().hex[:20]
                emulator.issued_ids.append(request_id)
                headers = {"request-id": request_id, "character-cost": str(len(data["text"]))}
                if not timestamps:
                    self._send(200, emulator.mp3, "audio/mpeg", headers)
                    return
                chars = list(data["text"])
                step = emulator.seconds / max(len(chars), 1)
                self._json(200, {"audio_base64": base64.b64encode(emulator.mp3).decode(),
                                 "alignment": {"characters": chars,
                                               "character_start_times_seconds": [i * step for i in range(len(chars))],
                                               "character_end_times_seconds": [(i + 1) * step
                                                                               for i in range(len(chars))]}},
                           headers)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="elevenlabs-emulator", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
