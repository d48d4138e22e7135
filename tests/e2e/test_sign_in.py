"""Recording behind a real sign-in (issue 18), end to end with real workers: the sample app's server-side
sign-in (a session cookie, a CSRF token, a password, then a TOTP code on a second page), a credential made
through the API, a job with an off-camera ``sign_in`` and three features.

What a client must be able to rely on: every feature starts signed in, the sign-in happens once and is in
no frame, and no secret (the password, the TOTP seed, any code typed, the session cookie) is anywhere: the
bundle, the stored objects, the database (``pg_dump``), the logs of every process, the Celery broker's
messages (Redis MONITOR while the job runs), the webhooks, the API's answers, or a pixel (OCR of frames at
2 fps and of the stills). And a sign-in that lands on another origin types nothing."""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
import redis
from django.conf import settings
from django.core.files.storage import default_storage
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from jobs.models import Chunk, Event, Job, JobSession, JobStatus, ObjectKind, StoredObject
from jobs.services.clients import client_create
from sampleapp.serve import SampleAppServer, serve
from sampleapp.signin import SignIn
from tests.e2e.conftest import Worker, bundle_archive, wait_until_ended
from tests.jobs.media.ocr import frames, ocr
from tests.processes import pg_dump
from tests.receivers import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EMAIL = "jane.doe@acme-corp.com"  # the address the sample app shows as signed in: masked as a secret's text
# What only the sign-in pages say (the app's own pages say "Signed in as", never these).
SIGN_IN_WORDS = ("signin", "password", "verify", "securedby", "authenticator")


@pytest.fixture
def account() -> SignIn:
    return SignIn(email=EMAIL, password="Orbit-" + secrets.token_hex(6), totp_seed=pyotp.random_base32())


@pytest.fixture
def app(account: SignIn) -> Iterator[tuple[SampleAppServer, str]]:
    server, port = serve(0, signin=account)
    yield server, f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


class BrokerTap:
    """Every command Redis runs while the job does (MONITOR): the broker's messages, as they were sent."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        with redis.Redis.from_url(settings.REDIS_URL).monitor() as monitor:
            for command in monitor.listen():
                self.lines.append(str(command.get("command", "")))
                if self._stop.is_set():
                    return

    def __enter__(self) -> BrokerTap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        redis.Redis.from_url(settings.REDIS_URL).ping()  # one more command, so the listener sees the stop
        self._thread.join(timeout=10)


def _api() -> APIClient:
    _client, key = client_create(name="Orbit customer")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    return api


def _credential(api: APIClient, account: SignIn, origin: str) -> str:
    made = api.post("/v1/credentials", {"name": "Orbit demo account", "origins": [origin], "values": {
        "username": account.email, "password": account.password, "totp": account.totp_seed}}, format="json")
    assert made.status_code == 201, made.json()
    return str(made.json()["id"])


def _sign_in(cred: str) -> dict[str, Any]:
    def secret(field: str) -> dict[str, str]:
        return {"credential": cred, "field": field}
    return {"url": "/signin", "steps": [
        {"action": "type", "selector": "#email", "secret": secret("username")},
        {"action": "type", "selector": "#password", "secret": secret("password")},
        {"action": "click", "selector": "#signin"},
        {"action": "type", "selector": "#code", "secret": secret("totp")},
        {"action": "click", "selector": "#verify"},
        {"action": "wait_for", "selector": "p.account"}]}


FEATURES = [
    {"title": "The overview", "script": "Your week at a glance.",
     "steps": [{"action": "wait", "ms": 400}, {"action": "scroll", "y": 300}]},
    {"title": "Projects", "script": "Every project in one place.",
     "steps": [{"action": "goto", "url": "/projects.html"}, {"action": "click", "selector": "text=New project"}]},
    {"title": "Reports", "script": "Reports for every release.",
     "steps": [{"action": "goto", "url": "/reports.html"}, {"action": "wait", "ms": 400}]},
]


def _hits(haystacks: dict[str, bytes], needles: list[str]) -> list[tuple[str, str]]:
    return [(name, needle[:3] + "…") for name, data in haystacks.items() for needle in needles
            if needle.encode() in data]


def test_three_features_recorded_signed_in_with_no_secret_anywhere(
        worker_env: dict[str, str], app: tuple[SampleAppServer, str], account: SignIn, hook: Receiver,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server, origin = app
    caplog.set_level(logging.DEBUG)
    api = _api()
    cred = _credential(api, account, origin)
    worker = Worker(worker_env, tmp_path / "worker.log")
    started = time.time()
    with BrokerTap() as tap:
        worker.start()
        try:
            created = api.post("/v1/jobs", {"target_url": f"{origin}/", "sign_in": _sign_in(cred),
                                            "features": FEATURES, "voice": {"provider": "espeak-ng"},
                                            "webhook_url": hook.url}, format="json")
            assert created.status_code == 201, created.json()
            job = wait_until_ended(created.json()["id"], timeout=420)
            hook.wait_for(1, timeout=30)
            time.sleep(2)  # the last deliveries
        finally:
            worker.stop()
    ended = time.time()

    assert job.status == JobStatus.SUCCEEDED, job.to_dict()
    assert [c.status for c in job.chunks.order_by("index")] == ["succeeded"] * 3

    # Signed in once for the whole job: the app issued one session and accepted one code.
    assert server.gate is not None
    sessions = [str(s) for s in server.gate.sessions.live()]
    assert len(sessions) == 1
    assert not JobSession.objects.filter(job=job).exists()  # deleted when the job ended
    assert api.get(f"/v1/credentials/{cred}").json()["last_used_at"] is not None

    # Each feature's first frame is already signed in, and no frame or still shows the sign-in.
    archive = bundle_archive(job)
    videos = sorted(n for n in archive.namelist() if re.fullmatch(r"chunk-\d+-final\.mp4", n))
    assert len(videos) == 3, archive.namelist()
    read: dict[str, str] = {}
    for obj in StoredObject.objects.filter(job=job, kind__in=[ObjectKind.RECORDING, ObjectKind.STILL]):
        local = tmp_path / "objects" / obj.key.replace("/", "_")
        local.parent.mkdir(exist_ok=True)
        with default_storage.open(obj.key, "rb") as fh:
            local.write_bytes(fh.read())
        if obj.kind == ObjectKind.RECORDING:
            shots = frames(local, tmp_path / "frames" / local.stem, fps=2)
            first = re.sub(r"\s+", "", ocr(shots[0])).lower()
            assert "overview" in first or "signedinas" in first, (obj.key, first)  # the app, signed in
            read.update({f"{obj.key}@{p.name}": ocr(p) for p in shots})
        else:
            read[obj.key] = ocr(local)
    for name in videos:
        video = tmp_path / "bundle" / name.replace("/", "_")
        video.parent.mkdir(exist_ok=True)
        video.write_bytes(archive.read(name))
        read.update({f"{name}@{p.name}": ocr(p) for p in frames(video, tmp_path / "final" / video.stem, fps=2)})
    squeezed = {name: re.sub(r"\s+", "", text).lower() for name, text in read.items()}
    assert any("signedinas" in text for text in squeezed.values())  # the control: OCR reads the app's pages
    shown = [(name, word) for name, text in squeezed.items() for word in SIGN_IN_WORDS if word in text]
    assert not shown, shown

    # No secret anywhere.
    codes = {pyotp.TOTP(account.totp_seed).at(t) for t in range(int(started) - 60, int(ended) + 60, 10)}
    cookie = server.gate.sessions.live()[0]
    needles = [account.password, account.totp_seed, *codes, str(cookie)]
    ocr_hits = [(name, n[:2]) for name, text in squeezed.items() for n in [account.password.lower(), *codes]
                if n in text]
    assert not ocr_hits, ocr_hits
    places: dict[str, bytes] = {f"bundle:{n}": archive.read(n) for n in archive.namelist()}
    for obj in StoredObject.objects.filter(job=job):
        with default_storage.open(obj.key, "rb") as fh:
            places[f"object:{obj.key}"] = fh.read()
    places["pg_dump"] = pg_dump(data_only=True).encode()
    places["worker.log"] = worker.log.read_bytes()
    places["this process's log"] = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records).encode()
    places["broker"] = "\n".join(tap.lines).encode()
    places["webhooks"] = b"\n".join(r.body for r in hook.requests)
    places["events"] = json.dumps([e.data for e in Event.objects.filter(job=job)]).encode()
    for path in (f"/v1/jobs/{job.pk}", f"/v1/jobs/{job.pk}/bundle",
                 f"/v1/credentials/{cred}", "/v1/credentials"):
        places[f"GET {path}"] = api.get(path).content
    work = Path(settings.SCREENREEL_WORK_DIR) / job.pk
    for file in (work.rglob("*") if work.exists() else []):
        if file.is_file():
            places[f"scratch:{file}"] = file.read_bytes()
    assert len(tap.lines) > 10 and len(hook.requests) >= 1  # the places were really filled
    assert not _hits(places, needles)
    assert not Chunk.objects.filter(job=job).exclude(error="").exists()


def test_a_sign_in_sent_to_another_origin_types_nothing(
        worker_env: dict[str, str], account: SignIn, tmp_path: Path) -> None:
    """The sign-in page redirects to another origin (127.0.0.2 is not 127.0.0.1) before the password step: the
    step fails with secret_origin_mismatch, the app there received no key and no post, and the sign-in was tried
    once for the job, not once per feature."""
    elsewhere, other_port = serve(0, host="127.0.0.2", signin=account)
    trap, trap_port = serve(0, signin=SignIn(email=EMAIL, password=account.password, totp_seed=account.totp_seed,
                                             redirect_to=f"http://127.0.0.2:{other_port}/signin"))
    origin = f"http://127.0.0.1:{trap_port}"
    worker = Worker(worker_env, tmp_path / "worker.log")
    worker.start()
    try:
        api = _api()
        cred = _credential(api, account, origin)
        created = api.post("/v1/jobs", {"target_url": f"{origin}/", "sign_in": _sign_in(cred),
                                        "features": FEATURES[:2], "voice": {"provider": "espeak-ng"}}, format="json")
        assert created.status_code == 201, created.json()
        job: Job = wait_until_ended(created.json()["id"], timeout=300)
    finally:
        worker.stop()
        for server in (elsewhere, trap):
            server.shutdown()
            server.server_close()
    assert job.status == JobStatus.FAILED
    errors = [c.error for c in job.chunks.order_by("index")]
    assert all("sign-in step 1" in e and "secret_origin_mismatch" in e and f"127.0.0.2:{other_port}" in e
               for e in errors), errors
    assert elsewhere.gate is not None and not elsewhere.gate.pending.live() and not elsewhere.gate.sessions.live()
    assert account.password not in json.dumps(api.get(f"/v1/jobs/{job.pk}").json())
    # One sign-in for the job: the second feature fails with the first one's sign-in error, word for word.
    assert len(set(errors)) == 1


def _awaited(hook: Receiver, job_id: str, timeout: float) -> dict[str, Any]:
    """The job.awaiting_input webhook for ``job_id``, as the receiver got it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in list(hook.requests):
            event = json.loads(request.body)
            if event["type"] == "job.awaiting_input" and event["job_id"] == job_id:
                return {"event": event, "request": request}
        time.sleep(0.1)
    raise AssertionError(f"no job.awaiting_input for {job_id} within {timeout} s")


def test_a_code_a_person_reads_is_awaited_given_once_or_timed_out_while_other_clients_record(
        worker_env: dict[str, str], app: tuple[SampleAppServer, str], account: SignIn, hook: Receiver,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two jobs of one client sign in with a code a person reads (the app's second page; the test reads it from
    the authenticator, as a person reads an e-mail). The first gets job.awaiting_input by a signed webhook, the
    code is posted and the job finishes; the second's code never comes: its features fail with input_timeout at
    the window. Meanwhile another client's job records and finishes: the waits held no recording worker (there is
    one, as the Procfile runs it) and no turn of the other client's."""
    caplog.set_level(logging.DEBUG)
    _server, origin = app
    env = {**worker_env, "SCREENREEL_INPUT_WINDOW_S": "60"}
    owner, key = client_create(name="Orbit customer")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    cred = _credential(api, account, origin)
    steps = _sign_in(cred)["steps"]
    steps[3] = {"action": "type", "selector": "#code", "input": "email_code"}  # instead of the TOTP secret
    spec = {"target_url": f"{origin}/", "sign_in": {"url": "/signin", "steps": steps}, "features": FEATURES[:1],
            "voice": {"provider": "espeak-ng"}, "webhook_url": hook.url}
    other = _api()
    workers = [Worker(env, tmp_path / "signin.log", queues="signin", pool="threads", concurrency=4, beat=False,
                      name="signin"),
               Worker(env, tmp_path / "record.log", queues="record", concurrency=1, beat=False, name="record"),
               Worker(env, tmp_path / "worker.log", queues="media,deliver,default", concurrency=2)]
    for worker in workers:
        worker.start()
    try:
        answered = api.post("/v1/jobs", spec, format="json").json()["id"]
        forgotten = api.post("/v1/jobs", spec, format="json").json()["id"]
        awaited = _awaited(hook, answered, timeout=120)
        _awaited(hook, forgotten, timeout=60)
        plain = other.post("/v1/jobs", {"target_url": f"{origin}/signin", "features": FEATURES[:1],
                                        "voice": {"provider": "espeak-ng"}}, format="json")
        assert plain.status_code == 201, plain.json()
        assert api.get(f"/v1/jobs/{answered}").json()["status"] == "awaiting_input"
        code = pyotp.TOTP(account.totp_seed).now()
        given = api.post(f"/v1/jobs/{answered}/input", {"name": "email_code", "value": code}, format="json")
        assert given.status_code == 202, given.json()
        again = api.post(f"/v1/jobs/{answered}/input", {"name": "email_code", "value": code}, format="json")
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_awaiting_input"
        stranger = other.post(f"/v1/jobs/{forgotten}/input", {"name": "email_code", "value": code}, format="json")
        assert stranger.status_code == 404
        done = wait_until_ended(answered, timeout=240)
        timed_out = wait_until_ended(forgotten, timeout=120)
        meanwhile = wait_until_ended(plain.json()["id"], timeout=240)
    finally:
        for worker in workers:
            worker.stop()

    event = awaited["event"]
    Webhook(owner.webhook_secret).verify(awaited["request"].body, awaited["request"].headers)
    assert event["data"]["status"] == "awaiting_input" and event["data"]["input"]["name"] == "email_code"
    assert done.status == JobStatus.SUCCEEDED, done.to_dict()
    assert timed_out.status == JobStatus.FAILED
    errors = [c.error for c in timed_out.chunks.all()]
    assert errors and all(e.startswith("input_timeout: ") for e in errors), errors
    # The other client's job recorded while the second one waited, and ended before its window closed.
    assert meanwhile.status == JobStatus.SUCCEEDED and meanwhile.finished_at is not None
    assert timed_out.finished_at is not None and meanwhile.finished_at < timed_out.finished_at
    types = [e.type for e in Event.objects.filter(job=done).order_by("sequence")]
    assert types.index("job.awaiting_input") < types.index("job.resumed") < types.index("chunk.recording.started")
    # The code was used once and kept nowhere.
    places = {"pg_dump": pg_dump(data_only=True).encode(),
              **{w.log.name: w.log.read_bytes() for w in workers},
              "this process's log": "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records).encode(),
              "webhooks": b"\n".join(r.body for r in hook.requests)}
    assert not _hits(places, [code, account.password])
    assert not redis.Redis.from_url(settings.REDIS_URL).keys("screenreel:input:*")  # popped, nothing left
