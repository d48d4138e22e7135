"""The storage seam: the one way to read, write and delete stored files (docs/architecture.md, "Storage").

Storage is the local folder of ``FileSystemStorage`` or an S3-compatible bucket (django-storages
``S3Storage``). Only this module and ``sinks`` talk to either, and every failure leaves them as one
``StorageError`` that says how storage failed (S3's HTTP status and error code, or neither when S3 was
unreachable or storage is local). Callers never read boto's exceptions: their messages name the bucket
and the endpoint, so they go to the logs (as the error's cause), never to a client.

Work moves between machines through storage (a recording made on a ``record`` worker is muxed on a
``media`` worker), so every stage reads its inputs from here and writes its outputs here.

Reads stream: on S3, ``storage_reader`` reads one GET's body as it arrives. django-storages' ``S3File``
would first download the whole object into a ``SpooledTemporaryFile`` that never rolls over to disk by
default (``AWS_S3_MAX_MEMORY_SIZE=0``), i.e. into memory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, default_storage
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

_CHUNK = 1024 * 1024
S3_MAX_KEYS_PER_DELETE = 1000
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchUpload", "NoSuchLifecycleConfiguration", "404"})


# --- What a failure is ------------------------------------------------------------------------------------

class StorageError(Exception):
    """Storage failed while ``doing`` something. ``status_code`` is the HTTP status S3 answered and ``code`` its
    error code ("SlowDown", "AccessDenied", "NoSuchKey"); both are empty when S3 answered nothing (unreachable)
    or storage is local. Transient unless proven otherwise: every caller retries it while attempts remain."""

    permanent = False

    def __init__(self, doing: str, *, status_code: int | None = None, code: str = "") -> None:
        self.doing = doing
        self.status_code = status_code
        self.code = code
        answered = f"S3 answered {status_code} {code}".rstrip() if status_code or code else "no answer"
        super().__init__(f"storage failed {doing}: {answered}")

    @property
    def missing(self) -> bool:
        """Whether the object (or the bucket's configuration) is not there, rather than storage failing."""
        return self.code in _MISSING_CODES or self.status_code == 404


def storage_error(exc: BaseException, *, doing: str = "") -> StorageError | None:
    """``exc`` as a ``StorageError`` when it (or what it was raised from) is storage failing, else None: the one
    place that reads boto's and the filesystem's errors."""
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, StorageError):
            return cause
        if isinstance(cause, ClientError):
            meta = cause.response.get("ResponseMetadata", {})
            status = meta.get("HTTPStatusCode")
            code = str(cause.response.get("Error", {}).get("Code", ""))
            return StorageError(doing, status_code=status if isinstance(status, int) else None, code=code)
    if isinstance(exc, FileNotFoundError):
        return StorageError(doing, code="NoSuchKey")
    if isinstance(exc, BotoCoreError | Boto3Error | OSError):
        return StorageError(doing)
    return None


@contextmanager
def classified(doing: str) -> Iterator[None]:
    """Raise storage failures inside the block as ``StorageError`` (from the original, which the logs keep)."""
    try:
        yield
    except StorageError:
        raise
    except (BotoCoreError, Boto3Error, ClientError, OSError) as exc:
        error = storage_error(exc, doing=doing)
        assert error is not None
        raise error from exc


# --- The bucket, when storage is S3 -----------------------------------------------------------------------

class Bucket:
    """An S3-compatible bucket behind django-storages, named keys as the storage names them (with its
    ``location``). Its ``delete`` is ``DeleteObjects`` in quiet mode: the answer lists only the keys that failed.
    """

    def __init__(self, storage: S3Storage, *, client: Any = None) -> None:
        self.storage = storage
        self.name: str = storage.bucket_name
        self.client: Any = client if client is not None else storage.connection.meta.client

    def key(self, name: str) -> str:
        """The object key django-storages uses for ``name`` (it applies the storage's ``location``)."""
        key: str = self.storage._normalize_name(clean_name(name))
        return key

    def presigned_get(self, name: str, *, disposition: str, ttl_s: int) -> str:
        """A presigned GET of ``name`` that lives ``ttl_s`` and downloads as ``disposition``."""
        # Signed by the client directly, not storage.url(): that returns an unsigned URL when the storage
        # has a custom domain or querystring_auth off, and the bucket must never be reachable without one.
        with classified("signing a download"):
            url: str = self.client.generate_presigned_url(
                "get_object", ExpiresIn=ttl_s,
                Params={"Bucket": self.name, "Key": self.key(name), "ResponseContentDisposition": disposition})
        return url

    def lifecycle_rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules, [] when it has none."""
        try:
            with classified("reading the lifecycle rules"):
                rules: list[dict[str, Any]] = self.client.get_bucket_lifecycle_configuration(Bucket=self.name)["Rules"]
        except StorageError as exc:
            if exc.missing:
                return []
            raise
        return rules

    def put_lifecycle_rules(self, rules: list[dict[str, Any]]) -> None:
        with classified("writing the lifecycle rules"):
            self.client.put_bucket_lifecycle_configuration(Bucket=self.name,
                                                           LifecycleConfiguration={"Rules": rules})

    def delete(self, keys: list[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for start in range(0, len(keys), S3_MAX_KEYS_PER_DELETE):
            part = keys[start:start + S3_MAX_KEYS_PER_DELETE]
            names = {self.key(k): k for k in part}
            try:
                with classified("deleting"):
                    response = self.client.delete_objects(
                        Bucket=self.name, Delete={"Objects": [{"Key": name} for name in names], "Quiet": True})
            except StorageError as exc:  # the whole call failed: every key stays for the next run
                failed.update({k: str(exc) for k in part})
                continue
            for error in response.get("Errors", []):
                key = names.get(error.get("Key", ""), error.get("Key", ""))
                failed[key] = f"{error.get('Code', 'Error')}: {error.get('Message', '')}"[:300]
        return failed


def bucket(storage: Storage | None = None) -> Bucket | None:
    """The bucket behind ``storage`` (the default storage), None when storage is the local folder."""
    # default_storage is a lazy proxy re-made when STORAGES changes; isinstance() sees through it.
    storage = storage if storage is not None else default_storage
    return Bucket(storage) if isinstance(storage, S3Storage) else None


# --- Deleting ---------------------------------------------------------------------------------------------

class Deleter(Protocol):
    def delete(self, keys: list[str]) -> dict[str, str]:
        """Delete ``keys``; returns the keys that were not deleted, each with the reason. A key already gone
        counts as deleted."""
        ...


class LocalDeleter:
    """Unlinks files; a file already gone counts as deleted, as on S3."""

    def __init__(self, storage: FileSystemStorage) -> None:
        self.storage = storage

    def delete(self, keys: list[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for key in keys:
            try:
                os.unlink(self.storage.path(key))
            except FileNotFoundError:
                pass
            except OSError as exc:
                failed[key] = f"{type(exc).__name__}: {exc.strerror}"
        return failed


def deleter_for(storage: Storage | None = None) -> Deleter:
    storage = storage if storage is not None else default_storage
    if isinstance(storage, S3Storage):
        return Bucket(storage)
    if isinstance(storage, FileSystemStorage):
        return LocalDeleter(storage)
    raise NotImplementedError(f"no deleter for {type(storage).__name__}")


# --- Reading and writing whole files ----------------------------------------------------------------------

def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def upload_file(*, key: str, path: Path) -> None:
    """Upload ``path`` to ``key``, overwriting what is there; returns nothing."""
    with classified("uploading"):
        # Only a storage that would rename an existing file needs it gone first. Asking costs nothing on
        # S3 (file_overwrite) and a stat locally, where exists() + delete() cost two S3 round trips.
        if default_storage.get_available_name(key) != key:
            default_storage.delete(key)
        with path.open("rb") as fh:
            saved = default_storage.save(key, File(fh, name=path.name))
    assert saved == key, f"storage renamed {key} to {saved}"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Classified:
    """A reader whose failures mid-stream are ``StorageError`` too."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner

    def read(self, size: int = -1, /) -> bytes:
        with classified("reading"):
            return self._inner.read(size)


@contextmanager
def storage_reader(key: str, *, storage: Storage | None = None) -> Iterator[Readable]:
    """Yield a sequential reader of ``key``: one streamed GET on S3, the file itself on local storage."""
    storage = storage if storage is not None else default_storage
    s3 = bucket(storage)
    if s3 is not None:
        with classified("reading"):
            body = s3.client.get_object(Bucket=s3.name, Key=s3.key(key))["Body"]
        try:
            yield _Classified(body)
        finally:
            body.close()
    else:
        with classified("reading"):
            fh = storage.open(key, "rb")
        with fh:
            yield _Classified(fh)


def copy_object(*, source: str, dest: str) -> None:
    """Copy the object at ``source`` to ``dest``, overwriting what is there: on S3 a server-side copy (the bytes
    never pass through this process; a managed copy, multipart past 5 GB), locally a hard link (a plain copy where
    the folder cannot link). A missing source raises a ``StorageError`` that is ``missing``."""
    s3 = bucket()
    if s3 is not None:
        with classified("copying"):
            s3.client.copy({"Bucket": s3.name, "Key": s3.key(source)}, s3.name, s3.key(dest))
        return
    storage = default_storage
    assert isinstance(storage, FileSystemStorage), f"no copy for {type(storage).__name__}"
    src, out = Path(storage.path(source)), Path(storage.path(dest))
    with classified("copying"):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)  # a retried copy: the link is made again
        try:
            os.link(src, out)
        except FileNotFoundError:
            raise
        except OSError:  # another device, or a folder that has no hard links
            shutil.copyfile(src, out)


def stored(key: str) -> bool:
    """Whether an object is stored at ``key``."""
    with classified("checking an object"):
        found: bool = default_storage.exists(key)
    return found


def open_local(key: str) -> File[Any]:
    """The local storage's file at ``key``, open for reading (a real file: ``os.fstat`` works on it); raises a
    ``StorageError`` that is ``missing`` when there is no such file."""
    with classified("opening"):
        fh: File[Any] = default_storage.open(key, "rb")
    return fh


def fetch_file(*, key: str, dest: Path) -> Path:
    """Download ``key`` to ``dest`` as a stream; returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with storage_reader(key) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    return dest
