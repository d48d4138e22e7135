"""Reads of credentials, always scoped to a client: another client's credential does not exist."""

from __future__ import annotations

from django.db.models import QuerySet

from credentials.models import Credential
from jobs.lib.errors import NotFound
from jobs.models import Client
from jobs.selectors import storable


def credentials_for(*, client: Client) -> QuerySet[Credential]:
    return Credential.objects.filter(client=client).order_by("-created_at", "-id")


def credential_get(*, client: Client, credential_id: str) -> Credential:
    found = credentials_for(client=client).filter(pk=credential_id).first() if storable(credential_id) else None
    if found is None:
        raise NotFound(f"No credential {credential_id[:40]!r}.", code="credential_not_found")
    return found
