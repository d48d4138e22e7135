"""Building a job's bundle: a zip of every succeeded chunk's files plus ``manifest.json``, streamed into storage."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import zipfile
from collections.abc import Mapping
from typing import IO, Any, TypedDict

from django.db import transaction
from django.utils import timezone

from bundles.models import Bundle
from jobs.lib.failures import PermanentError
from jobs.models import Chunk, ChunkStatus, Job, ObjectKind, StoredObject
from jobs.services.objects import object_record
from jobs.storage.files import storage_reader
from jobs.storage.keys import object_key
from jobs.storage.links import link_sign
from jobs.storage.sinks import bundle_sink

_STORED_KINDS = frozenset({ObjectKind.VIDEO, ObjectKind.STILL, ObjectKind.FAILURE, ObjectKind.DRIFT, ObjectKind.AUDIO,
                           ObjectKind.RECORDING,
                           ObjectKind.RENDITION, ObjectKind.PREVIEW})
_COPY_CHUNK = 1024 * 1024


def bundled_objects(*, job: Job) -> list[StoredObject]:
    """What the job's next bundle holds, chunk by chunk (``StoredObject.objects.bundled``: the one rule)."""
    return list(StoredObject.objects.bundled().filter(job=job).select_related("chunk")
                .order_by("chunk__index", "id"))


def manifest_build(*, job: Job, chunks: list[Chunk], objects: list[StoredObject], version: int,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest: every bundled asset with status, bytes, sha256, duration and cost; every failure; where
    each chunk's steps, lines and chapters are in its final video; and what an app building on bundles adds
    (``extra``: a demo version's ``drift``)."""
    by_index = {c.index: c for c in chunks}
    assets: list[dict[str, Any]] = []
    failed = [{"chunk": c.index, "title": c.title, "status": c.status, "reason": c.error or c.status,
               "failure": c.failure} for c in chunks if c.status != ChunkStatus.SUCCEEDED]
    for obj in objects:
        assert obj.chunk is not None
        entry = {"name": obj.name, "chunk": obj.chunk.index, "kind": obj.kind, "status": "succeeded",
                 "bytes": obj.bytes, "sha256": obj.sha256, "duration_ms": obj.meta.get("duration_ms")}
        if obj.kind in (ObjectKind.STILL, ObjectKind.RENDITION, ObjectKind.PREVIEW, ObjectKind.FAILURE,
                        ObjectKind.DRIFT):
            entry.update({k: obj.meta[k] for k in ("after_step", "rendition", "width", "height") if k in obj.meta})
        if obj.kind == ObjectKind.VIDEO:
            entry["cost"] = by_index[obj.chunk.index].cost
        assets.append(entry)
    total = sum((c.cost or {}).get("total_usd", 0.0) for c in chunks if c.status == ChunkStatus.SUCCEEDED)
    return {
        "manifest_version": "1.1",
        "job_id": job.id,
        "bundle_version": version,
        "status": "succeeded" if not failed else "partial_success",
        "created_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "target_url": job.parsed_spec.target_url,
        "metadata": job.parsed_spec.metadata,
        # Per chunk, where everything is in its final video (chunk.timeline): each step's start and end,
        # each line's start, end and text, each chapter's start and title.
        "chunks": [
            {"chunk": c.index, "title": c.title, "status": c.status, "error": c.error or None,
             "recording": c.recording, "speech": c.speech, "cost": c.cost, "timeline": c.timeline,
             "carried_from": c.carried_view()}
            for c in chunks
        ],
        "assets": assets,
        "failed_chunks": failed,
        "cost": {"currency": "USD", "total_usd": round(total, 6)},
        **(extra or {}),
    }


class BundleAssetMismatch(PermanentError):
    """An asset in storage is not the one the chunk recorded (other bytes or another size). Its message names the
    job's own file and what to do, so the client reads it as it is."""

    public = True


def _zip_info(name: str, *, compress_type: int, date_time: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=date_time)
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def _copy_verified(obj: StoredObject, dst: IO[bytes]) -> None:
    """Copy one object from storage into ``dst``, checking its sha256 and size as the bytes pass."""
    digest = hashlib.sha256()
    size = 0
    with storage_reader(obj.key) as src:
        while block := src.read(_COPY_CHUNK):
            digest.update(block)
            size += len(block)
            dst.write(block)
    if digest.hexdigest() != obj.sha256 or size != obj.bytes:
        assert obj.chunk is not None  # bundled objects are a chunk's (StoredObject.objects.bundled)
        raise BundleAssetMismatch(f"{obj.name} changed in storage since it was written ({size} bytes, sha256 "
                                  f"{digest.hexdigest()[:12]}...); rerun chunk {obj.chunk.index} to make it again")


def bundle_write(sink: io.RawIOBase | IO[bytes], *, objects: list[StoredObject], manifest: dict[str, Any]) -> None:
    """Stream every object and then the manifest into ``sink`` as a zip64 archive; returns nothing.

    ``sink`` may be unseekable (zipfile then writes data descriptors); nothing is held whole in memory.
    """
    stamp = timezone.now().timetuple()[:6]
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for obj in objects:
            # Media barely compresses (mp4, mp3, png: 93-97% of their size under deflate): deflating only burns CPU.
            method = zipfile.ZIP_STORED if obj.kind in _STORED_KINDS else zipfile.ZIP_DEFLATED
            info = _zip_info(obj.name, compress_type=method, date_time=stamp)
            with archive.open(info, "w", force_zip64=True) as dst:
                _copy_verified(obj, dst)
        info = _zip_info("manifest.json", compress_type=zipfile.ZIP_DEFLATED, date_time=stamp)
        with archive.open(info, "w", force_zip64=True) as dst:
            dst.write(json.dumps(manifest, indent=2).encode())


class BundleSummary(TypedDict):
    """What ``bundle_build`` returns: the ``bundle.ready`` event's ``bundle`` (a link signed at build time)."""

    version: int
    assets: int
    failed_chunks: list[int]
    size_bytes: int
    sha256: str
    url: str
    expires_at: str


def bundle_build(*, job: Job, chunks: list[Chunk], extra: Mapping[str, Any] | None = None) -> BundleSummary:
    """Zip the job's succeeded chunks with a manifest straight into storage; returns the bundle summary
    (with a link signed now, for the ``bundle.ready`` event; reads of the job sign their own). ``extra``: more
    sections of the manifest."""
    version = job.run
    filename = f"{job.id}-v{version}.zip"
    objects = bundled_objects(job=job)
    manifest = manifest_build(job=job, chunks=chunks, objects=objects, version=version, extra=extra)
    failed = [f["chunk"] for f in manifest["failed_chunks"]]
    summary = {"version": version, "assets": len(manifest["assets"]), "failed_chunks": failed}
    # Each build writes its own object (a settle retried, or two racing, never share one key or row), and
    # the row comes before the bytes: storage never holds an object no row accounts for.
    key = object_key(job, kind=ObjectKind.BUNDLE, name=filename, attempt=secrets.token_hex(4))
    with transaction.atomic():
        stored = object_record(job=job, kind=ObjectKind.BUNDLE, name=filename, meta=summary, key=key)
    try:
        # Committed (multipart completed, or temp file renamed) only if the whole archive was written.
        with bundle_sink(key=stored.key, content_type="application/zip") as sink:
            bundle_write(sink, objects=objects, manifest=manifest)
    except BaseException:
        # Nothing was stored, so no row may say otherwise (a retry records it afresh).
        StoredObject.objects.filter(pk=stored.pk, bundle__isnull=True).delete()
        raise
    with transaction.atomic():
        StoredObject.objects.filter(pk=stored.pk).update(bytes=sink.size, sha256=sink.sha256)
        previous = Bundle.objects.select_for_update().filter(job=job, version=version).first()
        if previous is not None:  # an earlier build of this run: it stays stored (retention purges it) but
            StoredObject.objects.filter(pk=previous.stored_id).update(current=False)  # is no longer the one
        Bundle.objects.update_or_create(job=job, version=version,
                                        defaults={"stored": stored, "manifest": manifest})
    link = link_sign(client_id=job.client_id, key=stored.key, filename=filename)
    return BundleSummary(version=version, assets=len(manifest["assets"]), failed_chunks=failed, size_bytes=sink.size,
                         sha256=sink.sha256, url=link.url, expires_at=link.to_dict()["expires_at"])
