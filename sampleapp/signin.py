"""The sample app's sign-in, off unless asked for: a real, server-side one, so that Screenreel can be tested
against an app that shows nothing before it is signed in to, the way its clients' apps are.

Two steps, as in most products: e-mail and password, then a code from an authenticator app (TOTP). Each form
carries a CSRF token, an HMAC of a random pre-session cookie under a key the server makes at start. The
half-signed-in states, the sessions and the codes already used live in this process's memory. Every page but the
sign-in's own needs a session; static assets do not (the sign-in page needs style.css).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import re
import secrets
import threading
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp

SESSION_COOKIE = "acme_session"
PENDING_COOKIE = "acme_pending"  # password right, code still to come
PRESESSION_COOKIE = "acme_presession"  # what the forms' CSRF tokens are bound to

MAX_FORM_BYTES = 8 * 1024
SESSION_TTL_S = 12 * 3600
PENDING_TTL_S = 5 * 60
# verify(valid_window=1) takes the codes of the steps before and after the current one: a code is valid for
# three 30 s steps at most, so remembering an accepted one that long refuses every replay.
USED_CODE_TTL_S = 3 * 30
# Served without a session. Anything else (pages, directories, the app's own source) needs one.
PUBLIC_SUFFIXES = frozenset({".css", ".js", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".woff2"})

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class SignIn:
    """The one account that can sign in: e-mail, password and authenticator seed (base32). With ``redirect_to``
    the sign-in page sends the browser there instead (to test that a recorder types no secret on another origin)."""

    email: str
    password: str = field(repr=False)
    totp_seed: str = field(repr=False)
    redirect_to: str | None = None

    def __post_init__(self) -> None:
        if not (self.email and self.password and self.totp_seed):
            raise ValueError("a sign-in needs an e-mail, a password and a TOTP seed")
        try:
            pyotp.TOTP(self.totp_seed)  # decodes the seed
        except ValueError as exc:  # binascii.Error is one
            raise ValueError(f"the TOTP seed must be base32, of 112 bits at least ({exc})") from exc


class _Expiring:
    """Keys forgotten after a time. Thread-safe: the server answers each request on its own thread."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._until: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; False if it was remembered already (checked and added at once, so only one wins)."""
        now = time.monotonic()
        with self._lock:
            self._until = {k: until for k, until in self._until.items() if until > now}
            if key in self._until:
                return False
            self._until[key] = now + self._ttl_s
            return True

    def issue(self) -> str:
        """A new random token, remembered."""
        token = secrets.token_urlsafe(32)
        self.add(token)
        return token

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return self._until.get(key, 0.0) > time.monotonic()

    def live(self) -> list[Hashable]:
        """The keys remembered now."""
        now = time.monotonic()
        with self._lock:
            return [key for key, until in self._until.items() if until > now]

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._until.pop(key, None)


class Gate:
    """One server's sign-in: the account, the CSRF key made at start, and what the server remembers."""

    def __init__(self, signin: SignIn) -> None:
        self.signin = signin
        self._key = secrets.token_bytes(32)
        self.pending = _Expiring(PENDING_TTL_S)
        self.sessions = _Expiring(SESSION_TTL_S)
        self._used_codes = _Expiring(USED_CODE_TTL_S)

    def csrf_token(self, presession: str) -> str:
        return hmac.new(self._key, presession.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, presession: str, token: str) -> bool:
        return bool(presession) and hmac.compare_digest(self.csrf_token(presession).encode(), token.encode())

    def password_ok(self, email: str, password: str) -> bool:
        # Both compared every time, with compare_digest: the timing of the answer tells neither which was wrong.
        email_ok = hmac.compare_digest(email.encode(), self.signin.email.encode())
        password_ok = hmac.compare_digest(password.encode(), self.signin.password.encode())
        return email_ok and password_ok

    def code_ok(self, code: str) -> bool:
        """The code is the authenticator's now, and has not been accepted before."""
        seed = self.signin.totp_seed
        if not _CODE.fullmatch(code) or not pyotp.TOTP(seed).verify(code, valid_window=1):
            return False
        return self._used_codes.add((seed, code))


def local_path(target: str) -> str | None:
    """``target`` if it is a path on this site, else None. A path starts with one "/": "//host" and "/\\host" are
    other origins to a browser, and so is anything with a scheme (which can not start with "/"). Spaces and control
    characters (which browsers strip, and which would break the Location header) and non-ASCII are refused too."""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if not all("!" <= char <= "~" for char in target):
        return None
    return target


def _cookie(name: str, value: str, *, max_age: int | None = None) -> str:
    attributes = f"{name}={value}; Path=/; HttpOnly; SameSite=Lax"
    return attributes if max_age is None else f"{attributes}; Max-Age={max_age}"


def _expired(name: str) -> str:
    return _cookie(name, "", max_age=0)


class SignInHandler(SimpleHTTPRequestHandler):
    """The app behind its sign-in: the sign-in's pages and sign-out are answered here, assets and (with a session)
    pages by the file server. ``sampleapp.serve`` puts its quiet, no-store handler under it."""

    def __init__(self, *args: Any, gate: Gate, **kwargs: Any) -> None:
        self.gate = gate  # before super().__init__, which handles the request
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        if not self._answered():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._answered():
            super().do_HEAD()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/signin":
            self._post_password()
        elif path == "/signin/code":
            self._post_code()
        else:
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)

    def _answered(self) -> bool:
        """Answer a GET or HEAD that the sign-in owns; False leaves it to the file server."""
        path = urlsplit(self.path).path
        if path == "/signin":
            self._get_password()
        elif path == "/signin/code":
            self._get_code()
        elif path == "/signout":
            self._signout()
        elif not self._public() and not self._signed_in():
            self._redirect("/signin?" + urlencode({"next": self._here()}))
        else:
            return False
        return True

    # The two steps.

    def _get_password(self) -> None:
        if self.gate.signin.redirect_to:
            self._redirect(self.gate.signin.redirect_to, HTTPStatus.FOUND)
        elif self._signed_in():
            self._redirect(self._next() or "/")
        else:
            self._password_form(HTTPStatus.OK)

    def _checked_form(self) -> dict[str, str] | None:
        """The posted form, once its body and CSRF token are good; None when it was answered already."""
        fields = self._form_fields()
        if fields is None:
            return None
        if not self._csrf_ok(fields):
            self._forbidden()
            return None
        return fields

    def _post_password(self) -> None:
        fields = self._checked_form()
        if fields is None:
            return
        email = fields.get("email", "").strip()
        if not self.gate.password_ok(email, fields.get("password", "")):
            self._password_form(HTTPStatus.UNAUTHORIZED, email=email, error="Wrong e-mail or password.")
            return
        pending = self.gate.pending.issue()
        self._redirect(self._with_next("/signin/code"), cookies=[_cookie(PENDING_COOKIE, pending)])

    def _get_code(self) -> None:
        if self._pending() is None:
            self._redirect(self._with_next("/signin"))
        else:
            self._code_form(HTTPStatus.OK)

    def _post_code(self) -> None:
        fields = self._checked_form()
        if fields is None:
            return
        pending = self._pending()
        if pending is None:
            self._redirect(self._with_next("/signin"))
            return
        if not self.gate.code_ok(fields.get("code", "").replace(" ", "")):
            self._code_form(HTTPStatus.UNAUTHORIZED, error="That code is not valid.")
            return
        self.gate.pending.discard(pending)
        session = self.gate.sessions.issue()
        self._redirect(self._next() or "/", cookies=[_cookie(SESSION_COOKIE, session), _expired(PENDING_COOKIE)])

    def _signout(self) -> None:
        self.gate.sessions.discard(self._cookies().get(SESSION_COOKIE, ""))
        self._redirect("/signin", cookies=[_expired(SESSION_COOKIE)])

    # What the request carries.

    def _cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                jar.setdefault(name, value)
        return jar

    def _signed_in(self) -> bool:
        return self._cookies().get(SESSION_COOKIE, "") in self.gate.sessions

    def _pending(self) -> str | None:
        pending = self._cookies().get(PENDING_COOKIE, "")
        return pending if pending in self.gate.pending else None

    def _public(self) -> bool:
        # The path the file server would open ("..", quoting and the query resolved), not the raw one.
        return os.path.splitext(self.translate_path(self.path))[1].lower() in PUBLIC_SUFFIXES

    def _here(self) -> str:
        url = urlsplit(self.path)
        return f"{url.path}?{url.query}" if url.query else url.path

    def _next(self) -> str | None:
        return local_path(parse_qs(urlsplit(self.path).query).get("next", [""])[0])

    def _with_next(self, path: str) -> str:
        target = self._next()
        return f"{path}?{urlencode({'next': target})}" if target else path

    def _form_fields(self) -> dict[str, str] | None:
        """The posted form's fields (the first of each), or None once the request was refused."""
        content_type = self.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse(HTTPStatus.LENGTH_REQUIRED)
            return None
        if length > MAX_FORM_BYTES:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return None
        if length < 0:
            self._refuse(HTTPStatus.BAD_REQUEST)
            return None
        try:
            parsed = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True, max_num_fields=10)
        except ValueError:  # not UTF-8 (UnicodeDecodeError is one), or too many fields
            self._refuse(HTTPStatus.BAD_REQUEST)
            return None
        return {name: values[0] for name, values in parsed.items()}

    def _csrf_ok(self, fields: dict[str, str]) -> bool:
        return self.gate.csrf_ok(self._cookies().get(PRESESSION_COOKIE, ""), fields.get("csrf", ""))

    def _presession(self) -> tuple[str, list[str]]:
        """The pre-session cookie's value, and the Set-Cookie that makes a new one when there is none."""
        presession = self._cookies().get(PRESESSION_COOKIE, "")
        if _TOKEN.fullmatch(presession):
            return presession, []
        presession = secrets.token_urlsafe(32)
        return presession, [_cookie(PRESESSION_COOKIE, presession)]

    # Answers.

    def _password_form(self, status: HTTPStatus, *, email: str = "", error: str | None = None) -> None:
        presession, cookies = self._presession()
        page = password_page(action=self._with_next("/signin"), csrf=self.gate.csrf_token(presession),
                             email=email, error=error)
        self._send(status, page, cookies=cookies)

    def _code_form(self, status: HTTPStatus, *, error: str | None = None) -> None:
        presession, cookies = self._presession()
        page = code_page(action=self._with_next("/signin/code"), csrf=self.gate.csrf_token(presession), error=error)
        self._send(status, page, cookies=cookies)

    def _forbidden(self) -> None:
        self._send(HTTPStatus.FORBIDDEN, forbidden_page())

    def _refuse(self, status: HTTPStatus) -> None:
        self.close_connection = True  # the body was not read: it must not be taken for the next request
        self.send_error(status)

    def _redirect(self, location: str, status: HTTPStatus = HTTPStatus.SEE_OTHER, *,
                  cookies: Iterable[str] = ()) -> None:
        self._send(status, "", headers=[("Location", location)], cookies=cookies)

    def _send(self, status: HTTPStatus, page: str, *, headers: Iterable[tuple[str, str]] = (),
              cookies: Iterable[str] = ()) -> None:
        body = page.encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        if body:
            self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# The pages: the app's own style.css, and a centred card like a real product's sign-in.

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Orbit · {title}</title>
<link rel="stylesheet" href="/style.css">
<style>
  .signin {{ max-width: 460px; padding-top: 72px; }}
  .signin .brand {{ justify-content: center; margin-bottom: 24px; }}
  .signin .card {{ padding: 32px; }}
  .signin .sub {{ margin-bottom: 8px; }}
  .signin label {{ display: block; font-size: 14px; font-weight: 600; margin-top: 20px; }}
  .signin .field {{ width: 100%; }}
  .signin .btn {{ width: 100%; justify-content: center; margin-top: 28px; }}
  .signin .error {{ background: #fef3f2; color: #b42318; border-radius: 8px; padding: 10px 12px; font-size: 14px;
    margin: 16px 0 0; }}
  .signin .foot {{ text-align: center; color: var(--muted); font-size: 13px; margin-top: 20px; }}
</style>
</head>
<body id="signin-page">
<main class="signin">
  <div class="brand"><span class="logo"></span>Orbit</div>
  <div class="card">
{content}
  </div>
  <p class="foot">Acme workspace · secured by Orbit</p>
</main>
</body>
</html>
"""


def _page(title: str, content: str) -> str:
    return _PAGE.format(title=html.escape(title), content=content)


def _error(error: str | None) -> str:
    return f'    <p class="error" role="alert" id="signin-error">{html.escape(error)}</p>\n' if error else ""


def password_page(*, action: str, csrf: str, email: str = "", error: str | None = None) -> str:
    """The first step; the e-mail may be refilled, the password never is."""
    return _page("Sign in", f"""    <h1>Sign in</h1>
    <p class="sub">to your Acme workspace</p>
{_error(error)}    <form method="post" action="{html.escape(action)}">
      <input type="hidden" name="csrf" value="{html.escape(csrf)}">
      <label for="email">E-mail</label>
      <input class="field" id="email" name="email" type="email" autocomplete="username" required
             value="{html.escape(email)}">
      <label for="password">Password</label>
      <input class="field" id="password" name="password" type="password" autocomplete="current-password" required>
      <button class="btn" type="submit" id="signin">Sign in</button>
    </form>""")


def code_page(*, action: str, csrf: str, error: str | None = None) -> str:
    """The second step: the code from the authenticator app."""
    return _page("Verify", f"""    <h1>Enter your code</h1>
    <p class="sub">Open your authenticator app and enter the 6-digit code for Acme.</p>
{_error(error)}    <form method="post" action="{html.escape(action)}">
      <input type="hidden" name="csrf" value="{html.escape(csrf)}">
      <label for="code">Code</label>
      <input class="field" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required
             pattern="[0-9 ]*" maxlength="7">
      <button class="btn" type="submit" id="verify">Verify</button>
    </form>""")


def forbidden_page() -> str:
    return _page("Sign in", """    <h1>Form not accepted</h1>
    <p class="sub">This form was not sent from this site's sign-in page, or its cookie is gone (cookies are off, or
      the app restarted), so nothing was done.</p>
    <a class="btn" href="/signin">Sign in again</a>""")
