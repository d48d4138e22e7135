"""Where a job's files live in storage: keys namespaced per client and job (DESIGN.md §5).

Work moves between machines through storage (a recording made on a ``record`` worker is muxed on a
``media`` worker), so every stage reads its inputs from here and writes its outputs here.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage

from jobs.models import Job

_CHUNK = 1024 * 1024


def job_prefix(job: Job) -> str:
    return f"clients/{job.client_id}/jobs/{job.id}"


def chunk_key(job: Job, index: int, name: str) -> str:
    return f"{job_prefix(job)}/chunks/{index}/{name}"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def store_file(*, key: str, path: Path, kind: str, **extra: Any) -> dict[str, Any]:
    """Upload ``path`` to ``key`` (overwriting); returns the asset record kept on the chunk."""
    if default_storage.exists(key):
        default_storage.delete(key)
    with path.open("rb") as fh:
        saved = default_storage.save(key, File(fh, name=path.name))
    assert saved == key, f"storage renamed {key} to {saved}"
    return {"name": path.name, "kind": kind, "key": key, "bytes": path.stat().st_size,
            "sha256": file_digest(path), **extra}


def fetch_file(*, key: str, dest: Path) -> Path:
    """Download ``key`` to ``dest``; returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with default_storage.open(key, "rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    return dest
