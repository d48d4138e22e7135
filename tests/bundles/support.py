"""Builders for bundle tests: jobs whose chunks carry real stored assets, synthetic media of any size that
never sits in memory, and a seekable view of an S3 object that zipfile can verify in one streamed pass."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any

from bundles.services import BundleSummary, bundle_build
from jobs.models import Chunk, ChunkStatus, Client, Job
from jobs.services.objects import object_store
from tests.factories import make_job

MiB = 1024 * 1024
GiB = 1024 * MiB


def job_with_assets(*, client: Client | None = None, files: dict[int, list[tuple[str, str, bytes]]],
                    failed: dict[int, str] | None = None, tmp: Path) -> Job:
    """A job whose chunk N succeeded with ``files[N]`` = [(name, kind, content)] stored through the real
    storage service, and whose chunks in ``failed`` failed with that error."""
    failed = failed or {}
    job = make_job(client=client, features=len(files) + len(failed))
    for chunk in job.chunks.all():
        if chunk.index in failed:
            Chunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.FAILED, error=failed[chunk.index])
            continue
        for name, kind, content in files[chunk.index]:
            path = tmp / f"{job.id}-{chunk.index}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            object_store(job=job, chunk=chunk, kind=kind, path=path)
        Chunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.SUCCEEDED, cost={"total_usd": 0.01})
    return Job.objects.get(pk=job.id)


def chunks_of(job: Job) -> list[Chunk]:
    return list(job.chunks.order_by("index"))


class SyntheticMedia(io.RawIOBase):
    """``size`` bytes of incompressible-looking data generated on the fly, seekable, never held whole.

    Byte ``i`` is ``pattern[i % len(pattern)]``: a seeded random pattern of a length that is no power of
    two, so part and block boundaries of the code under test never line up with it.
    """

    def __init__(self, size: int, *, seed: int = 7, pattern_bytes: int = MiB + 4099) -> None:
        super().__init__()
        self.size = size
        self._pattern = random.Random(seed).randbytes(pattern_bytes)
        self._doubled = self._pattern * 2
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1, /) -> bytes:
        left = self.size - self._pos
        if left <= 0:
            return b""
        want = left if size is None or size < 0 else min(size, left)
        out = bytearray()
        while len(out) < want:
            start = self._pos % len(self._pattern)
            take = min(want - len(out), len(self._pattern))
            out += self._doubled[start:start + take]
            self._pos += take
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def sha256(self, *, block: int = 8 * MiB) -> str:
        digest = hashlib.sha256()
        self.seek(0)
        while data := self.read(block):
            digest.update(data)
        self.seek(0)
        return digest.hexdigest()


class S3SequentialReader(io.RawIOBase):
    """A read-only, seekable view of one S3 object for ``zipfile`` that downloads it once, in order.

    zipfile reads the end of an archive first (the central directory) and then each member front to back,
    so: the tail comes from one ranged GET, and everything else from one streamed GET, skipping forward
    when asked. The streamed bytes are hashed as they pass; ``finish()`` reads the rest and returns the
    object's sha256 and the number of GETs made.
    """

    def __init__(self, client: Any, bucket: str, key: str, *, tail_bytes: int = 4 * MiB) -> None:
        super().__init__()
        self.client, self.bucket, self.key = client, bucket, key
        self.size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        self._tail_start = max(0, self.size - tail_bytes)
        self._tail = client.get_object(Bucket=bucket, Key=key,
                                       Range=f"bytes={self._tail_start}-{self.size - 1}")["Body"].read()
        self.gets = 1
        self._body: Any = None
        self._stream_pos = 0
        self._digest = hashlib.sha256()
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _stream_read(self, n: int) -> bytes:
        if self._body is None:
            self._body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
            self.gets += 1
        data: bytes = self._body.read(n)
        self._digest.update(data)
        self._stream_pos += len(data)
        return data

    def read(self, size: int = -1, /) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        if end <= self._pos:
            return b""
        if self._pos >= self._tail_start and self._pos >= self._stream_pos:
            data = self._tail[self._pos - self._tail_start:end - self._tail_start]
        else:
            if self._pos < self._stream_pos:
                raise AssertionError(f"zipfile read backwards ({self._pos} < {self._stream_pos})")
            while self._stream_pos < self._pos:  # skip forward (data descriptors, headers), hashing
                if not self._stream_read(min(8 * MiB, self._pos - self._stream_pos)):
                    raise EOFError(self.key)
            data = self._stream_read(end - self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def finish(self) -> str:
        """Stream whatever zipfile did not read and return the sha256 of the whole object."""
        while self._stream_pos < self.size:
            if not self._stream_read(8 * MiB):
                raise EOFError(self.key)
        if self._body is not None:
            self._body.close()
        return self._digest.hexdigest()


BUILDS: list[str] = []


def counted_bundle_build(*, job: Job, chunks: list[Chunk]) -> BundleSummary:
    """The real ``bundle_build``, counting its calls in ``BUILDS`` (SCREENREEL_BUNDLE_BUILDER in a test)."""
    BUILDS.append(job.id)
    return bundle_build(job=job, chunks=chunks)


SLOW: dict[str, object] = {}


def slow_bundle_build(*, job: Job, chunks: list[Chunk]) -> BundleSummary:
    """The real ``bundle_build`` after ``SLOW["seconds"]``, noting what others saw of the job meanwhile: whether
    its claim was still ahead, what a second settle did, and what the recovery sweep queued."""
    import time

    from django.utils import timezone

    from jobs.pipeline import pipeline_recover
    from jobs.services.jobs import job_settle

    time.sleep(float(SLOW["seconds"]))  # type: ignore[arg-type]
    due = Job.objects.get(pk=job.pk).settle_due_at
    SLOW["claim_ahead_s"] = (due - timezone.now()).total_seconds() if due else None
    SLOW["second_settle"] = job_settle(job_id=job.id)
    SLOW["sweep"] = pipeline_recover(grace_s=0)["job_settle"]
    return bundle_build(job=job, chunks=chunks)
