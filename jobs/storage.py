"""Where a job's files live in storage: keys namespaced per class, client and job (docs/retention.md, "Keys name
their tenant and class").
Work moves between machines through storage (a recording made on a ``record`` worker is muxed on a
``media`` worker), so every stage reads its inputs from here and writes its outputs here.

Reads stream: on S3, ``storage_reader`` reads one GET's body as it arrives. django-storages'
``S3File`` would first download the whole object into a ``SpooledTemporaryFile`` that never rolls
over to disk by default (``AWS_S3_MAX_MEMORY_SIZE=0``), i.e. into memory.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files import File
from django.core.files.storage import Storage, default_storage
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from jobs.models import KIND_CLASS, Job, ObjectKind, RetentionClass

_CHUNK = 1024 * 1024


def class_prefix(retention_class: str, client_id: str) -> str:
    """Where every object of one client and class lives: what a purge checks a key against."""
    return f"{retention_class}/clients/{client_id}/"


def legacy_prefix(client_id: str, job_id: str) -> str:
    """Keys written before keys named their class (migrated rows keep them): tenant and job, no class."""
    return f"clients/{client_id}/jobs/{job_id}/"


def object_key(job: Job, *, kind: str, name: str, chunk_index: int | None = None, attempt: str = "") -> str:
    """The key of a new object: its class, tenant and job, then the run (so a rerun never overwrites
    or reuses the key of an object that retention may be deleting) and the chunk. A bundle's key also
    names its build attempt: two settles racing on one run each write their own object."""
    base = f"{class_prefix(KIND_CLASS[kind], job.client_id)}jobs/{job.id}/"
    if kind == ObjectKind.BUNDLE:
        return f"{base}v{job.run}/{attempt + '/' if attempt else ''}{name}"
    assert chunk_index is not None, "a chunk's object names its chunk"
    return f"{base}runs/{job.run}/chunks/{chunk_index}/{name}"


def key_belongs(key: str, *, client_id: str, retention_class: str | None = None, job_id: str | None = None) -> bool:
    """Whether ``key`` lies in the client's namespace (for that class, when given), with no way out of it.

    Keys from before class prefixes prove the tenant and the job instead, and only when the job is named.
    """
    if ".." in key.split("/") or "//" in key or key.startswith("/"):
        return False
    classes = [retention_class] if retention_class else list(RetentionClass.values)
    if any(key.startswith(class_prefix(c, client_id)) for c in classes):
        return True
    if job_id is not None:
        return key.startswith(legacy_prefix(client_id, job_id))
    return key.startswith(f"clients/{client_id}/jobs/")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def upload_file(*, key: str, path: Path) -> None:
    """Upload ``path`` to ``key``, overwriting what is there; returns nothing."""
    # Only a storage that would rename an existing file needs it gone first. Asking costs nothing on
    # S3 (file_overwrite) and a stat locally, where exists() + delete() cost two S3 round trips.
    if default_storage.get_available_name(key) != key:
        default_storage.delete(key)
    with path.open("rb") as fh:
        saved = default_storage.save(key, File(fh, name=path.name))
    assert saved == key, f"storage renamed {key} to {saved}"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def s3_key(storage: S3Storage, name: str) -> str:
    """The object key django-storages uses for ``name`` (it applies the storage's ``location``)."""
    key: str = storage._normalize_name(clean_name(name))
    return key


def s3_client(storage: S3Storage) -> Any:
    return storage.connection.meta.client


@contextmanager
def storage_reader(key: str, *, storage: Storage | None = None) -> Iterator[Readable]:
    """Yield a sequential reader of ``key``: one streamed GET on S3, the file itself on local storage."""
    # default_storage is a lazy proxy re-made when STORAGES changes; isinstance() sees through it.
    storage = storage if storage is not None else default_storage
    if isinstance(storage, S3Storage):
        body = s3_client(storage).get_object(Bucket=storage.bucket_name, Key=s3_key(storage, key))["Body"]
        try:
            yield body
        finally:
            body.close()
    else:
        with storage.open(key, "rb") as fh:
            yield fh


def fetch_file(*, key: str, dest: Path) -> Path:
    """Download ``key`` to ``dest`` as a stream; returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with storage_reader(key) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    return dest


@dataclass(frozen=True)
class StorageFault:
    """Storage failed (the local filesystem, or an S3 endpoint): ``status_code`` is the HTTP status S3 answered,
    None when it answered none (unreachable) or storage is local."""

    status_code: int | None = None


def storage_fault(exc: BaseException) -> StorageFault | None:
    """Whether ``exc`` is storage failing, and how; None for anything else. The one place that reads boto's
    errors: their messages name the bucket and the endpoint, so they go to the logs, never to a client."""
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, ClientError):
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return StorageFault(status_code=status if isinstance(status, int) else None)
    if isinstance(exc, BotoCoreError | Boto3Error | OSError):
        return StorageFault()
    return None
