"""Streaming writes into storage with flat memory (docs/api.md, "Bundles, signed links and downloads").

``bundle_sink`` is a write-only, unseekable file: ``zipfile.ZipFile(sink, "w")`` writes to it (and so
uses data descriptors), and the bytes go straight into storage as they come:

- S3 (django-storages ``S3Storage``): one multipart upload with parts of a fixed size (R2 wants every
  part but the last the same size), holding at most one part in memory; completed when the ``with``
  block ends cleanly, aborted on any failure so no orphaned parts are billed.
- Local ``FileSystemStorage``: a temporary file next to the target, renamed onto it atomically, so a
  reader never sees half a file.

The way back in is ``jobs.storage.files.storage_reader``. Failures leave as ``StorageError``, as in ``files``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, default_storage

from jobs.storage.files import bucket, classified

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3 and R2: every part but the last is at least 5 MiB
MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000


class BundleSink(io.RawIOBase):
    """An unseekable, write-only file that counts and hashes what passes through it."""

    def __init__(self) -> None:
        super().__init__()
        self._size = 0
        self._digest = hashlib.sha256()
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        # zipfile asks where it is to write offsets into the central directory; it must not seek.
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        raise io.UnsupportedOperation("a bundle sink cannot seek")

    def truncate(self, size: int | None = None, /) -> int:
        raise io.UnsupportedOperation("a bundle sink cannot truncate")

    def write(self, data: Any, /) -> int:
        if self._done or self.closed:
            raise ValueError("write to a finished bundle sink")
        view = memoryview(data).cast("B")
        n = view.nbytes
        if n:
            self._digest.update(view)
            with classified("writing"):
                self._write(view)
            self._size += n
        return n

    def commit(self) -> None:
        if self._done:
            return
        with classified("completing a write"):
            self._commit()
        self._done = True
        self.close()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._abort()
        finally:
            self.close()

    def _write(self, view: memoryview) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError


class _PartBody(io.RawIOBase):
    """A seekable read-only view of the first ``length`` bytes of the part buffer, so boto3 can hash,
    send and (on a retry) rewind the part without copying 16 MiB into a new bytes object each time."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._pos = 0

    def __len__(self) -> int:
        return self._view.nbytes

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._view.nbytes}[whence]
        self._pos = min(max(0, base + offset), self._view.nbytes)
        return self._pos

    def read(self, size: int = -1, /) -> bytes:
        end = self._view.nbytes if size is None or size < 0 else min(self._view.nbytes, self._pos + size)
        data = self._view[self._pos:end].tobytes()
        self._pos = end
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class S3MultipartSink(BundleSink):
    """A multipart upload in parts of exactly ``part_bytes`` (the last may be shorter).

    The part buffer is allocated once and refilled: allocating and freeing 16 MiB blocks per part lets
    glibc's malloc raise its mmap threshold and keep the freed blocks, which shows up as RSS creep.
    """

    def __init__(self, *, client: Any, bucket: str, key: str, part_bytes: int,
                 content_type: str = "application/octet-stream") -> None:
        if not MIN_PART_BYTES <= part_bytes <= MAX_PART_BYTES:
            raise ValueError(f"part size {part_bytes} is outside S3's {MIN_PART_BYTES}..{MAX_PART_BYTES}")
        super().__init__()
        self.client = client
        self.bucket = bucket
        self.key = key
        self.part_bytes = part_bytes
        self._buffer = bytearray(part_bytes)
        self._filled = 0
        self._parts: list[dict[str, Any]] = []
        self.upload_id: str = client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type)["UploadId"]

    @property
    def parts(self) -> list[dict[str, Any]]:
        return list(self._parts)

    def _write(self, view: memoryview) -> None:
        offset = 0
        while offset < view.nbytes:
            take = min(self.part_bytes - self._filled, view.nbytes - offset)
            self._buffer[self._filled:self._filled + take] = view[offset:offset + take]
            self._filled += take
            offset += take
            if self._filled == self.part_bytes:
                self._upload_part()

    def _upload_part(self) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ValueError(f"more than {MAX_PARTS} parts: raise SCREENREEL_BUNDLE_PART_BYTES")
        with memoryview(self._buffer) as whole, whole[:self._filled] as filled:
            response = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                               PartNumber=number, Body=_PartBody(filled),
                                               ContentLength=self._filled)
        self._filled = 0
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def _commit(self) -> None:
        if self._filled or not self._parts:  # S3 wants at least one part, even an empty one
            self._upload_part()
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                              MultipartUpload={"Parts": self._parts})
        self._buffer = bytearray()

    def _abort(self) -> None:
        self._buffer = bytearray()
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:  # the original failure matters more; the bucket's lifecycle rule is the backstop
            log.exception("could not abort multipart upload %s of %s", self.upload_id, self.key)


class LocalFileSink(BundleSink):
    """A temporary file in the target's directory, renamed onto the target when complete."""

    def __init__(self, *, path: Path, file_mode: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.file_mode = file_mode
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        self.tmp_path = Path(tmp)
        self._fh: BinaryIO = os.fdopen(fd, "wb")

    def _write(self, view: memoryview) -> None:
        self._fh.write(view)

    def _commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.chmod(self.tmp_path, self.file_mode if self.file_mode is not None else 0o644)
        os.replace(self.tmp_path, self.path)

    def _abort(self) -> None:
        self._fh.close()
        self.tmp_path.unlink(missing_ok=True)


def part_bytes_setting() -> int:
    return int(getattr(settings, "SCREENREEL_BUNDLE_PART_BYTES", 16 * 1024 * 1024))


def sink_open(*, key: str, content_type: str = "application/octet-stream",
              part_bytes: int | None = None, storage: Storage | None = None) -> BundleSink:
    """A sink writing ``key`` in ``storage`` (the default storage); the caller must commit or abort it."""
    # default_storage is a lazy proxy re-made when STORAGES changes; isinstance() sees through it.
    storage = storage if storage is not None else default_storage
    s3 = bucket(storage)
    if s3 is not None:
        with classified("starting an upload"):
            return S3MultipartSink(client=s3.client, bucket=s3.name, key=s3.key(key),
                                   part_bytes=part_bytes or part_bytes_setting(), content_type=content_type)
    if isinstance(storage, FileSystemStorage):
        with classified("starting a file"):
            return LocalFileSink(path=Path(storage.path(key)), file_mode=storage.file_permissions_mode)
    raise NotImplementedError(f"no streaming sink for {type(storage).__name__}")


@contextmanager
def bundle_sink(*, key: str, content_type: str = "application/octet-stream", part_bytes: int | None = None,
                storage: Storage | None = None) -> Iterator[BundleSink]:
    """Yield a sink for ``key``: committed when the block ends cleanly, aborted on any exception."""
    sink = sink_open(key=key, content_type=content_type, part_bytes=part_bytes, storage=storage)
    try:
        yield sink
    except BaseException:
        sink.abort()
        raise
    try:
        sink.commit()
    except BaseException:
        sink.abort()
        raise
