"""Every write of credentials: create, rename or re-scope, rotate, reseal, delete; each one audited.

Values are sealed here and only here (``seal_values``), as one JSON document; ``credential_values`` is the
one way back to them in clear, for the recorder at the moment it types or applies them. The audit names
the fields an action touched, never a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from credentials.models import FIELDS, Credential, CredentialAudit
from credentials.scope import MAX_STORAGE_STATE_DAYS, state_within
from credentials.selectors import credential_values
from jobs.lib.errors import DomainError, NotFound
from jobs.lib.keys.crypto import seal, unseal
from jobs.models import Client
from jobs.services.locks import client_lock
from jobs.services.sessions import sessions_forget


def _limit(client: Client) -> int:
    if client.max_credentials is not None:
        return client.max_credentials
    return int(settings.SCREENREEL_CLIENT_MAX_CREDENTIALS)


def _sealed(values: dict[str, Any]) -> tuple[str, list[str]]:
    """The sealed document and the names of the fields it holds, in FIELDS' order."""
    kept = {name: values[name] for name in FIELDS if name in values}
    return seal(json.dumps(kept, separators=(",", ":"), cls=DjangoJSONEncoder)), list(kept)


@dataclass(frozen=True)
class _Prepared:
    """Values ready to seal: the storage state kept to the origins, its expiry at most 30 days away."""

    values: dict[str, Any] = field(repr=False)
    expires_at: datetime | None
    dropped: dict[str, Any] | None


def _prepared(values: dict[str, Any], origins: list[str]) -> _Prepared:
    state = values.get("storage_state")
    if state is None:
        return _Prepared(values=values, expires_at=None, dropped=None)
    kept, dropped = state_within(state, origins)
    expires_at = min(state["expires_at"], timezone.now() + timedelta(days=MAX_STORAGE_STATE_DAYS))
    return _Prepared(values={**values, "storage_state": {**kept, "expires_at": expires_at}}, expires_at=expires_at,
                     dropped=dropped)


def _audit(credential: Credential, action: str, *, actor: str, fields: list[str] | None = None) -> None:
    CredentialAudit.objects.create(client_id=credential.client_id, credential_id=credential.pk, name=credential.name,
                                   action=action, actor=actor, fields=fields or [])


def _locked(credential: Credential) -> Credential:
    locked = Credential.objects.select_for_update().filter(pk=credential.pk).first()
    if locked is None:
        raise NotFound(f"No credential {credential.pk!r}.", code="credential_not_found")
    return locked


@sensitive_variables()
def credential_create(*, client: Client, name: str, origins: list[str], values: dict[str, Any],
                      actor: str = "api") -> Credential:
    """Store a credential (its values sealed); returns it. At most the client's cap of credentials."""
    ready = _prepared(values, origins)
    sealed, fields = _sealed(ready.values)
    with transaction.atomic():
        client_lock(client.pk)  # two creates racing for the last place: one of them waits, then counts
        limit = _limit(client)
        if Credential.objects.filter(client=client).count() >= limit:
            raise DomainError(f"This client has {limit} credentials, its limit; delete one it no longer uses.",
                              code="too_many_credentials", status_code=409, details={"limit": limit})
        credential = Credential.objects.create(client=client, name=name, origins=origins, fields_set=fields,
                                               values_sealed=sealed,
                                               storage_state_expires_at=ready.expires_at,
                                               storage_state_dropped=ready.dropped)
        _audit(credential, CredentialAudit.Action.CREATED, actor=actor, fields=fields)
    return credential


@sensitive_variables()
def credential_update(*, credential: Credential, changes: dict[str, Any], actor: str = "api") -> Credential:
    """Rename it or change its origins; returns it. What of its storage state the new origins leave out is
    deleted with them."""
    if not changes:
        return credential  # nothing to change: no write, no audit
    with transaction.atomic():
        locked = _locked(credential)
        touched = sorted(changes)
        origins = changes.get("origins")
        if origins is not None and "storage_state" in locked.fields_set:
            values = credential_values(locked)
            kept, dropped = state_within(values["storage_state"], origins)
            if dropped is not None:
                locked.values_sealed, _ = _sealed({**values, "storage_state": kept})
                locked.storage_state_dropped = dropped
                touched.append("storage_state")
        for name in ("name", "origins"):
            if name in changes:
                setattr(locked, name, changes[name])
        locked.save()
        _audit(locked, CredentialAudit.Action.UPDATED, actor=actor, fields=touched)
    return locked


@sensitive_variables()
def credential_rotate(*, credential: Credential, values: dict[str, Any], actor: str = "api") -> Credential:
    """Replace every value at once (a new password, seed, session...); returns it. Jobs that name it use the
    new values from their next step on."""
    with transaction.atomic():
        locked = _locked(credential)
        ready = _prepared(values, list(locked.origins))
        locked.values_sealed, locked.fields_set = _sealed(ready.values)
        locked.storage_state_expires_at, locked.storage_state_dropped = ready.expires_at, ready.dropped
        locked.rotated_at = timezone.now()
        locked.save()
        _audit(locked, CredentialAudit.Action.ROTATED, actor=actor, fields=list(locked.fields_set))
    return locked


def credential_reseal(*, credential: Credential, actor: str) -> Credential:
    """Seal the same values again under the deployment's first key (an operator's action after adding a key;
    ``manage.py encryption_rotate`` does every sealed column at once)."""
    with transaction.atomic():
        locked = _locked(credential)
        # The client's view does not change (updated_at stays): only the key under the seal does.
        Credential.objects.filter(pk=locked.pk).update(values_sealed=seal(unseal(locked.values_sealed)))
        _audit(locked, CredentialAudit.Action.RESEALED, actor=actor)
    return locked


def credential_audit_purge(*, batch: int = 5000) -> int:
    """Delete audit rows older than SCREENREEL_CREDENTIAL_AUDIT_DAYS, oldest first, at most ``batch`` a run (beat
    runs it hourly, so a backlog drains without one long transaction); returns how many."""
    cutoff = timezone.now() - timedelta(days=settings.SCREENREEL_CREDENTIAL_AUDIT_DAYS)
    old = list(CredentialAudit.objects.filter(at__lt=cutoff).order_by("at").values_list("pk", flat=True)[:batch])
    deleted, _ = CredentialAudit.objects.filter(pk__in=old).delete()
    return deleted


def credential_delete(*, credential: Credential, actor: str = "api", revoked: bool = False) -> bool:
    """Delete it now, audited: from this moment no job can use it, and the sessions the client's running jobs
    signed in to are ended too (each job signs in again, without it: a step that names it fails). Returns False
    when it was already gone (deleted meanwhile: the outcome the caller asked for, audited once, by whoever
    deleted it)."""
    with transaction.atomic():
        locked = Credential.objects.select_for_update().filter(pk=credential.pk).first()
        if locked is None:
            return False
        _audit(locked, CredentialAudit.Action.REVOKED if revoked else CredentialAudit.Action.DELETED, actor=actor,
               fields=list(locked.fields_set))
        locked.delete()
        sessions_forget(client_id=locked.client_id)
    return True
