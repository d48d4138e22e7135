"""A demo's deploy hook: a secret URL that refreshes the demo on POST (Zapier, Make, n8n, a GitHub webhook).
Its token is shown once and kept as a hash; rotating it stops the old URL; with a GitHub secret, only a
delivery GitHub signed (X-Hub-Signature-256, computed here with hmac as GitHub documents it) refreshes, and a
redelivery (the same X-GitHub-Delivery) makes no second version."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client as HttpClient
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from demos.models import DemoVersion, DeployHook
from tests.conftest import VALID_SPEC, Tenant

pytestmark = pytest.mark.django_db

GITHUB_SECRET = "It's a Secret to Everybody"  # GitHub's own example secret in its webhook docs


def _demo(tenant: Tenant) -> str:
    made = tenant.api.post("/v1/demos", {"name": "Onboarding", "spec": copy.deepcopy(VALID_SPEC)}, format="json")
    return str(made.json()["id"])


def _hook(tenant: Tenant, demo_id: str, **body: Any) -> str:
    made = tenant.api.post(f"/v1/demos/{demo_id}/deploy-hook", body, format="json")
    assert made.status_code == 201, made.json()
    return urlsplit(made.json()["url"]).path


def _call(path: str, body: bytes = b"", **headers: str) -> Any:
    content_type = headers.pop("content_type", "application/json")
    extra: dict[str, Any] = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return APIClient().generic("POST", path, body, content_type=content_type, **extra)  # type: ignore[arg-type]


def _signed(body: bytes, secret: str = GITHUB_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_hook_refreshes_on_post_and_its_url_is_shown_once(tenant: Tenant) -> None:
    demo_id = _demo(tenant)
    path = _hook(tenant, demo_id)
    assert path.startswith("/v1/hooks/dh_")
    token = path.rsplit("/", 1)[1]
    shown = tenant.api.get(f"/v1/demos/{demo_id}").json()
    assert shown["deploy_hook"]["github_secret_set"] is False and token not in json.dumps(shown)
    assert token not in str(DeployHook.objects.values_list())  # kept as a hash
    called = _call(path, json.dumps({"ref": "v2.5.0"}).encode())
    assert called.status_code == 202, called.json()
    version = called.json()["version"]
    assert (version["number"], version["ref"], version["trigger"]) == (1, "v2.5.0", "hook")
    assert _call(path).json()["version"]["ref"] == ""  # an empty body: a refresh with no ref
    assert tenant.api.get(f"/v1/demos/{demo_id}").json()["deploy_hook"]["last_used_at"] is not None


def test_rotating_stops_the_old_url_and_deleting_stops_every_url(tenant: Tenant) -> None:
    demo_id = _demo(tenant)
    old = _hook(tenant, demo_id)
    new = _hook(tenant, demo_id)
    gone = _call(old)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "hook_not_found")
    assert _call(new).status_code == 202
    assert tenant.api.delete(f"/v1/demos/{demo_id}/deploy-hook").status_code == 204
    assert _call(new).status_code == 404
    assert tenant.api.delete(f"/v1/demos/{demo_id}/deploy-hook").status_code == 204  # idempotent
    for forged in ("/v1/hooks/dh_" + new.rsplit("_", 1)[1], new[:-2] + "xx", "/v1/hooks/x", "/v1/hooks/dh__"):
        assert _call(forged).status_code == 404
    assert DemoVersion.objects.count() == 1


def test_with_a_github_secret_only_what_github_signed_refreshes(tenant: Tenant) -> None:
    demo_id = _demo(tenant)
    path = _hook(tenant, demo_id, github_secret=GITHUB_SECRET)
    assert GITHUB_SECRET not in json.dumps(tenant.api.get(f"/v1/demos/{demo_id}").json())
    push = json.dumps({"ref": "refs/heads/main", "after": "9fceb02d0ae598e95dc970b74767f19372d61af8"}).encode()
    for signature in ("", _signed(push, "another secret"), _signed(push + b" "), "sha1=" + "0" * 40):
        refused = _call(path, push, x_github_event="push", x_hub_signature_256=signature)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "signature_invalid")
        assert GITHUB_SECRET not in refused.content.decode()
    assert not DemoVersion.objects.exists()

    ping = json.dumps({"zen": "Design for failure."}).encode()
    pinged = _call(path, ping, x_github_event="ping", x_hub_signature_256=_signed(ping))
    assert (pinged.status_code, pinged.json()) == (200, {"refreshed": False, "version": None})

    delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    made = _call(path, push, x_github_event="push", x_hub_signature_256=_signed(push), x_github_delivery=delivery)
    assert made.status_code == 202 and made.json()["version"]["ref"] == "9fceb02d0ae598e95dc970b74767f19372d61af8"
    again = _call(path, push, x_github_event="push", x_hub_signature_256=_signed(push), x_github_delivery=delivery)
    assert again.status_code == 200 and again.json()["version"]["number"] == 1  # GitHub redelivered it

    release = json.dumps({"action": "published", "release": {"tag_name": "v3.0.0"}}).encode()
    form = urlencode({"payload": release.decode()}).encode()  # GitHub's other content type
    tagged = _call(path, form, content_type="application/x-www-form-urlencoded", x_github_event="release",
                   x_hub_signature_256=_signed(form), x_github_delivery="other")
    assert tagged.status_code == 202 and tagged.json()["version"]["ref"] == "v3.0.0"
    assert DemoVersion.objects.count() == 2

    # One release sends created, published and released: only published refreshes; nor does a branch deleted.
    for event, payload in (("release", {"action": "created", "release": {"tag_name": "v4"}}),
                           ("release", {"action": "released", "release": {"tag_name": "v4"}}),
                           ("push", {"deleted": True, "after": "0" * 40}), ("issues", {"action": "opened"})):
        body = json.dumps(payload).encode()
        ignored = _call(path, body, x_github_event=event, x_hub_signature_256=_signed(body),
                        x_github_delivery=f"d-{event}-{payload.get('action')}")
        assert (ignored.status_code, ignored.json()["refreshed"]) == (200, False)
    long_delivery = _call(path, push, x_github_event="push", x_hub_signature_256=_signed(push),
                          x_github_delivery="d" * 250)
    assert (long_delivery.status_code, long_delivery.json()["error"]["code"]) == (400, "invalid_idempotency_key")
    assert DemoVersion.objects.count() == 2


@pytest.mark.parametrize(("body", "code"), [(b"{not json", "malformed_json"), (b'{"ref": 5}', "invalid_ref"),
                                            (json.dumps({"ref": "r" * 201}).encode(), "invalid_ref"),
                                            (b'{"ref": "\\ud800"}', "invalid_ref")])
def test_a_bad_body_is_a_400_and_makes_no_version(tenant: Tenant, body: bytes, code: str) -> None:
    path = _hook(tenant, _demo(tenant))
    refused = _call(path, body)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, code)
    assert not DemoVersion.objects.exists()


def test_another_client_cannot_make_or_delete_a_demos_hook(tenant: Tenant, other_tenant: Tenant) -> None:
    demo_id = _demo(tenant)
    path = _hook(tenant, demo_id)
    for response in (other_tenant.api.post(f"/v1/demos/{demo_id}/deploy-hook", {}, format="json"),
                     other_tenant.api.delete(f"/v1/demos/{demo_id}/deploy-hook")):
        assert (response.status_code, response.json()["error"]["code"]) == (404, "demo_not_found")
    assert _call(path).status_code == 202


def test_wrong_urls_from_one_address_get_429_but_the_right_one_never_does(tenant: Tenant,
                                                                           settings: SettingsWrapper) -> None:
    settings.SCREENREEL_WRONG_TOKEN_BURST, settings.SCREENREEL_WRONG_TOKEN_EVERY_S = 3, 60
    path = _hook(tenant, _demo(tenant))
    guesser, neighbour = (f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{n}" for n in (1, 2))
    wrong = path[:-4] + ("abcd" if not path.endswith("abcd") else "dcba")
    answers = [APIClient().post(wrong, REMOTE_ADDR=guesser) for _ in range(5)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429, 429]
    assert answers[3].json()["error"]["code"] == "rate_limited" and int(answers[3]["Retry-After"]) >= 1
    assert APIClient().post(path, REMOTE_ADDR=guesser).status_code == 202  # the right URL, from the same address
    assert APIClient().post(wrong, REMOTE_ADDR=neighbour).status_code == 404  # another address has its own tries
    # A share's page too: misses count on the same address, and refuse with the share's own page.
    share = tenant.api.post(f"/v1/demos/{_demo_named(tenant)}/shares", {}, format="json").json()
    refused = HttpClient().get(urlsplit(share["url"]).path[:-3] + "xyz", REMOTE_ADDR=guesser)
    assert refused.status_code == 429 and b'data-code="rate_limited"' in refused.content


def _demo_named(tenant: Tenant) -> str:
    made = tenant.api.post("/v1/demos", {"name": "Shared", "spec": copy.deepcopy(VALID_SPEC)}, format="json")
    return str(made.json()["id"])
