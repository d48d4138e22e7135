"""A demo's deploy hook (docs/demos.md, "Deploy hooks"): made and rotated, found by its URL's token, and the
request it gets read as a refresh: GitHub's signature checked when a secret is set, the ref and the delivery id
taken from GitHub's payloads, a ref from any other tool's JSON body.

The token is ``dh_<prefix>_<secret>``: the prefix finds the row, the whole token's SHA-256 must match, as for
API keys. A wrong token and a deleted hook answer alike (404): the URL is the credential.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.db import transaction
from django.utils import timezone

from demos.models import Demo, DeployHook
from demos.tokens import token_issue, token_matches, token_prefix
from jobs.lib.errors import DomainError, NotFound
from jobs.lib.keys.crypto import seal, unseal
from jobs.lib.rest import IDEMPOTENCY_KEY

TOKEN_PREFIX = "dh_"  # noqa: S105 (the tokens' marker, not a secret)
MAX_REF = 200


@dataclass(frozen=True)
class NewHook:
    hook: DeployHook
    token: str  # shown once, in the answer that made it


def deploy_hook_set(*, demo: Demo, github_secret: str | None) -> NewHook:
    """Make the demo's hook, or rotate it (a new URL; the old one stops at once). ``github_secret``: what GitHub
    signs its deliveries with; the hook then refuses any request it did not sign."""
    issued = token_issue(TOKEN_PREFIX)
    with transaction.atomic():
        Demo.objects.select_for_update(of=("self",)).filter(pk=demo.pk).first()  # two rotations at once: in turn
        DeployHook.objects.filter(demo=demo).delete()
        hook = DeployHook.objects.create(demo=demo, prefix=issued.prefix, token_hash=issued.digest,
                                         github_secret_sealed=seal(github_secret) if github_secret else "")
    return NewHook(hook=hook, token=issued.token)


def deploy_hook_delete(*, demo: Demo) -> bool:
    return DeployHook.objects.filter(demo=demo).delete()[0] > 0


def deploy_hook_find(token: str) -> DeployHook:
    """The hook the token names; NotFound for a token that names none (malformed, wrong, rotated, deleted)."""
    prefix = token_prefix(token, TOKEN_PREFIX)
    hook = None
    if prefix is not None:
        hook = DeployHook.objects.select_related("demo", "demo__client").filter(prefix=prefix).first()
    if hook is None or not token_matches(hook.token_hash, token):
        raise NotFound("No deploy hook has this URL: it was rotated or deleted, or it is mistyped.",
                       code="hook_not_found")
    return hook


@dataclass(frozen=True)
class HookCall:
    """What a POST to the hook asks for: a refresh (with a ref and a key making it once), or nothing (a ping)."""

    refresh: bool
    ref: str
    idempotency_key: str | None


def hook_call(hook: DeployHook, *, body: bytes, headers: Any) -> HookCall:
    """Read a POST to the hook. With a GitHub secret set, ``X-Hub-Signature-256`` must be its HMAC-SHA256 of the
    body as sent (401 signature_invalid otherwise, and nothing is read). GitHub's ``ping`` refreshes nothing;
    a ``push`` is its ``after`` commit, a ``release`` its tag; any other caller may send ``{"ref": "..."}``."""
    if hook.github_secret_sealed:
        given = headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(unseal(hook.github_secret_sealed).encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise DomainError("X-Hub-Signature-256 is missing or is not the HMAC-SHA256 of the body under this "
                              "hook's GitHub secret.", code="signature_invalid", status_code=401)
    event = headers.get("X-GitHub-Event", "")
    payload = _payload(body, headers.get("Content-Type", ""))
    if event and not _a_release(event, payload):
        # A ping, a branch deleted, an issue, a release only drafted: GitHub sends many; one refreshes.
        return HookCall(refresh=False, ref="", idempotency_key=None)
    delivery = headers.get("X-GitHub-Delivery", "")
    key = f"github:{delivery}" if delivery else headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise DomainError("Idempotency-Key (or X-GitHub-Delivery) must be 1 to 255 printable ASCII characters.",
                          code="invalid_idempotency_key")
    return HookCall(refresh=True, ref=_ref(event, payload), idempotency_key=key)


def _a_release(event: str, payload: dict[str, Any]) -> bool:
    """The GitHub deliveries that mean the app changed: a push that is not a branch's deletion, a release
    published."""
    if event == "push":
        return payload.get("deleted") is not True
    if event == "release":
        return payload.get("action") == "published"
    return False


def _payload(body: bytes, content_type: str) -> dict[str, Any]:
    """The body as a JSON object: as JSON, or GitHub's form encoding (payload=<json>); anything else is none."""
    text = body.decode("utf-8", "replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = (parse_qs(text).get("payload") or [""])[0]
    try:
        payload = json.loads(text) if text.strip() else {}
    except ValueError:
        raise DomainError("The body must be JSON (or empty).", code="malformed_json") from None
    return payload if isinstance(payload, dict) else {}


def _ref(event: str, payload: dict[str, Any]) -> str:
    if event == "push":
        ref = payload.get("after")
    elif event == "release":
        release = payload.get("release")
        ref = release.get("tag_name") if isinstance(release, dict) else None
    else:
        ref = payload.get("ref")
    if ref is None:
        return ""
    if not isinstance(ref, str) or len(ref) > MAX_REF or any(ch == "\x00" or 0xD800 <= ord(ch) <= 0xDFFF for ch in ref):
        raise DomainError(f"ref must be a string of at most {MAX_REF} characters.", code="invalid_ref")
    return ref


def deploy_hook_used(hook: DeployHook) -> None:
    DeployHook.objects.filter(pk=hook.pk).update(last_used_at=timezone.now())
