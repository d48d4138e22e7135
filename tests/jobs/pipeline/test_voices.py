"""The pipeline's glue to the media layer: logos through the guarded transport, voice stitching ids."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.media import voice
from jobs.media.errors import MediaError
from jobs.models import ChunkStatus
from jobs.pipeline.inputs import logo_fetch, previous_request_ids
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



def test_the_espeak_voices_offered_are_those_espeak_ng_lists_here() -> None:
    listed = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    languages = {line.split()[1] for line in listed.splitlines()[1:] if line.strip()}
    assert set(voice.ESPEAK_VOICES) == languages


def test_an_allowed_espeak_voice_still_synthesizes(tmp_path: Path) -> None:
    german = voice.synthesize("Guten Tag, das ist ein Test.", tmp_path / "de.mp3", provider="espeak-ng",
                              voice_id="de")
    american = voice.synthesize("Guten Tag, das ist ein Test.", tmp_path / "en.mp3", provider="espeak-ng",
                                voice_id="EN-US")  # case does not matter to espeak-ng, nor to the list
    assert (german.provider, german.voice, american.voice) == ("espeak-ng", "de", "en-us")
    assert german.duration_ms > 500 and german.path.stat().st_size > 1000
    assert german.path.read_bytes() != american.path.read_bytes()  # the voice reached espeak-ng


@pytest.mark.parametrize("voice_id", ["--help", "../../x", "en-us -w /tmp/x"])
def test_a_voice_not_on_the_list_never_reaches_espeak(tmp_path: Path, voice_id: str) -> None:
    with pytest.raises(MediaError, match="espeak-ng has no voice") as raised:
        voice.synthesize("Hello.", tmp_path / "x.mp3", provider="espeak-ng", voice_id=voice_id)
    assert raised.value.permanent is True
    assert list(tmp_path.iterdir()) == []


def test_auto_speaks_another_providers_voice_with_its_own_default(tmp_path: Path) -> None:
    # No ElevenLabs key here: "auto" picks a local voice, which cannot speak an ElevenLabs id.
    said = voice.synthesize("Hello there.", tmp_path / "x.mp3", provider="auto", voice_id="JBFqnCBsd6RMkjVDRZzb")
    assert said.provider in ("piper", "espeak-ng") and said.duration_ms > 300
