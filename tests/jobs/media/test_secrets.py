"""Secrets in a real Chromium: typed only on their origins, masked in every frame, the sign-in off camera.

The pages record what reached them in their own localStorage (read back from the session the sign-in leaves)
or in the requests they make (the server's hits), so "typed" and "nothing was typed" are the page's word.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from jobs.lib.net.egress import EgressPolicy
from jobs.media import virtual_time
from jobs.media.errors import StepError
from jobs.media.recorder import RecordRequest, SignInPlan, record, sign_in
from jobs.media.secrets import Access, Secret, SecretRef, origin_of
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.jobs.media.ocr import frames, ocr
from tests.pages import pages_served

PASSWORD = "Quartz7Lantern"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DP"

# A sign-in form whose every keystroke reaches the page's own storage and its server (so nothing typed can hide),
# and that shows the password back as text (which must be masked too). The field is type=text on purpose: a
# secret's field is masked whatever its type.
FORM = """<!doctype html><html><body style="font: 28px sans-serif; margin: 40px">
<label>Password <input id="password" type="text" style="font-size: 28px; width: 500px"></label>
<label>Code <input id="code" type="text" style="font-size: 28px"></label>
<p>Shown back: <span id="echo"></span></p>
<script>
  for (const el of document.querySelectorAll('input')) el.addEventListener('input', () => {
    localStorage.setItem(el.id, el.value);
    new Image().src = '/typed?field=' + el.id + '&length=' + el.value.length;
  });
  // Shown back once typed (as an app shows who is signed in): the whole value, on the page as text.
  document.getElementById('password').addEventListener('change', (e) => {
    document.getElementById('echo').textContent = e.target.value;
  });
</script></body></html>"""
PASSWORD_FIELD = """<!doctype html><html><body><input id="pw" type="password"></body></html>"""


def _request(base: str, out: Path, steps: list[dict[str, Any]], **kwargs: Any) -> RecordRequest:
    return RecordRequest(tenant="test", target_url=f"{base}/form", width=1280, height=720, steps=steps,
                         feature_title="Sign in", out_dir=out, chromium_path=CHROMIUM, **kwargs)


def _secrets(origin: str) -> dict[SecretRef, Secret]:
    return {SecretRef("cred_a", "password"): Secret(field="password", origins=(origin,), value=PASSWORD),
            SecretRef("cred_a", "totp"): Secret(field="totp", origins=(origin,), value=SEED)}


def _local_storage(session: dict[str, Any] | None, origin: str) -> dict[str, str]:
    assert session is not None
    stores = [o for o in session["origins"] if o["origin"] == origin]
    return {item["name"]: item["value"] for store in stores for item in store["localStorage"]}


TYPE_PASSWORD = {"action": "type", "selector": "#password", "secret": {"credential": "cred_a", "field": "password"}}
TYPE_CODE = {"action": "type", "selector": "#code", "secret": {"credential": "cred_a", "field": "totp"}}


def test_a_secret_reprs_without_its_value() -> None:
    secret = Secret(field="password", origins=("https://app.example.com",), value=PASSWORD)
    assert PASSWORD not in repr(secret) and PASSWORD not in str(secret)
    assert origin_of("HTTPS://App.Example.com:443/x?y") == "https://app.example.com"
    assert origin_of("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert origin_of("about:blank") == "null"


@requires_chromium
def test_the_sign_in_types_secrets_off_camera_and_leaves_a_session(tmp_path: Path) -> None:
    with pages_served({"/form": FORM, "/signin": FORM}) as served:
        signed = sign_in(_request(served.base, tmp_path, [], secrets=_secrets(served.base),
                                  sign_in=SignInPlan(url="/signin", steps=[TYPE_PASSWORD, TYPE_CODE])))
        rec = record(_request(served.base, tmp_path, [{"action": "wait", "ms": 300}], session=signed.session))
    stored = _local_storage(signed.session, served.base)
    assert stored["password"] == PASSWORD
    assert pyotp.TOTP(SEED).verify(stored["code"], valid_window=1)
    assert signed.secrets_used == {SecretRef("cred_a", "password"), SecretRef("cred_a", "totp")}
    assert PASSWORD not in repr(signed)
    # The recording starts from the session, on the target; the sign-in made no frame and no still.
    assert [s.after_step for s in rec.stills] == [1]


@requires_chromium
def test_an_input_is_waited_for_then_typed_into_its_masked_field(tmp_path: Path) -> None:
    asked: list[str] = []

    def on_input(name: str) -> str:
        asked.append(name)
        return "481516"

    step = {"action": "type", "selector": "#code", "input": "email_code"}
    with pages_served({"/form": FORM}) as served:
        signed = sign_in(_request(served.base, tmp_path, [], on_input=on_input, input_window_s=5,
                                  sign_in=SignInPlan(url="/form", steps=[step])))
    assert asked == ["email_code"]
    assert _local_storage(signed.session, served.base)["code"] == "481516"


@requires_chromium
def test_an_input_is_not_typed_on_an_origin_the_page_moved_to_while_it_was_awaited(tmp_path: Path) -> None:
    """The page moves to another origin only once the input was asked for (it polls /moved, which the person's
    answer flips), so the move falls between the ask and the typing however slow the machine is."""
    pages = {"/form": FORM}

    def on_input(name: str) -> str:
        pages["/moved"] = "yes"
        deadline = time.monotonic() + 10
        while not [hit for hit in served.hits if hit == "/form"] and time.monotonic() < deadline:
            time.sleep(0.05)  # until the page has loaded the other origin's form
        time.sleep(0.3)
        return "S3cretCode99"

    step = {"action": "type", "selector": "#code", "input": "email_code"}
    with pages_served(pages) as served:
        other = served.base.replace("127.0.0.1", "localhost")  # the same server, another origin
        pages["/signin"] = FORM.replace("</script>", "setInterval(async () => { if ((await (await fetch('/moved'))"
                                        f".text()) === 'yes') location.replace('{other}/form'); }}, 50);</script>")
        with pytest.raises(StepError) as failure:
            sign_in(_request(served.base, tmp_path, [], on_input=on_input, input_window_s=5,
                             sign_in=SignInPlan(url="/signin", steps=[step])))
    assert "input_origin_mismatch" in str(failure.value) and "S3cretCode99" not in str(failure.value)
    assert not [hit for hit in served.hits if hit.startswith("/typed")]


@requires_chromium
def test_a_failure_while_an_input_is_typed_never_says_its_value(tmp_path: Path) -> None:
    """The field goes away while the value is awaited: the step fails with a fixed cause."""
    gone = FORM.replace("</script>", "setTimeout(() => document.getElementById('code').remove(), 300);</script>")

    def on_input(name: str) -> str:
        import time
        time.sleep(0.8)
        return "S3cretCode99"

    step = {"action": "type", "selector": "#code", "input": "email_code", "timeout_ms": 500}
    with pages_served({"/form": gone}) as served, pytest.raises(StepError) as failure:
        sign_in(_request(served.base, tmp_path, [], on_input=on_input, input_window_s=5,
                         sign_in=SignInPlan(url="/form", steps=[step])))
    assert "sign-in step 1" in str(failure.value)
    assert "S3cretCode99" not in str(failure.value)


@requires_chromium
@pytest.mark.parametrize("capture", [
    "screencast",
    pytest.param("virtual_time", marks=pytest.mark.skipif(not virtual_time.available(), reason="needs the headless "
                                                                                                  "shell"))])
def test_a_secret_typed_on_camera_is_in_no_frame(tmp_path: Path, capture: str) -> None:
    """The field (type=text) and the page's text that shows the value back are masked in every frame: tesseract
    reads neither in frames sampled at 2 fps nor in the stills, and reads the page's other text (the control). On
    both captures: on the video's clock every key is typed between two frames the recorder renders."""
    steps: list[dict[str, Any]] = [TYPE_PASSWORD, {"action": "click", "selector": "#code"},
                                   {"action": "wait", "ms": 600}]
    with pages_served({"/form": FORM}) as served:
        rec = record(_request(served.base, tmp_path / "rec", steps, secrets=_secrets(served.base), capture=capture))
    assert rec.capture == capture
    assert f"/typed?field=password&length={len(PASSWORD)}" in served.hits
    assert rec.stills  # and the value was shown back as text before the last still (the page's change event)
    read = [ocr(p) for p in frames(rec.video_path, tmp_path / "frames", fps=2)] + [ocr(s.path) for s in rec.stills]
    assert any("Shown back" in text for text in read)  # the control: OCR reads this page
    squeezed = [re.sub(r"\s+", "", text) for text in read]
    assert not any("Quartz" in text or "Lantern" in text for text in squeezed)
    assert rec.redaction is None  # the job asked for no redaction: the secrets' masks are not its report


@requires_chromium
def test_a_secret_is_not_typed_on_another_origin(tmp_path: Path) -> None:
    """The sign-in page sends the browser to another origin (127.0.0.1 and localhost are two) before the password
    step: the step fails with secret_origin_mismatch and the page there received no key."""
    with pages_served({"/form": FORM}) as elsewhere:
        other = elsewhere.base.replace("127.0.0.1", "localhost")
        redirect = f"<script>location.replace('{other}/form')</script>"
        with pages_served({"/form": FORM, "/signin": redirect}) as served, pytest.raises(StepError) as failure:
            sign_in(_request(served.base, tmp_path, [], secrets=_secrets(served.base),
                             sign_in=SignInPlan(url="/signin", steps=[{"action": "wait_for", "selector": "#code"},
                                                                      TYPE_PASSWORD])))
    assert "secret_origin_mismatch" in str(failure.value)
    assert "sign-in step 2" in str(failure.value)
    assert other.split("/")[2] in str(failure.value)  # names where the field was
    assert PASSWORD not in str(failure.value)
    assert not [hit for hit in elsewhere.hits + served.hits if hit.startswith("/typed")]


@requires_chromium
def test_literal_text_into_a_password_field_is_refused(tmp_path: Path) -> None:
    with pages_served({"/form": PASSWORD_FIELD}) as served, pytest.raises(StepError) as failure:
        record(_request(served.base, tmp_path, [{"action": "type", "selector": "#pw", "text": "hunter2"}]))
    assert "use_a_secret" in str(failure.value)
    assert "hunter2" not in str(failure.value)


@requires_chromium
def test_a_secret_whose_credential_is_gone_fails_its_step(tmp_path: Path) -> None:
    with pages_served({"/form": FORM}) as served, pytest.raises(StepError) as failure:
        record(_request(served.base, tmp_path, [TYPE_PASSWORD]))
    assert "secret_unavailable" in str(failure.value)


@requires_chromium
def test_a_recording_starts_from_a_session(tmp_path: Path) -> None:
    """What the sign-in left is what the next recording starts with: the page finds its storage already set."""
    page = """<!doctype html><html><body><p id="who"></p><script>
      document.getElementById('who').textContent = localStorage.getItem('who') || 'nobody';
      new Image().src = '/seen?who=' + (localStorage.getItem('who') || 'nobody');
    </script></body></html>"""
    with pages_served({"/form": page}) as served:
        session = {"cookies": [], "origins": [{"origin": served.base,
                                               "localStorage": [{"name": "who", "value": "ada"}]}]}
        record(_request(served.base, tmp_path, [{"action": "wait", "ms": 100}], session=session))
    assert "/seen?who=ada" in served.hits


@requires_chromium
def test_a_credentials_headers_basic_and_session_reach_its_origins_only(tmp_path: Path) -> None:
    """Headers, HTTP basic and the saved session's cookie go with every request to the credential's origin and
    with none to another (127.0.0.2, which the page loads an image from); its localStorage is on the page."""
    with pages_served({}, host="127.0.0.2") as other:
        page = f"""<!doctype html><html><body><img src="{other.base}/pixel.png"><script>
          new Image().src = '/ls?k=' + localStorage.getItem('k');
        </script></body></html>"""
        with pages_served({"/form": page}) as served:
            access = Access(credential="cred_a", origins=(served.base,), headers={"x-preview-token": "tok-123"},
                            basic=("ada", "pw-456"),
                            cookies=({"name": "sid", "value": "cookie-789", "domain": "127.0.0.1", "path": "/",
                                      "secure": False, "sameSite": "None"},),
                            local_storage=({"origin": served.base, "localStorage": [{"name": "k", "value": "1"}]},))
            record(_request(served.base, tmp_path, [{"action": "wait", "ms": 300}], access=(access,),
                            url_guard=lambda _url: None))
    assert "/ls?k=1" in served.hits
    form = served.headers[served.hits.index("/form")]
    assert form["x-preview-token"] == "tok-123"
    assert form["authorization"] == "Basic " + base64.b64encode(b"ada:pw-456").decode()
    assert "sid=cookie-789" in form.get("cookie", "")
    assert other.hits == ["/pixel.png"]
    assert not {"x-preview-token", "authorization", "cookie"} & set(other.headers[0])
    assert "tok-123" not in repr(access) and "cookie-789" not in repr(access)


@requires_chromium
def test_a_credentials_headers_do_not_follow_a_redirect_off_its_origins(tmp_path: Path) -> None:
    """The credential's origin redirects (an open redirect) to 127.0.0.2: the request to the origin carries the
    headers, the hop off it none (route.continue_ would have carried them along the redirect)."""
    page = """<!doctype html><html><body><img src="/go"></body></html>"""
    with pages_served({}, host="127.0.0.2") as other, pages_served({"/form": page}) as served:
        served.redirects["/go"] = f"{other.base}/away"
        other.redirects["/away"] = f"{served.base}/landed"
        access = Access(credential="cred_a", origins=(served.base,), headers={"x-preview-token": "tok-123"},
                        basic=("ada", "pw-456"))
        record(_request(served.base, tmp_path, [{"action": "wait", "ms": 500}], access=(access,),
                        url_guard=lambda _url: None))
    assert served.headers[served.hits.index("/go")]["x-preview-token"] == "tok-123"
    away = other.headers[other.hits.index("/away")]
    assert "x-preview-token" not in away and "authorization" not in away


@requires_chromium
def test_a_request_sent_with_a_credentials_headers_still_goes_through_the_egress_proxy(tmp_path: Path) -> None:
    """The recorder sends a request to the credential's origin itself (so that its headers do not follow a
    redirect): that request obeys the egress policy as the browser's own do. 127.0.0.2 is not allowed here."""
    with pages_served({}, host="127.0.0.2") as other:
        page = f"""<!doctype html><html><body><img src="{other.base}/pixel.png"></body></html>"""
        with pages_served({"/form": page}) as served:
            access = Access(credential="cred_a", origins=(other.base,), headers={"x-preview-token": "tok-123"})
            record(_request(served.base, tmp_path, [{"action": "wait", "ms": 500}], access=(access,),
                            egress=EgressPolicy.from_setting("127.0.0.1/32")))
    assert "/form" in served.hits
    assert other.hits == []


@requires_chromium
def test_a_field_that_gives_its_focus_away_gets_no_key_and_neither_does_the_taker(tmp_path: Path) -> None:
    page = """<!doctype html><html><body><input id="password"><input id="decoy"><script>
      const decoy = document.getElementById('decoy');
      document.getElementById('password').addEventListener('focus', () => decoy.focus());
      decoy.addEventListener('input', () => { new Image().src = '/typed?length=' + decoy.value.length; });
    </script></body></html>"""
    with pages_served({"/form": page}) as served, pytest.raises(StepError) as failure:
        record(_request(served.base, tmp_path, [TYPE_PASSWORD], secrets=_secrets(served.base)))
    assert "secret_focus_lost" in str(failure.value)
    assert not [hit for hit in served.hits if hit.startswith("/typed")]


def test_a_saved_sessions_cookies_are_set_host_only_on_the_origins_they_cover() -> None:
    access = Access(credential="cred_a", origins=("https://app.example.com", "http://127.0.0.1:8000"), cookies=(
        {"name": "parent", "value": "1", "domain": ".example.com", "path": "/", "secure": True},
        {"name": "trick", "value": "2", "domain": "app.example.com", "path": "@evil.example/"},
        {"name": "elsewhere", "value": "3", "domain": "tracker.example.net", "path": "/"},
        {"name": "local", "value": "4", "domain": "127.0.0.1", "path": "/app", "secure": True},
    ))
    assert [(c["name"], c["url"]) for c in access.host_only_cookies()] == [
        ("parent", "https://app.example.com/"), ("trick", "https://app.example.com/")]
    assert all("domain" not in c for c in access.host_only_cookies())  # by URL: host-only, never a domain cookie
