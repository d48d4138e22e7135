"""Per-client caps on webhook endpoints: how many a client may register (a setting, and per client in the
admin), and one endpoint per URL. Through the API, and under concurrency against real PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from jobs.models import Client
from tests.conftest import Tenant
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db


def _post(tenant: Tenant, url: str, **extra: Any) -> Any:
    return tenant.api.post("/v1/webhook-endpoints", {"url": url, **extra}, format="json")


def test_past_the_deployments_cap_a_new_endpoint_is_refused_naming_the_cap(tenant: Tenant, settings: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_WEBHOOK_ENDPOINTS = 3
    made = [_post(tenant, f"https://hooks.example.com/{i}") for i in range(3)]
    assert [r.status_code for r in made] == [201, 201, 201]
    refused = _post(tenant, "https://hooks.example.com/4")
    assert refused.status_code == 409, refused.json()
    error = refused.json()["error"]
    assert error["code"] == "too_many_endpoints" and "At most 3 webhook endpoints" in error["message"]
    assert error["details"] == {"limit": 3, "endpoints": 3}
    assert Endpoint.objects.count() == 3

    # A disabled endpoint still counts: enabling it again takes no new check.
    first = made[0].json()["id"]
    assert tenant.api.patch(f"/v1/webhook-endpoints/{first}", {"enabled": False}, format="json").status_code == 200
    assert _post(tenant, "https://hooks.example.com/4").status_code == 409
    # Deleting one makes room.
    assert tenant.api.delete(f"/v1/webhook-endpoints/{first}").status_code == 204
    assert _post(tenant, "https://hooks.example.com/4").status_code == 201


def test_the_cap_is_per_client_and_an_operator_can_set_a_clients_own(tenant: Tenant, other_tenant: Tenant,
                                                                     settings: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_WEBHOOK_ENDPOINTS = 2
    Client.objects.filter(pk=tenant.client.pk).update(max_webhook_endpoints=1)
    assert _post(tenant, "https://hooks.example.com/a").status_code == 201
    refused = _post(tenant, "https://hooks.example.com/b")
    assert refused.status_code == 409 and refused.json()["error"]["details"]["limit"] == 1
    # The other client has the deployment's two, whatever the first one holds.
    assert [_post(other_tenant, f"https://hooks.example.com/{i}").status_code for i in "abc"] == [201, 201, 409]


def test_an_operator_sets_a_clients_cap_in_the_admin(tenant: Tenant, admin_client: Any) -> None:
    page = admin_client.get(f"/admin/jobs/client/{tenant.client.pk}/change/")
    assert page.status_code == 200 and b'name="max_webhook_endpoints"' in page.content
    response = admin_client.post(f"/admin/jobs/client/{tenant.client.pk}/change/",
                                 {"name": tenant.client.name, "max_webhook_endpoints": "5"})
    assert response.status_code == 302, response.content[:2000]
    assert Client.objects.get(pk=tenant.client.pk).max_webhook_endpoints == 5


@pytest.mark.parametrize(("first", "again"), [
    ("https://hooks.example.com/hook", "https://hooks.example.com/hook"),
    ("https://hooks.example.com/hook", "https://Hooks.Example.COM/hook"),  # (an upper-case scheme is refused)
    ("https://hooks.example.com/hook", "https://hooks.example.com:443/hook"),
    ("http://hooks.example.com/hook", "http://hooks.example.com:80/hook"),
    ("https://hooks.example.com", "https://hooks.example.com/"),
    ("https://hooks.example.com/hook?a=1", "https://hooks.example.com/hook?a=1#frag"),
    ("https://bücher.example/hook", "https://xn--bcher-kva.example/hook"),
])
def test_the_same_url_again_is_refused_naming_the_endpoint_that_has_it(tenant: Tenant, first: str,
                                                                       again: str) -> None:
    existing = _post(tenant, first).json()["id"]
    response = _post(tenant, again, event_types=["job.*"])
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "endpoint_exists" and error["details"] == {"endpoint_id": existing}
    assert existing in error["message"]
    assert Endpoint.objects.count() == 1


@pytest.mark.parametrize(("first", "other"), [
    ("https://hooks.example.com/hook", "https://hooks.example.com/hook/"),  # two resources to most servers
    ("https://hooks.example.com/hook", "https://hooks.example.com/Hook"),
    ("https://hooks.example.com/hook", "https://hooks.example.com/hook?a=1"),
    ("https://hooks.example.com/hook", "http://hooks.example.com/hook"),
    ("https://hooks.example.com/hook", "https://hooks.example.com:8443/hook"),
])
def test_a_url_that_differs_after_normalisation_is_another_endpoint(tenant: Tenant, first: str, other: str) -> None:
    assert _post(tenant, first).status_code == 201
    assert _post(tenant, other).status_code == 201


def test_another_client_may_register_the_same_url(tenant: Tenant, other_tenant: Tenant) -> None:
    assert _post(tenant, "https://hooks.example.com/hook").status_code == 201
    assert _post(other_tenant, "https://hooks.example.com/hook").status_code == 201


def test_changing_an_endpoints_url_to_one_already_registered_is_refused(tenant: Tenant) -> None:
    kept = _post(tenant, "https://hooks.example.com/a").json()["id"]
    moved = _post(tenant, "https://hooks.example.com/b").json()["id"]
    response = tenant.api.patch(f"/v1/webhook-endpoints/{moved}", {"url": "https://HOOKS.example.com/a"},
                                format="json")
    assert response.status_code == 409 and response.json()["error"]["details"] == {"endpoint_id": kept}
    assert Endpoint.objects.get(pk=moved).url == "https://hooks.example.com/b"
    # Its own URL, written another way, is no conflict.
    same = tenant.api.patch(f"/v1/webhook-endpoints/{moved}", {"url": "https://hooks.example.com:443/b"},
                            format="json")
    assert same.status_code == 200


def _at_once(count: int, call: Any) -> list[int]:
    """Run ``call(i)`` on ``count`` threads released together; each thread has its own database connection."""
    barrier = threading.Barrier(count)
    statuses: list[int] = [0] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            statuses[i] = call(i)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


@pytest.mark.django_db(transaction=True)
def test_registrations_at_once_never_pass_the_cap_nor_register_a_url_twice(settings: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_WEBHOOK_ENDPOINTS = 5
    tenant = Tenant("Racer")

    def register(url: str) -> int:
        api = APIClient()  # one per thread
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.key}")
        return int(api.post("/v1/webhook-endpoints", {"url": url}, format="json").status_code)

    statuses = _at_once(12, lambda i: register(f"https://hooks.example.com/{i}"))
    assert sorted(statuses) == [201] * 5 + [409] * 7
    assert Endpoint.objects.filter(client=tenant.client).count() == 5

    Endpoint.objects.all().delete()
    statuses = _at_once(8, lambda i: register("https://hooks.example.com/same"))
    assert sorted(statuses) == [201] + [409] * 7
    assert Endpoint.objects.filter(client=tenant.client).count() == 1
