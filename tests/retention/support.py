"""Builders for retention tests: real objects in real storage, with rows as the pipeline writes them, and
ages measured against the database's own clock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.core.files.storage import default_storage

from jobs.models import Chunk, Job, StoredObject
from jobs.services.objects import object_store
from retention.services.purge import db_now

KIND_BY_CLASS = {"raw": "recording", "output": "video", "bundle": "bundle"}


def put(job: Job, *, kind: str, name: str, tmp: Path, created_at: datetime | None = None,
        content: bytes = b"x" * 100) -> StoredObject:
    """Store a real file for ``job`` through the service the pipeline uses; backdate its row if asked."""
    folder = tmp / uuid.uuid4().hex
    folder.mkdir(parents=True)
    path = folder / name  # object_store names the object after its file
    path.write_bytes(content)
    chunk: Chunk | None = None if kind == "bundle" else job.chunks.order_by("index").first()
    obj = object_store(job=job, chunk=chunk, kind=kind, path=path)
    if created_at is not None:
        StoredObject.objects.filter(pk=obj.pk).update(created_at=created_at)
        obj.refresh_from_db()
    return obj


def recordings(job: Job, count: int, *, tmp: Path, days: float = 8) -> list[StoredObject]:
    """``count`` raw recordings of ``job``, ``days`` old: past the default 7-day policy plus grace."""
    return [put(job, kind="recording", name=f"chunk-1-recording-{i}.mp4", tmp=tmp, created_at=aged(days))
            for i in range(count)]


def aged(days: float, *, plus_s: float = 0.0) -> datetime:
    """The database's now minus ``days`` days, plus ``plus_s`` seconds."""
    return db_now() - timedelta(days=days) + timedelta(seconds=plus_s)


def in_storage(obj: StoredObject) -> bool:
    return default_storage.exists(obj.key)
