"""Credentials and their audit (docs/credentials.md, "What is stored, and how").

A credential's values (password, TOTP seed, headers, HTTP basic, storage state) are one JSON document
sealed in one column (``jobs.lib.keys.crypto``: Fernet under the deployment's rotatable keys). Everything
else on the row is metadata a client, an operator and a log may see: the name, the origins, which fields
are set, when it was made, rotated and last used. No value is ever in a column in clear, a ``__str__``, a
``to_dict`` or an audit row.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from jobs.lib import ids
from jobs.lib.keys.crypto import SealedField
from jobs.models import Client, iso

FIELDS = ("username", "password", "totp", "headers", "http_basic", "storage_state")


def credential_id() -> str:
    return ids.new_id("cred")


class Credential(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=credential_id, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(max_length=100)
    # Origins as "scheme://host[:port]", lower case, default ports dropped: a secret is used only there.
    origins = models.JSONField(default=list)
    # Which of FIELDS are set (metadata); their values are in values_sealed only.
    fields_set = models.JSONField(default=list)
    values_sealed = SealedField(editable=False)
    storage_state_expires_at = models.DateTimeField(null=True, blank=True)
    # What of the given storage state lay outside the origins and was not stored (counts and cookie domains).
    storage_state_dropped = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["client", "-created_at"], name="credential_client_idx")]

    def __str__(self) -> str:
        return f"{self.id} {self.name}"

    def to_dict(self) -> dict[str, Any]:
        """The credential as the API shows it: metadata only, never a value."""
        return {
            "id": self.id, "object": "credential", "name": self.name, "origins": list(self.origins),
            "fields_set": list(self.fields_set), "storage_state_expires_at": iso(self.storage_state_expires_at),
            "storage_state_dropped": self.storage_state_dropped,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
            "rotated_at": iso(self.rotated_at), "last_used_at": iso(self.last_used_at),
        }


class CredentialAudit(models.Model):
    """One thing done to a credential, by whom: kept after the credential is deleted (its id is text)."""

    class Action(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        ROTATED = "rotated"
        RESEALED = "resealed"
        DELETED = "deleted"
        REVOKED = "revoked"

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="credential_audit")
    credential_id = models.CharField(max_length=32, db_index=True)
    name = models.CharField(max_length=100)
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.CharField(max_length=200, help_text='"api", or "operator:<username>".')
    # Which fields the action set or changed (names only).
    fields = models.JSONField(default=list, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)  # the hourly purge reads by age

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.credential_id} {self.action} by {self.actor}"
