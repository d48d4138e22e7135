"""``/v1/credentials``: a client stores, lists, reads, re-scopes, rotates and deletes credentials; every
answer is metadata, every bad input a 400 naming the field, and another client's credential does not exist."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyotp
import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from credentials.models import Credential, CredentialAudit
from credentials.selectors import credential_values
from credentials.tasks import credential_audit_purge
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db

SEED = pyotp.random_base32()


def body(**changes: Any) -> dict[str, Any]:
    return {"name": "Staging admin", "origins": ["https://app.example.com", "http://127.0.0.1:8000"],
            "values": {"username": "ada@example.com", "password": "correct horse battery staple", "totp": SEED},
            **changes}


def _create(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    response = tenant.api.post("/v1/credentials", body(**changes), format="json")
    assert response.status_code == 201, response.json()
    return dict(response.json())


def test_a_credential_is_stored_sealed_and_shown_as_metadata_only(tenant: Tenant) -> None:
    made = _create(tenant)
    assert made["id"].startswith("cred_") and made["object"] == "credential"
    assert made["origins"] == ["https://app.example.com", "http://127.0.0.1:8000"]
    assert made["fields_set"] == ["username", "password", "totp"]
    assert set(made) == {"id", "object", "name", "origins", "fields_set", "storage_state_expires_at",
                         "storage_state_dropped", "created_at", "updated_at", "rotated_at", "last_used_at"}
    row = Credential.objects.get(pk=made["id"])
    assert "correct horse" not in row.values_sealed and SEED not in row.values_sealed
    assert credential_values(row) == body()["values"]
    assert tenant.api.get(f"/v1/credentials/{made['id']}").json() == made
    listed = tenant.api.get("/v1/credentials").json()
    assert [c["id"] for c in listed["results"]] == [made["id"]]
    assert list(CredentialAudit.objects.values_list("action", "actor", "fields")) == [
        ("created", "api", ["username", "password", "totp"])]


def test_another_clients_credential_does_not_exist(tenant: Tenant, other_tenant: Tenant) -> None:
    made = _create(tenant)
    for call in (lambda: other_tenant.api.get(f"/v1/credentials/{made['id']}"),
                 lambda: other_tenant.api.patch(f"/v1/credentials/{made['id']}", {"name": "x"}, format="json"),
                 lambda: other_tenant.api.delete(f"/v1/credentials/{made['id']}"),
                 lambda: other_tenant.api.post(f"/v1/credentials/{made['id']}/rotate", {"values": {"password": "p"}},
                                               format="json")):
        response = call()
        assert response.status_code == 404 and response.json()["error"]["code"] == "credential_not_found"
    assert other_tenant.api.get("/v1/credentials").json()["results"] == []
    assert Credential.objects.filter(pk=made["id"], name="Staging admin").exists()


@pytest.mark.parametrize(("changes", "field", "code"), [
    ({"origins": []}, "origins", "min_length"),
    ({"origins": ["https://app.example.com/login"]}, "origins[0]", "invalid_origin"),
    ({"origins": ["HTTPS://App.example.com"]}, "origins[0]", "invalid_origin"),
    ({"origins": ["https://app.example.com:443"]}, "origins[0]", "invalid_origin"),
    ({"origins": ["ftp://app.example.com"]}, "origins[0]", "invalid_origin"),
    ({"origins": ["https://a.example.com", "https://a.example.com"]}, "origins", "duplicate_origin"),
    ({"values": {}}, "values", "no_values"),
    ({"values": {"password": 12345}}, "values.password", "invalid_type"),
    ({"values": {"totp": "not a seed!"}}, "values.totp", "invalid_totp_seed"),
    ({"origins": ["https://app.example.com\n"]}, "origins[0]", "invalid_origin"),
    ({"origins": [" https://app.example.com"]}, "origins[0]", "invalid_origin"),
    ({"values": {"totp": "JBSWY3DPEHPK3PXP "}}, "values.totp", "invalid_totp_seed"),
    ({"values": {"headers": {"Host": "evil.example"}}}, "values.headers", "forbidden_header"),
    ({"values": {"headers": {"x-token": "a\r\nSet-Cookie: x=1"}}}, "values.headers", "invalid_header_value"),
    ({"values": {"headers": {"x-token\n": "v"}}}, "values.headers", "invalid_header_name"),
    ({"values": {"headers": {"X-Token": "v"}}}, "values.headers", "invalid_header_name"),
    ({"values": {"http_basic": {"username": "a:b", "password": "p"}}}, "values.http_basic.username", "invalid"),
    ({"values": {"http_basic": {"username": " ", "password": "p"}}}, "values.http_basic.username", "blank"),
    ({"values": {"pasword": "typo"}}, "values.pasword", "unknown_field"),
    ({"values": {"password": "p\x00"}}, "values.password", "null_characters_not_allowed"),
    ({"values": {"password": "   "}}, "values.password", "blank"),
    ({"storage_state_expires_at": "2030-01-01T00:00:00Z"}, "storage_state_expires_at", "unknown_field"),
])
def test_bad_input_is_a_400_naming_the_field_and_never_repeating_a_value(
        tenant: Tenant, changes: dict[str, Any], field: str, code: str) -> None:
    response = tenant.api.post("/v1/credentials", body(**changes), format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert {"field": field, "code": code} in [{"field": f["field"], "code": f["code"]}
                                             for f in error["details"]["fields"]], error
    for secret in ("a\r\nSet-Cookie", "not a seed!", "evil.example", "typo", "12345", "JBSWY3DPEHPK3PXP"):
        assert secret not in response.content.decode()
    assert not Credential.objects.exists() and not CredentialAudit.objects.exists()


def test_input_that_breaks_parsers_is_a_400_not_a_server_error(tenant: Tenant) -> None:
    surrogate = tenant.api.post("/v1/credentials", data='{"name": "a", "origins": ["https://a.example"], '
                                '"values": {"\\ud800": 1}}', content_type="application/json")
    assert surrogate.status_code == 400
    assert surrogate.json()["error"]["details"]["fields"][0]["code"] == "unknown_field"
    deep = tenant.api.post("/v1/credentials", data="[" * 200_000 + "]" * 200_000, content_type="application/json")
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "malformed_json"
    listed = tenant.api.patch("/v1/credentials/cred_x", data="[1]", content_type="application/json")
    assert listed.status_code == 404  # the credential first: another client's id and a bad body look alike
    made = _create(tenant)
    for path, method in ((f"/v1/credentials/{made['id']}", tenant.api.patch),
                         (f"/v1/credentials/{made['id']}/rotate", tenant.api.post)):
        refused = method(path, data="[1]", content_type="application/json")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_body"
    same_site = tenant.api.post("/v1/credentials", body(values={"storage_state": {**_state(), "cookies": [
        {"name": "s", "value": "v", "domain": "app.example.com", "sameSite": "s3cr3t-ch01ce"}]}}), format="json")
    assert same_site.status_code == 400 and "s3cr3t-ch01ce" not in same_site.content.decode()


def _state(domain: str = "app.example.com", origin: str = "https://app.example.com",
           expires_at: Any = "soon") -> dict[str, Any]:
    if expires_at == "soon":
        expires_at = (timezone.now() + timedelta(days=7)).isoformat()
    return {"expires_at": expires_at,
            "cookies": [{"name": "sessionid", "value": "s3ss10n-v4lue", "domain": domain, "path": "/",
                         "expires": -1, "httpOnly": True, "secure": True, "sameSite": "Lax"}],
            "origins": [{"origin": origin, "localStorage": [{"name": "token", "value": "t0k3n"}]}]}


def test_a_storage_state_keeps_only_its_origins_and_at_most_30_days(tenant: Tenant) -> None:
    # An exported session carries other sites' cookies: those are not stored, and the answer says so.
    state = _state(domain=".example.com")
    state["cookies"].append({"name": "_ga", "value": "tracker-v4lue", "domain": ".google-analytics.test"})
    state["cookies"].append({"name": "x", "value": "near-v4lue", "domain": "example.com.evil.test"})
    state["cookies"].append({"name": "y", "value": "tld-v4lue", "domain": ".com"})
    state["origins"].append({"origin": "https://evil.example", "localStorage": [{"name": "k", "value": "far-v4lue"}]})
    made = _create(tenant, values={"storage_state": state})
    assert made["fields_set"] == ["storage_state"]
    assert made["storage_state_dropped"] == {"cookies": 3, "cookie_domains": [".com", ".google-analytics.test",
                                                                               "example.com.evil.test"],
                                             "local_storage_origins": 1}
    stored = credential_values(Credential.objects.get(pk=made["id"]))["storage_state"]
    assert [c["value"] for c in stored["cookies"]] == ["s3ss10n-v4lue"]
    assert [o["origin"] for o in stored["origins"]] == ["https://app.example.com"]

    # An expiry past 30 days is shortened to 30 days; one in the past is kept (the session will not be used).
    later = (timezone.now() + timedelta(days=90)).isoformat()
    far = _create(tenant, values={"storage_state": _state(expires_at=later)})
    expires = datetime.fromisoformat(far["storage_state_expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=29, hours=23) < expires - timezone.now() <= timedelta(days=30)
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    past = _create(tenant, values={"storage_state": _state(expires_at=yesterday)})
    assert datetime.fromisoformat(past["storage_state_expires_at"].replace("Z", "+00:00")) < timezone.now()
    null = tenant.api.post("/v1/credentials", body(values={"storage_state": _state(expires_at=None)}), format="json")
    assert null.status_code == 400 and null.json()["error"]["details"]["fields"][0]["field"] == \
        "values.storage_state.expires_at"

    # New origins that leave the session's cookies out delete them with the old origins.
    patched = tenant.api.patch(f"/v1/credentials/{made['id']}", {"origins": ["https://other.test"]}, format="json")
    assert patched.status_code == 200, patched.json()
    assert patched.json()["storage_state_dropped"]["cookies"] == 1
    assert credential_values(Credential.objects.get(pk=made["id"]))["storage_state"]["cookies"] == []


def test_patch_renames_and_rescopes_rotate_replaces_every_value_delete_is_audited(tenant: Tenant) -> None:
    made = _create(tenant)
    patched = tenant.api.patch(f"/v1/credentials/{made['id']}",
                               {"name": "Prod", "origins": ["https://app.example.com"]}, format="json")
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["name"], patched.json()["origins"]) == ("Prod", ["https://app.example.com"])
    assert tenant.api.patch(f"/v1/credentials/{made['id']}", {}, format="json").status_code == 200  # no audit
    refused = tenant.api.patch(f"/v1/credentials/{made['id']}", {"values": {"password": "x"}}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["details"]["fields"][0]["code"] == "unknown_field"

    rotated = tenant.api.post(f"/v1/credentials/{made['id']}/rotate", {"values": {"password": "n3w-p4ss"}},
                              format="json")
    assert rotated.status_code == 200, rotated.json()
    assert rotated.json()["fields_set"] == ["password"] and rotated.json()["rotated_at"] is not None
    assert credential_values(Credential.objects.get(pk=made["id"])) == {"password": "n3w-p4ss"}

    assert tenant.api.delete(f"/v1/credentials/{made['id']}").status_code == 204
    assert tenant.api.get(f"/v1/credentials/{made['id']}").status_code == 404
    assert tenant.api.delete(f"/v1/credentials/{made['id']}").status_code == 404
    assert list(CredentialAudit.objects.order_by("id").values_list("credential_id", "action", "actor")) == [
        (made["id"], action, "api") for action in ("created", "updated", "rotated", "deleted")]


def test_a_client_stores_at_most_its_cap(tenant: Tenant, settings: SettingsWrapper) -> None:
    settings.SCREENREEL_CLIENT_MAX_CREDENTIALS = 2
    _create(tenant)
    _create(tenant, name="Second")
    response = tenant.api.post("/v1/credentials", body(name="Third"), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "too_many_credentials"
    assert response.json()["error"]["details"] == {"limit": 2}
    tenant.client.max_credentials = 3
    tenant.client.save()
    assert tenant.api.post("/v1/credentials", body(name="Third"), format="json").status_code == 201


def test_deleting_a_client_deletes_its_credentials(tenant: Tenant) -> None:
    made = _create(tenant)
    tenant.client.delete()
    assert not Credential.objects.filter(pk=made["id"]).exists()


def test_audit_rows_older_than_the_window_are_purged_by_beat(tenant: Tenant, settings: SettingsWrapper) -> None:
    made = _create(tenant)
    tenant.api.post(f"/v1/credentials/{made['id']}/rotate", {"values": {"password": "p2"}}, format="json")
    settings.SCREENREEL_CREDENTIAL_AUDIT_DAYS = 30
    CredentialAudit.objects.filter(action="created").update(at=timezone.now() - timedelta(days=31))
    assert credential_audit_purge.apply().get() == 1
    assert list(CredentialAudit.objects.values_list("action", flat=True)) == ["rotated"]
    assert credential_audit_purge.apply().get() == 0
