from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from jobs.auth import KEY_PREFIX, hash_key
from jobs.crypto import seal
from jobs.models import ApiKey, Client


def _webhook_secret() -> str:
    # Imported lazily: signing lives with the webhooks, and is pure.
    from webhooks.signing import generate_secret

    return generate_secret()


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    key: str  # the only time the full key exists outside the client's hands


def client_create(*, name: str) -> tuple[Client, NewApiKey]:
    """Create a client with its webhook secret and a first API key; returns both (the key in clear, once)."""
    with transaction.atomic():
        client = Client.objects.create(name=name, webhook_secret_sealed=seal(_webhook_secret()))
        return client, api_key_create(client=client, name="default")


def api_key_create(*, client: Client, name: str = "") -> NewApiKey:
    """Issue a new API key; returns it in clear (stored only as prefix + SHA-256)."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(client=client, name=name, prefix=prefix, key_hash=hash_key(key))
    return NewApiKey(api_key=api_key, key=key)


def api_key_revoke(*, api_key: ApiKey) -> bool:
    """Revoke a key; returns False if it was already revoked."""
    return ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()) == 1
