from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from jobs.lib.keys.apikeys import api_key_new, hash_key
from jobs.lib.keys.crypto import seal
from jobs.lib.keys.signing import generate_secret
from jobs.models import ApiKey, Client


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    key: str  # the only time the full key exists outside the client's hands


def client_create(*, name: str) -> tuple[Client, NewApiKey]:
    """Create a client with its webhook secret and a first API key; returns both (the key in clear, once)."""
    with transaction.atomic():
        client = Client.objects.create(name=name, webhook_secret_sealed=seal(generate_secret()))
        return client, api_key_create(client=client, name="default")


def api_key_create(*, client: Client, name: str = "") -> NewApiKey:
    """Issue a new API key; returns it in clear (stored only as prefix + SHA-256)."""
    prefix, key = api_key_new()
    api_key = ApiKey.objects.create(client=client, name=name, prefix=prefix, key_hash=hash_key(key))
    return NewApiKey(api_key=api_key, key=key)


def api_key_revoke(*, api_key: ApiKey) -> bool:
    """Revoke a key; returns False if it was already revoked."""
    return ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()) == 1
