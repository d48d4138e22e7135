"""The sample app's sign-in, against the real server on a free port (httpx, and once a real Chromium): the two
steps give a session and only a session opens the pages; a wrong password, a wrong or replayed code and a form
without its CSRF token are refused; ``next`` never leads off the site; and without a SignIn the app is the static
app it always was, which the recordings of the other tests rely on."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from playwright.sync_api import sync_playwright

from sampleapp.serve import ROOT, serve
from sampleapp.signin import SignIn

pytestmark = pytest.mark.timeout(60)

CHROMIUM = "/usr/bin/chromium"
EMAIL = "jane.doe@acme-corp.com"
PASSWORD = "correct horse battery staple"
PAGES = ["/", "/index.html", "/projects.html", "/reports.html", "/settings.html"]


@dataclass
class App:
    url: str
    signin: SignIn

    @property
    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP(self.signin.totp_seed)


@contextmanager
def _served(signin: SignIn | None) -> Iterator[str]:
    server, port = serve(0, signin=signin)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app() -> Iterator[App]:
    """A fresh server and seed for each test: a code once accepted stays refused, whichever test used it."""
    signin = SignIn(email=EMAIL, password=PASSWORD, totp_seed=pyotp.random_base32())
    with _served(signin) as url:
        yield App(url, signin)


@pytest.fixture
def client(app: App) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url, timeout=10) as client:
        yield client


def _csrf(form: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', form.text)
    assert match, form.text
    return match.group(1)


def _password_step(client: httpx.Client, *, password: str = PASSWORD, next_path: str | None = None) -> httpx.Response:
    params = {"next": next_path} if next_path else {}
    form = client.get("/signin", params=params)
    assert form.status_code == 200
    return client.post("/signin", params=params, data={"csrf": _csrf(form), "email": EMAIL, "password": password})


def _code_step(client: httpx.Client, password_passed: httpx.Response, code: str) -> httpx.Response:
    assert password_passed.status_code == 303, password_passed.text
    location = password_passed.headers["location"]
    assert urlsplit(location).path == "/signin/code"
    form = client.get(location)
    assert form.status_code == 200
    return client.post(location, data={"csrf": _csrf(form), "code": code})


def _sign_in(client: httpx.Client, app: App, next_path: str | None = None) -> httpx.Response:
    return _code_step(client, _password_step(client, next_path=next_path), app.totp.now())


def _wrong_code(totp: pyotp.TOTP) -> str:
    now = time.time()
    valid = {totp.at(now + 30 * step) for step in range(-2, 3)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444", "555555") if code not in valid)


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    return {line.partition("=")[0]: line for line in response.headers.get_list("set-cookie")}


def test_the_two_steps_give_a_session_that_opens_every_page(app: App, client: httpx.Client) -> None:
    signed_in = _sign_in(client, app)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    cookies = _set_cookies(signed_in)
    session = cookies["acme_session"]
    assert re.fullmatch(r"acme_session=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Lax", session), session
    assert "Max-Age=0" in cookies["acme_pending"]  # the half-signed-in state is over
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["cache-control"] == "no-store"
        assert "Orbit" in page.text and 'id="signin-page"' not in page.text
    assert 'id="new-project"' in client.get("/projects.html").text


def test_the_sign_in_pages_are_forms_with_the_ids_a_recorder_looks_for(app: App, client: httpx.Client) -> None:
    form = client.get("/signin")
    assert form.headers["cache-control"] == "no-store"
    assert form.headers["content-type"] == "text/html; charset=utf-8"
    assert re.fullmatch(r"acme_presession=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Lax",
                        form.headers["set-cookie"])
    for html in ('<body id="signin-page">', 'href="/style.css"', "<h1>Sign in</h1>", "Acme",
                 'id="email" name="email" type="email" autocomplete="username"',
                 'id="password" name="password" type="password" autocomplete="current-password"',
                 '<label for="email">', '<label for="password">', 'type="hidden" name="csrf"',
                 '<button class="btn" type="submit" id="signin">Sign in</button>'):
        assert html in form.text
    code_form = client.get(_password_step(client).headers["location"])
    for html in ('<body id="signin-page">', 'id="code" name="code" inputmode="numeric" autocomplete="one-time-code"',
                 '<label for="code">', 'type="hidden" name="csrf"',
                 '<button class="btn" type="submit" id="verify">Verify</button>'):
        assert html in code_form.text


@pytest.mark.parametrize("path", [*PAGES, "/projects.html?tab=mine", "/missing.html", "/signin.py"])
def test_a_page_without_a_session_is_sent_to_the_sign_in_with_its_path_as_next(client: httpx.Client,
                                                                              path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["cache-control"] == "no-store"
    location = urlsplit(answer.headers["location"])
    assert location.path == "/signin" and parse_qs(location.query)["next"] == [path]


@pytest.mark.parametrize("path", ["/style.css/../index.html", "/%69ndex.html", "/index.html%3F.css", "/sampleapp/"])
def test_a_page_in_disguise_still_needs_a_session(app: App, path: str) -> None:
    # http.client sends the path as written (httpx would resolve the "..").
    url = urlsplit(app.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        assert answer.status in (303, 404), answer.status
        assert b"Orbit" not in answer.read()
    finally:
        connection.close()


def test_static_assets_need_no_session(client: httpx.Client) -> None:
    for path, kind in [("/style.css", "text/css"), ("/projects.js", "javascript")]:
        answer = client.get(path)
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
        assert answer.content == (ROOT / path.lstrip("/")).read_bytes()


def test_after_the_sign_in_the_browser_goes_back_to_the_page_it_asked_for(app: App, client: httpx.Client) -> None:
    sent = client.get("/settings.html")
    next_path = parse_qs(urlsplit(sent.headers["location"]).query)["next"][0]
    signed_in = _sign_in(client, app, next_path=next_path)
    assert signed_in.headers["location"] == "/settings.html"
    assert client.get("/settings.html").status_code == 200


@pytest.mark.parametrize("next_path", ["//evil.example", "https://evil.example", "/\\evil.example",
                                       "/\t/evil.example", "javascript:alert(1)"])
def test_a_next_off_the_site_lands_on_the_home_page(app: App, client: httpx.Client, next_path: str) -> None:
    form = client.get("/signin", params={"next": next_path})
    assert "evil" not in form.text and "javascript" not in form.text
    signed_in = _sign_in(client, app, next_path=next_path)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"


def test_a_wrong_password_is_401_and_never_shown_again(app: App, client: httpx.Client) -> None:
    for email, password in [(EMAIL, "correct horse battery stapler"), ("jo@acme-corp.com", PASSWORD)]:
        form = client.get("/signin")
        answer = client.post("/signin", data={"csrf": _csrf(form), "email": email, "password": password})
        assert answer.status_code == 401
        assert "Wrong e-mail or password." in answer.text and 'id="signin"' in answer.text
        assert password not in answer.text
        assert f'value="{email}"' in answer.text  # the e-mail is kept, the password is not
        assert "acme_pending" not in answer.headers.get("set-cookie", "")
    assert client.get("/signin/code").headers["location"] == "/signin"
    assert client.get("/").status_code == 303


def test_a_form_without_its_csrf_cookie_or_with_a_wrong_token_is_403(app: App, client: httpx.Client) -> None:
    token = _csrf(client.get("/signin"))
    fields = {"email": EMAIL, "password": PASSWORD}
    with httpx.Client(base_url=app.url, timeout=10) as stranger:  # has the token, not the cookie
        refused = stranger.post("/signin", data={"csrf": token, **fields})
        assert refused.status_code == 403 and "not sent from this site" in refused.text
    assert client.post("/signin", data={"csrf": "0" * 64, **fields}).status_code == 403
    assert client.post("/signin", data=fields).status_code == 403
    assert "acme_pending" not in client.cookies
    passed = _password_step(client)
    location = passed.headers["location"]
    code = app.totp.now()
    assert client.post(location, data={"code": code}).status_code == 403
    assert client.post(location, data={"csrf": token[::-1], "code": code}).status_code == 403
    assert _code_step(client, passed, code).status_code == 303  # the code was not spent by the refused forms


def test_a_form_body_over_8_kib_is_413(client: httpx.Client) -> None:
    token = _csrf(client.get("/signin"))
    answer = client.post("/signin", data={"csrf": token, "email": EMAIL, "password": "x" * 9000})
    assert answer.status_code == 413
    assert client.post("/signin", json={"csrf": token}).status_code == 415


def test_the_code_page_needs_the_password_first(client: httpx.Client) -> None:
    answer = client.get("/signin/code", params={"next": "/reports.html"})
    assert answer.status_code == 303 and answer.headers["location"] == "/signin?next=%2Freports.html"


def test_a_wrong_code_is_401(app: App, client: httpx.Client) -> None:
    passed = _password_step(client)
    answer = _code_step(client, passed, _wrong_code(app.totp))
    assert answer.status_code == 401 and "That code is not valid." in answer.text and 'id="verify"' in answer.text
    assert "acme_session" not in client.cookies
    assert client.get("/").status_code == 303
    assert _code_step(client, passed, app.totp.now()).status_code == 303  # the half-signed-in state is still there


def test_a_code_is_accepted_once(app: App, client: httpx.Client) -> None:
    code = app.totp.now()
    assert _code_step(client, _password_step(client), code).status_code == 303
    with httpx.Client(base_url=app.url, timeout=10) as replayer:
        replayed = _code_step(replayer, _password_step(replayer), code)
        assert replayed.status_code == 401 and "That code is not valid." in replayed.text
        assert replayer.get("/").status_code == 303


def test_sign_out_ends_the_session_on_the_server(app: App, client: httpx.Client) -> None:
    _sign_in(client, app)
    session = client.cookies["acme_session"]
    signed_out = client.get("/signout")
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/signin"
    assert "acme_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0" in signed_out.headers["set-cookie"]
    assert client.get("/index.html").status_code == 303
    with httpx.Client(base_url=app.url, timeout=10, cookies={"acme_session": session}) as replayer:
        assert replayer.get("/index.html").status_code == 303  # the old cookie opens nothing


def test_redirect_to_sends_the_sign_in_page_elsewhere() -> None:
    elsewhere = "https://login.elsewhere.example/acme?step=1"
    signin = SignIn(email=EMAIL, password=PASSWORD, totp_seed=pyotp.random_base32(), redirect_to=elsewhere)
    with _served(signin) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/").headers["location"] == "/signin?next=%2F"
        answer = client.get("/signin", params={"next": "/"})
        assert answer.status_code == 302 and answer.headers["location"] == elsewhere


def test_without_a_signin_the_app_is_served_as_before() -> None:
    with _served(None) as url, httpx.Client(base_url=url, timeout=10) as client:
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 200 and "set-cookie" not in page.headers
            assert page.headers["cache-control"] == "no-store"
            assert page.content == (ROOT / (path.lstrip("/") or "index.html")).read_bytes()
        assert client.get("/signin").status_code == 404
        assert client.post("/signin", data={"email": EMAIL}).status_code == 501


def test_a_signin_hides_its_secrets_and_checks_its_seed() -> None:
    seed = pyotp.random_base32()
    signin = SignIn(email=EMAIL, password=PASSWORD, totp_seed=seed)
    assert PASSWORD not in repr(signin) and seed not in repr(signin)
    for bad in ("not base32!", "JBSWY3DPEHPK3PXP"):  # the second is base32, but only 80 bits
        with pytest.raises(ValueError, match="base32"):
            SignIn(email=EMAIL, password=PASSWORD, totp_seed=bad)
    with pytest.raises(ValueError, match="needs"):
        SignIn(email=EMAIL, password="", totp_seed=seed)


def test_the_command_line_takes_the_account_from_the_environment_only() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMPLEAPP_SIGNIN_")}
    command = [sys.executable, "-m", "sampleapp.serve", "--port", "0", "--signin"]
    cwd = Path(__file__).resolve().parents[2]
    refused = subprocess.run(command, env={**env, "SAMPLEAPP_SIGNIN_EMAIL": EMAIL}, cwd=cwd, capture_output=True,
                             text=True, timeout=30)
    assert refused.returncode == 2
    assert "SAMPLEAPP_SIGNIN_PASSWORD, SAMPLEAPP_SIGNIN_TOTP" in refused.stderr
    env |= {"SAMPLEAPP_SIGNIN_EMAIL": EMAIL, "SAMPLEAPP_SIGNIN_PASSWORD": PASSWORD,
            "SAMPLEAPP_SIGNIN_TOTP": pyotp.random_base32()}
    with subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            assert PASSWORD not in line and env["SAMPLEAPP_SIGNIN_TOTP"] not in line
            match = re.search(r"http://127\.0\.0\.1:\d+", line)
            assert match, line
            assert httpx.get(f"{match.group(0)}/index.html").status_code == 303
            assert httpx.get(f"{match.group(0)}/signin").status_code == 200
        finally:
            server.terminate()


def test_a_browser_signs_in_on_both_pages_and_lands_on_the_projects_page(app: App) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(f"{app.url}/projects.html")
            assert urlsplit(page.url).path == "/signin"
            assert page.locator("body#signin-page").count() == 1
            # The app's stylesheet reached the sign-in page without a session: the button has the app's accent.
            assert page.eval_on_selector("#signin", "b => getComputedStyle(b).backgroundColor") == "rgb(127, 86, 217)"
            page.fill("#email", EMAIL)
            page.fill("#password", PASSWORD)
            page.click("#signin")
            page.wait_for_selector("#code")
            page.fill("#code", app.totp.now())
            page.click("#verify")
            page.wait_for_url(f"{app.url}/projects.html")
            page.get_by_text("New project").wait_for()
            assert page.locator("#signin-page").count() == 0
        finally:
            browser.close()
