"""Webhook secrets at rest: sealed in every row (jobs.lib.keys.crypto), opened only to sign, re-sealed by
``manage.py encryption_rotate`` under a new key, and sealed by the migration where an older version
stored them in clear. Real PostgreSQL, real receivers, signatures checked by the standardwebhooks package."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from standardwebhooks.webhooks import Webhook

from jobs.lib.keys import crypto, signing
from jobs.models import Client, JobStatus
from jobs.services.transitions import job_transition
from tests.conftest import Tenant
from tests.factories import make_job
from tests.processes import ROOT
from tests.receivers import Receiver, receiver
from webhooks.models import Delivery, DeliveryStatus, Endpoint
from webhooks.services.deliveries import delivery_attempt

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def _tables_holding(needle: str) -> list[str]:
    """Every "table.column" of the database whose text (any text, varchar or JSON column) contains ``needle``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.table_name, c.column_name FROM information_schema.columns c "
                       "JOIN information_schema.tables t USING (table_schema, table_name) "
                       "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
                       "AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')")
        columns = cursor.fetchall()
        found = []
        for table, column in columns:
            q = connection.ops.quote_name
            sql = f"SELECT 1 FROM {q(table)} WHERE strpos({q(column)}::text, %s) > 0 LIMIT 1"  # noqa: S608
            cursor.execute(sql, [needle])
            if cursor.fetchone():
                found.append(f"{table}.{column}")
    return found


def _register(tenant: Tenant, url: str, **extra: Any) -> dict[str, Any]:
    response = tenant.api.post("/v1/webhook-endpoints", {"url": url, **extra}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _deliver_all() -> None:
    for delivery in Delivery.objects.filter(status=DeliveryStatus.PENDING):
        delivery_attempt(delivery_id=delivery.id)


def test_no_column_of_any_table_holds_a_webhook_secret_in_clear(tenant: Tenant, hook: Receiver,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first = _register(tenant, hook.url, event_types=["job.*"])["secret"]  # shown once, here
    rotated = tenant.api.post(f"/v1/webhook-endpoints/{Endpoint.objects.get().id}/rotate-secret", {}, format="json")
    assert rotated.status_code == 200
    second = rotated.json()["secret"]
    client_secret = tenant.client.webhook_secret  # printed once by create_client
    job = make_job(client=tenant.client, webhook_url=hook.url + "?job")
    job_transition(job_id=job.id, to=JobStatus.RUNNING)
    job_transition(job_id=job.id, to=JobStatus.FAILED)
    _deliver_all()

    # Every secret signs: the endpoint's new and, during the grace period, old one; the client's for the job's URL.
    to_endpoint = [r for r in hook.requests if r.path == "/hook"]
    [to_job_url] = [r for r in hook.requests if r.path == "/hook?job"]
    assert len(to_endpoint) == 3  # job.created, job.started, job.failed
    for request in to_endpoint:
        Webhook(second).verify(request.body, request.headers)
        Webhook(first).verify(request.body, request.headers)
    Webhook(client_secret).verify(to_job_url.body, to_job_url.headers)

    # The scan reaches the rows (the endpoint's URL and the client's name are found), and no secret is there.
    assert "webhooks_endpoint.url" in _tables_holding(hook.url)
    assert "jobs_client.name" in _tables_holding("Acme")
    for secret in (first, second, client_secret):
        for needle in (secret, secret.removeprefix("whsec_")):
            assert _tables_holding(needle) == [], needle
            assert needle not in caplog.text
    endpoint = Endpoint.objects.get()
    assert endpoint.secret_sealed.startswith("gAAAAA") and endpoint.previous_secret_sealed.startswith("gAAAAA")


@pytest.fixture
def keys(settings: Any) -> tuple[str, str]:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SCREENREEL_ENCRYPTION_KEYS = [old]
    return old, new


def _rotate() -> str:
    out = io.StringIO()
    call_command("encryption_rotate", "--batch", "2", stdout=out)  # batches of 2: three rows take two
    return out.getvalue()


def _sealed() -> list[str]:
    rows = [*Client.objects.values_list("webhook_secret_sealed", flat=True),
            *Endpoint.objects.values_list("secret_sealed", flat=True),
            *Endpoint.objects.exclude(previous_secret_sealed="").values_list("previous_secret_sealed", flat=True)]
    return sorted(rows)


def test_a_new_first_key_reseals_every_secret_once_and_the_old_key_can_go(keys: tuple[str, str], settings: Any,
                                                                           hook: Receiver) -> None:
    old, new = keys
    tenant = Tenant("Rotating")  # made under the old key
    created = _register(tenant, hook.url, event_types=["webhook.test"])
    previous = created["secret"]
    rotated = tenant.api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret", {}, format="json")
    current = rotated.json()["secret"]
    client_secret = tenant.client.webhook_secret
    before = _sealed()
    assert len(before) == 3

    settings.SCREENREEL_ENCRYPTION_KEYS = [new, old]  # step 1: the new key first, the old one still opens
    assert all(crypto.needs_rotation(token) for token in before)
    first_run = _rotate()
    assert "jobs.Client.webhook_secret_sealed: 1 re-sealed, 0 already under the first key, 0 unreadable" in first_run
    assert "webhooks.Endpoint.secret_sealed: 1 re-sealed" in first_run
    assert "webhooks.Endpoint.previous_secret_sealed: 1 re-sealed" in first_run
    after = _sealed()
    assert set(after).isdisjoint(before) and not any(crypto.needs_rotation(token) for token in after)
    second_run = _rotate()  # idempotent: nothing left to do, nothing changed
    assert "0 re-sealed" in second_run and "1 re-sealed" not in second_run
    assert _sealed() == after

    settings.SCREENREEL_ENCRYPTION_KEYS = [new]  # step 3: the old key dropped
    endpoint = Endpoint.objects.get()
    assert (endpoint.secret, endpoint.previous_secret) == (current, previous)
    assert Client.objects.get(pk=tenant.client.pk).webhook_secret == client_secret
    assert tenant.api.post(f"/v1/webhook-endpoints/{created['id']}/test").status_code == 202
    _deliver_all()
    [request] = hook.requests
    Webhook(current).verify(request.body, request.headers)
    Webhook(previous).verify(request.body, request.headers)


def test_a_value_no_key_opens_is_reported_by_row_and_left_as_it_was(keys: tuple[str, str], settings: Any) -> None:
    tenant = Tenant("Lost key")
    before = Client.objects.get(pk=tenant.client.pk).webhook_secret_sealed
    settings.SCREENREEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key that sealed it is gone
    out = io.StringIO()
    with pytest.raises(CommandError, match="could not be opened with any key"):
        call_command("encryption_rotate", stdout=out)
    assert f"no key opens the value of: {tenant.client.pk}" in out.getvalue()
    assert Client.objects.get(pk=tenant.client.pk).webhook_secret_sealed == before
    with pytest.raises(crypto.SealError) as raised:
        Client.objects.get(pk=tenant.client.pk).webhook_secret  # noqa: B018
    assert before not in str(raised.value)


def test_a_malformed_key_stops_start_up_without_showing_the_key() -> None:
    bad = "this-is-not-a-fernet-key"
    keys = f"{Fernet.generate_key().decode()},{bad}"
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**_env(), "SCREENREEL_ENCRYPTION_KEYS": keys})
    assert result.returncode != 0
    assert "SCREENREEL_ENCRYPTION_KEYS: entry 2 is not a Fernet key" in result.stderr
    assert bad not in result.stderr + result.stdout


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"} | {
        "DJANGO_SETTINGS_MODULE": "config.test_settings"}


# The schema before secrets were sealed, and after.
BEFORE = [("jobs", "0012_mux_fair_share"), ("webhooks", "0002_delivery_plural")]
AFTER = [("jobs", "0013_client_webhook_secret_sealed"), ("webhooks", "0003_endpoint_secrets_sealed")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_secrets_an_older_version_stored_in_clear() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    clear = {"client": signing.generate_secret(), "current": signing.generate_secret(),
             "previous": signing.generate_secret()}
    client = old.get_model("jobs", "Client").objects.create(id="cli_clear", name="Clear",
                                                           webhook_secret=clear["client"])
    old.get_model("webhooks", "Endpoint").objects.create(
        id="we_clear", client=client, url="https://hooks.example.com/", secret=clear["current"],
        previous_secret=clear["previous"])
    body, msg_id, timestamp = b'{"test": 2432232314}', "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    signed_before = {name: signing.sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
                     for name, secret in clear.items()}
    assert _tables_holding(clear["current"])  # the old schema: in clear

    try:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        row = new.get_model("webhooks", "Endpoint").objects.get(pk="we_clear")
        sealed = {"client": new.get_model("jobs", "Client").objects.get(pk="cli_clear").webhook_secret_sealed,
                  "current": row.secret_sealed, "previous": row.previous_secret_sealed}
        for name, token in sealed.items():
            assert token.startswith("gAAAAA") and crypto.unseal(token) == clear[name]
            assert _tables_holding(clear[name]) == [] and _tables_holding(clear[name].removeprefix("whsec_")) == []
            after = signing.sign(secret=crypto.unseal(token), msg_id=msg_id, timestamp=timestamp, body=body)
            assert after == signed_before[name]

        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)  # and back: the older version finds its secrets in clear again
        back = executor.loader.project_state(BEFORE).apps.get_model("webhooks", "Endpoint").objects.get(pk="we_clear")
        assert (back.secret, back.previous_secret) == (clear["current"], clear["previous"])
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
