"""Writing stored objects: a row first, then the bytes (every stored object is a row: docs/retention.md).

The row is committed before the upload starts, so a crash between the two leaves a row whose object is
missing (a purge deletes a missing key harmlessly) and never an object that no row accounts for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs.lib.failures import PermanentError
from jobs.models import KIND_CLASS, Chunk, Job, StoredObject
from jobs.storage.files import file_digest, upload_file
from jobs.storage.keys import object_key


class PurgedKeyReused(PermanentError):
    """A stage tried to write an object at a key whose object retention already purged."""


def object_record(*, job: Job, kind: str, name: str, chunk: Chunk | None = None, bytes: int = 0,
                  sha256: str = "", meta: dict[str, Any] | None = None, key: str | None = None) -> StoredObject:
    """Create (or, for the same key written again by a retried stage, reset) the row of an object about to be
    written; returns it. A purged object's key is never reused: its row, audit and links stay what they say."""
    key = key or object_key(job, kind=kind, name=name, chunk_index=chunk.index if chunk is not None else None)
    if StoredObject.objects.filter(key=key, purged_at__isnull=False).exists():
        raise PurgedKeyReused(f"{name}: the object at this key was purged; it is not written again")
    obj, _ = StoredObject.objects.update_or_create(
        key=key,
        defaults={"client_id": job.client_id, "job": job, "chunk": chunk, "name": name, "kind": kind,
                  "retention_class": KIND_CLASS[kind], "bytes": bytes, "sha256": sha256, "meta": meta or {},
                  "current": True, "created_at": timezone.now(), "purged_at": None},
    )
    return obj


def object_store(*, job: Job, kind: str, path: Path, chunk: Chunk | None = None,
                 meta: dict[str, Any] | None = None) -> StoredObject:
    """Record and upload the file at ``path`` under its name; returns the row."""
    with transaction.atomic():
        obj = object_record(job=job, kind=kind, name=path.name, chunk=chunk, bytes=path.stat().st_size,
                            sha256=file_digest(path), meta=meta)
    upload_file(key=obj.key, path=path)
    return obj


def objects_supersede(*, chunk: Chunk) -> int:
    """Mark the chunk's objects as replaced (its rerun writes new ones); returns how many were current."""
    return StoredObject.objects.filter(chunk=chunk, current=True).update(current=False)
