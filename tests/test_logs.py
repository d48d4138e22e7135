"""No bearer token reaches a log line: the redaction pattern over every kind of token the service hands
out, and the whole output of a real uvicorn (access and error logs, at its most talkative level) after a
client used each of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from jobs.lib.logs import redact
from jobs.services.clients import client_create
from jobs.storage.links import link_sign
from tests.factories import make_job
from tests.processes import asgi_server, child_env, flush_redis

LINK = ("/v1/links/.eJyrVspWslJKKs1LyUnVT87JTM0rKQbR8RX6WflJxfpZ-mWG-hV6VZkFSjpKyUClYDkgO1XJytDIWEcpDSgGka8FAMWI"
        "F8U:1xa3yj:IlczkLrK_4AQpq3t242vhnmEriLHg0dHpJiU_dlI-ro")
STREAM_TOKEN = "eyJjIjoiY2xpX3giLCJqIjoiam9iXzEifQ:1xa3yj:G-Zsybd9brECjxpYc3IjObQyMhdovh_gWen7-rGe8Rg"


def _parts(token: str) -> list[str]:
    """What must not survive of a token: each of its signed value's pieces (payload, time, signature)."""
    return [piece for piece in token.replace("/v1/links/", "").lstrip(".").split(":") if len(piece) >= 6]


@pytest.mark.parametrize("line", [
    f'127.0.0.1:5555 - "GET {LINK} HTTP/1.1" 200',
    f"Forbidden: {LINK}",
    f"'path': '{LINK}', 'raw_path': b'{LINK}'",
    f'"GET /v1/jobs/job_1/events?token={STREAM_TOKEN} HTTP/1.1" 200',
    f"'query_string': b'token={STREAM_TOKEN}&last_event_id='",
    f"GET /v1/jobs/job_1/events?grip_link={STREAM_TOKEN}",
    f"url=/v1/jobs/job_1/events?token={STREAM_TOKEN.replace(':', '%3A')}",
])
def test_signed_tokens_are_redacted_whole_colons_included(line: str) -> None:
    out = redact(line)
    token = STREAM_TOKEN if LINK not in line else LINK
    for piece in _parts(token) + _parts(token.replace(":", "%3A")):
        assert piece not in out, out
    assert "[redacted]" in out


@pytest.mark.parametrize(("line", "secret"), [
    ("Authorization: Bearer sr_AbCdEf12_s3cr3tPartOfTheKeyXyZ", "s3cr3tPartOfTheKeyXyZ"),
    ("(b'authorization', b'bearer sr_AbCdEf12_s3cr3tPartOfTheKeyXyZ')", "s3cr3tPartOfTheKeyXyZ"),
    ("key sr_AbCdEf12_s3cr3tPartOfTheKeyXyZ was revoked", "s3cr3tPartOfTheKeyXyZ"),
    ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw rotated", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("https://bucket.s3/x?X-Amz-Credential=AK&X-Amz-Signature=0a1b2c3d4e5f60718293", "0a1b2c3d4e5f60718293"),
    # A demo's deploy hook and a public share: their URL is the credential (uvicorn's access line, Django's 404).
    ('127.0.0.1:5 - "POST /v1/hooks/dh_0a1b2c3d4e5f_Q2x8-vR_k9TzA HTTP/1.1" 202', "0a1b2c3d4e5f_Q2x8-vR_k9TzA"),
    ("Not Found: /share/0a1b2c3d4e5f_Q2x8-vR_k9TzA/1/chunk-1-final.mp4", "0a1b2c3d4e5f_Q2x8-vR_k9TzA"),
])
def test_api_keys_webhook_secrets_and_storage_signatures_are_redacted(line: str, secret: str) -> None:
    assert secret not in redact(line)


@pytest.fixture
def served_log(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    flush_redis()
    log = tmp_path / "web.log"
    with asgi_server(child_env(SCREENREEL_SSE_HEARTBEAT_S="1"), log=log, log_level="trace") as base:
        yield base, log


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_uvicorns_whole_output_holds_no_token_after_a_download_a_stream_and_api_calls(
        served_log: tuple[str, Path]) -> None:
    base, log = served_log
    client, key = client_create(name="Acme")
    job = make_job(client=client, webhook_url="")
    stored = f"bundle/clients/{client.pk}/jobs/{job.id}/v1/{job.id}-v1.zip"
    default_storage.save(stored, ContentFile(b"zip bytes " * 1000))
    try:
        link = link_sign(client_id=client.pk, key=stored, filename=f"{job.id}-v1.zip", base_url=base)
        with httpx.Client(base_url=base, timeout=15) as http:
            assert http.get(urlsplit(link.url).path).status_code == 200
            assert http.get(urlsplit(link.url).path, headers={"Range": "bytes=100-199"}).status_code == 206
            # A Range that is no sane number, through the real server: 416, not a 500.
            assert http.get(urlsplit(link.url).path, headers={"Range": f"bytes={'9' * 5000}-"}).status_code == 416
            tampered = urlsplit(link.url).path[:-4] + "AAAA"
            assert http.get(tampered).status_code == 403  # logged by Django as "Forbidden: <path>"

            api = {"Authorization": f"Bearer {key.key}"}
            assert http.get("/v1/jobs", headers=api).status_code == 200
            issued = http.post(f"/v1/jobs/{job.id}/events/token", headers=api)
            assert issued.status_code == 201
            token = issued.json()["token"]
            with http.stream("GET", f"/v1/jobs/{job.id}/events?token={token}") as stream:
                assert stream.status_code == 200
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        break
            assert http.get(f"/v1/jobs/{job.id}/events?token={token}x").status_code == 401
    finally:
        default_storage.delete(stored)

    served = log.read_text(errors="replace")  # everything the server wrote, to standard output or error
    secrets = {"link": _parts(urlsplit(link.url).path), "stream token": _parts(token),
               # The secret is what follows sr_<prefix>_ (token_urlsafe: it may hold "_" itself).
               "api key": [key.key, key.key.split("_", 2)[2]]}
    for what, pieces in secrets.items():
        for piece in pieces:
            assert piece not in served, f"the {what} ({piece[:12]}…) is in the server's output"
    # Every line went through the project's formatter, uvicorn's own included (JSON lines)...
    lines = [json.loads(line) for line in served.splitlines() if line.strip()]
    assert {"uvicorn.access", "uvicorn.error", "uvicorn.asgi"} <= {line["logger"] for line in lines}
    # ...and the lines that would have held the tokens are there, redacted: the access log saw every request.
    access = [line["message"].split(" - ", 1)[1] for line in lines if line["logger"] == "uvicorn.access"]
    assert '"GET /v1/links/[redacted] HTTP/1.1" 200' in access
    assert '"GET /v1/links/[redacted] HTTP/1.1" 416' in access
    assert f'"GET /v1/jobs/{job.id}/events?token=[redacted] HTTP/1.1" 200' in access
    assert "'query_string': b'token=[redacted]'" in served  # the trace log's ASGI scopes
