"""The pipeline's glue to the media layer: logos through the guarded transport, voice stitching ids."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.media.errors import MediaError
from jobs.models import ChunkStatus
from jobs.services.voices import logo_fetch, previous_request_ids
from tests.factories import make_job


def _png(tmp_path: Path) -> bytes:
    out = tmp_path / "logo.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=64x32", "-frames:v", "1",
                    str(out)], check=True)
    return out.read_bytes()


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A local server answering GETs with a PNG (tests.receivers answers POSTs)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    png = _png(tmp_path)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = (200, png) if self.path == "/logo.png" else (404, b"missing")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", png
    server.shutdown()


def test_a_logo_is_fetched_through_the_guarded_transport(image_server: tuple[str, bytes], tmp_path: Path) -> None:
    base, png = image_server
    path = logo_fetch(url=f"{base}/logo.png", dest=tmp_path / "fetched")
    assert path.read_bytes() == png


def test_a_missing_logo_fails_permanently_naming_the_status(image_server: tuple[str, bytes], tmp_path: Path) -> None:
    base, _ = image_server
    with pytest.raises(MediaError, match="HTTP 404") as raised:
        logo_fetch(url=f"{base}/nope.png", dest=tmp_path / "fetched")
    assert raised.value.permanent is True


def test_a_logo_on_a_private_address_is_refused_without_a_connection(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="could not be fetched") as raised:
        logo_fetch(url="http://10.0.0.1/logo.png", dest=tmp_path / "x")
    assert raised.value.permanent is True
    assert not (tmp_path / "x").exists()


@pytest.mark.django_db
def test_stitching_names_the_earlier_spoken_chunks_oldest_first() -> None:
    job = make_job(features=3)
    first, second, third = job.chunks.order_by("index")
    first.status, first.speech = ChunkStatus.SUCCEEDED, {"request_id": "req-1"}
    first.save()
    second.status, second.speech = ChunkStatus.MUXING, {"request_id": "req-2"}
    second.save()
    assert previous_request_ids(third) == ["req-1", "req-2"]
    assert previous_request_ids(second) == ["req-1"]
    assert previous_request_ids(first) == []

