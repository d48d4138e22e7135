"""A credential's values are nowhere but in their sealed column: not in an API response (errors included),
a log line at any level, an admin page (operator and viewer alike), or the database in clear (a real
``pg_dump``). And the key they are sealed with can be rotated: the old key can then go."""

from __future__ import annotations

import io
import logging
import secrets
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client as Browser
from django.utils import timezone

from credentials.models import Credential
from credentials.selectors import credential_values
from tests.conftest import Tenant
from tests.processes import pg_dump

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump reads what is committed


def _values() -> dict[str, Any]:
    token = secrets.token_hex(6)
    return {
        "username": f"user-{token}@example.com",
        "password": f"pw-{token}-Secret!",
        "totp": pyotp.random_base32(),
        "headers": {"x-preview-token": f"hdr-{token}"},
        "http_basic": {"username": f"basic-{token}", "password": f"basicpw-{token}"},
        "storage_state": {
            "expires_at": (timezone.now() + timedelta(days=3)).isoformat(),
            "cookies": [{"name": "sessionid", "value": f"cookie-{token}", "domain": "app.example.com"}],
            "origins": [{"origin": "https://app.example.com",
                         "localStorage": [{"name": "token", "value": f"local-{token}"}]}]},
    }


def _secrets_of(values: dict[str, Any]) -> list[str]:
    state = values["storage_state"]
    return [values["username"], values["password"], values["totp"], values["headers"]["x-preview-token"],
            values["http_basic"]["username"], values["http_basic"]["password"], state["cookies"][0]["value"],
            state["origins"][0]["localStorage"][0]["value"]]


def _staff(name: str, group: str) -> Browser:
    user = User.objects.create_user(name, f"{name}@example.com", "pw", is_staff=True)
    user.groups.set(Group.objects.filter(name=group))
    browser = Browser()
    browser.force_login(user)
    return browser


def test_no_value_is_in_a_response_a_log_an_admin_page_or_the_database(
        tenant: Tenant, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first, second = _values(), _values()
    seen: list[str] = []

    def call(response: Any, status: int) -> Any:
        assert response.status_code == status, response.content[:500]
        seen.append(response.content.decode())
        return response

    made = call(tenant.api.post("/v1/credentials", {"name": "Staging", "origins": ["https://app.example.com"],
                                                    "values": first}, format="json"), 201).json()
    cred = f"/v1/credentials/{made['id']}"
    call(tenant.api.get(cred), 200)
    call(tenant.api.get("/v1/credentials"), 200)
    call(tenant.api.patch(cred, {"name": "Staging (EU)"}, format="json"), 200)
    call(tenant.api.post(f"{cred}/rotate", {"values": second}, format="json"), 200)
    # Refused input that carries a secret: in a field that refuses it, or beside a typo.
    call(tenant.api.post("/v1/credentials", {"name": "Bad", "origins": ["https://app.example.com"],
                                             "values": {"totp": first["password"]}}, format="json"), 400)
    call(tenant.api.post("/v1/credentials", {"name": "Bad", "origins": ["https://app.example.com"],
                                             "values": {"password": first["password"], "pasword": second["password"]}},
                         format="json"), 400)
    call(tenant.api.post("/v1/credentials", {"name": "Bad", "origins": ["https://app.example.com"],
                                             "values": {"headers": {"x-token": first["password"] + "\r\n"}}},
                         format="json"), 400)
    call(tenant.api.post("/v1/credentials", {"name": "Bad", "origins": ["https://app.example.com"], "values": {
        "storage_state": {**second["storage_state"], "expires_at": first["password"]}}}, format="json"), 400)

    credential = Credential.objects.get(pk=made["id"])
    assert credential_values(credential)["password"] == second["password"]  # the values are there, sealed
    operator, viewer = _staff("otto", "operators"), _staff("vera", "viewers")
    for browser in (operator, viewer):
        for page in ("/admin/credentials/credential/", f"/admin/credentials/credential/{made['id']}/change/",
                     f"/admin/credentials/credential/{made['id']}/history/", "/admin/credentials/credentialaudit/",
                     f"/admin/jobs/client/{tenant.client.pk}/change/"):
            call(browser.get(page), 200)
    call(operator.post("/admin/credentials/credential/", {"action": "reseal", "_selected_action": [made["id"]]}), 302)
    call(operator.post("/admin/credentials/credential/", {"action": "revoke", "_selected_action": [made["id"]]}), 200)

    dump = pg_dump()
    assert "Staging (EU)" in dump and Credential.objects.get().values_sealed in dump  # it holds the table
    logs = caplog.text
    assert "Bad Request: /v1/credentials" in logs  # the refusals were logged: the search below reads them
    for value in _secrets_of(first) + _secrets_of(second):
        assert not [text for text in seen if value in text], value
        assert value not in logs
        assert value not in dump


@pytest.fixture
def keys(settings: Any) -> tuple[str, str]:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SCREENREEL_ENCRYPTION_KEYS = [old]
    return old, new


def test_a_new_key_reseals_every_credential_and_the_old_key_can_then_go(
        keys: tuple[str, str], settings: Any, tenant: Tenant) -> None:
    old, new = keys
    values = _values()
    made = tenant.api.post("/v1/credentials", {"name": "Staging", "origins": ["https://app.example.com"],
                                               "values": values}, format="json").json()
    before = Credential.objects.get(pk=made["id"]).values_sealed

    settings.SCREENREEL_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("encryption_rotate", stdout=out)
    assert "credentials.Credential.values_sealed: 1 re-sealed" in out.getvalue()
    after = Credential.objects.get(pk=made["id"]).values_sealed
    assert after != before

    settings.SCREENREEL_ENCRYPTION_KEYS = [new]  # the old key dropped: the credential still opens
    stored = credential_values(Credential.objects.get(pk=made["id"]))
    assert stored["password"] == values["password"] and stored["totp"] == values["totp"]
    assert tenant.api.get(f"/v1/credentials/{made['id']}").json()["fields_set"] == [
        "username", "password", "totp", "headers", "http_basic", "storage_state"]

    settings.SCREENREEL_ENCRYPTION_KEYS = [old]  # and the old key alone no longer does
    from jobs.lib.keys.crypto import SealError
    with pytest.raises(SealError):
        credential_values(Credential.objects.get(pk=made["id"]))
