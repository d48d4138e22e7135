"""Credentials as a job's recordings use them: the seam jobs.hooks.SecretSource, filled from the client's
credentials. A job names ``{"credential": "cred_…", "field": "password"}``; this checks the name when the job
is created and opens the value for each recording, in memory only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from credentials.models import Credential
from credentials.selectors import credential_values, credentials_for
from jobs.media.secrets import Access, Secret, SecretRef
from jobs.models import Client
from jobs.selectors import storable

# The fields a job applies to its requests (``credentials``), as opposed to those a step types.
APPLIED = ("headers", "http_basic", "storage_state")


def _found(client: Client, ids: Sequence[str]) -> dict[str, Credential]:
    return {c.pk: c for c in credentials_for(client=client).filter(pk__in={i for i in ids if storable(i)})}


class CredentialSecrets:
    def problems(self, *, client: Client, refs: Sequence[SecretRef]) -> dict[SecretRef, tuple[str, str]]:
        found = _found(client, [ref.credential for ref in refs])
        problems = {}
        for ref in refs:
            credential = found.get(ref.credential)
            if credential is None:
                problems[ref] = ("credential_not_found", f"No credential {ref.credential[:40]!r}.")
            elif ref.field not in credential.fields_set:
                problems[ref] = ("secret_field_not_set", f"Credential {ref.credential} has no {ref.field}; it has "
                                 f"{', '.join(credential.fields_set) or 'no fields'}.")
        return problems

    @sensitive_variables("values")
    def open(self, *, client: Client, refs: Sequence[SecretRef]) -> dict[SecretRef, Secret]:
        opened = {}
        for credential in _found(client, [ref.credential for ref in refs]).values():
            values = credential_values(credential)
            for ref in refs:
                if ref.credential == credential.pk and isinstance(values.get(ref.field), str):
                    opened[ref] = Secret(field=ref.field, origins=tuple(credential.origins), value=values[ref.field])
        return opened

    def access_problems(self, *, client: Client, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        found = _found(client, ids)
        problems = {}
        for credential_id in ids:
            credential = found.get(credential_id)
            if credential is None:
                problems[credential_id] = ("credential_not_found", f"No credential {credential_id[:40]!r}.")
            elif not set(APPLIED) & set(credential.fields_set):
                problems[credential_id] = ("nothing_to_apply", f"Credential {credential_id} has none of "
                                           f"{', '.join(APPLIED)}; name its other fields in steps' secrets.")
        return problems

    @sensitive_variables("values")
    def access(self, *, client: Client, ids: Sequence[str]) -> list[Access]:
        now = timezone.now()
        found = _found(client, ids)
        out = []
        for credential_id in ids:
            credential = found.get(credential_id)
            if credential is None:
                continue
            values = credential_values(credential)
            basic = values.get("http_basic")
            state: dict[str, Any] = values.get("storage_state") or {}
            expires = credential.storage_state_expires_at
            live = bool(state) and expires is not None and expires > now  # an expired session is never used
            out.append(Access(credential=credential.pk, origins=tuple(credential.origins),
                              headers=dict(values.get("headers") or {}),
                              basic=(basic["username"], basic["password"]) if basic else None,
                              cookies=tuple(state.get("cookies", [])) if live else (),
                              local_storage=tuple(state.get("origins", [])) if live else ()))
        return out

    def used(self, *, client: Client, ids: Sequence[str]) -> None:
        credentials_for(client=client).filter(pk__in=set(ids)).update(last_used_at=timezone.now())


secret_source = CredentialSecrets()
