from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from jobs.lib.errors import DomainError
from jobs.lib.keys.apikeys import api_key_new, hash_key
from jobs.lib.keys.crypto import seal
from jobs.lib.keys.signing import generate_secret
from jobs.models import ApiKey, Client
from jobs.services.locks import client_lock

MAX_LIVE_KEYS = 50
# Revoked keys kept per client, the latest revoked: listed with their revocation time, and a request with one
# answers "revoked". Older ones are deleted as more are revoked, so issuing and revoking in a loop cannot grow a
# client's rows without bound; a request with a deleted one is refused as an unknown key (401 all the same).
KEPT_REVOKED_KEYS = 100


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    key: str  # the only time the full key exists outside the client's hands


def client_create(*, name: str) -> tuple[Client, NewApiKey]:
    """Create a client with its webhook secret and a first API key; returns both (the key in clear, once)."""
    with transaction.atomic():
        client = Client.objects.create(name=name, webhook_secret_sealed=seal(generate_secret()))
        return client, api_key_create(client=client, name="default")


def api_key_create(*, client: Client, name: str = "", scopes: list[str] | None = None) -> NewApiKey:
    """Issue a new API key (``scopes``: what it may do, jobs.lib.keys.scopes; none: everything); returns it in
    clear (stored only as prefix + SHA-256). At most MAX_LIVE_KEYS keys not revoked per client."""
    prefix, key = api_key_new()
    with transaction.atomic():
        client_lock(client.pk)  # two issues racing for the last place: one waits, then counts
        if ApiKey.objects.filter(client=client, revoked_at__isnull=True).count() >= MAX_LIVE_KEYS:
            raise DomainError(f"This client has {MAX_LIVE_KEYS} API keys not revoked, its limit; revoke one it no "
                              "longer uses.", code="too_many_api_keys", status_code=409,
                              details={"limit": MAX_LIVE_KEYS})
        api_key = ApiKey.objects.create(client=client, name=name, prefix=prefix, key_hash=hash_key(key),
                                        scopes=sorted(set(scopes or [])))
    return NewApiKey(api_key=api_key, key=key)


def api_key_revoke(*, api_key: ApiKey) -> bool:
    """Revoke a key, and forget the client's revoked keys beyond the latest KEPT_REVOKED_KEYS; returns False if it
    was already revoked."""
    with transaction.atomic():
        client_lock(api_key.client_id)  # two revokes at once: the second counts after the first
        revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()) == 1
        forgotten = (ApiKey.objects.filter(client_id=api_key.client_id, revoked_at__isnull=False)
                     .order_by("-revoked_at", "-pk").values_list("pk", flat=True)[KEPT_REVOKED_KEYS:])
        ApiKey.objects.filter(pk__in=list(forgotten)).delete()
    return revoked
