"""Reads of credentials, always scoped to a client: another client's credential does not exist."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet

from credentials.models import Credential
from jobs.lib.errors import NotFound
from jobs.lib.keys.crypto import unseal
from jobs.models import Client
from jobs.selectors import storable


def credential_values(credential: Credential) -> dict[str, Any]:
    """The credential's values in clear. Only for the recorder, at the moment it uses them (and for the
    services that re-seal them): never logged, stored elsewhere or returned."""
    values: dict[str, Any] = json.loads(unseal(credential.values_sealed))
    return values


def credentials_for(*, client: Client) -> QuerySet[Credential]:
    return Credential.objects.filter(client=client).order_by("-created_at", "-id")


def credential_get(*, client: Client, credential_id: str) -> Credential:
    found = credentials_for(client=client).filter(pk=credential_id).first() if storable(credential_id) else None
    if found is None:
        raise NotFound(f"No credential {credential_id[:40]!r}.", code="credential_not_found")
    return found
