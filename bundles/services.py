"""Building a job's bundle: a zip of every succeeded chunk's files plus ``manifest.json``, streamed into storage."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import IO, Any

from django.db import transaction
from django.utils import timezone

from bundles.links import link_sign
from bundles.models import Bundle
from bundles.sinks import bundle_sink
from jobs.errors import PermanentError
from jobs.models import Chunk, ChunkStatus, Job
from jobs.storage import job_prefix, storage_reader

_STORED_KINDS = frozenset({"video", "still", "audio", "recording"})
_COPY_CHUNK = 1024 * 1024


def bundle_key(job: Job, version: int) -> str:
    return f"{job_prefix(job)}/bundles/v{version}/{job.id}-v{version}.zip"


def manifest_build(*, job: Job, chunks: list[Chunk], version: int) -> dict[str, Any]:
    """The manifest: every bundled asset with status, bytes, sha256, duration and cost; every failure."""
    assets: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for chunk in chunks:
        if chunk.status != ChunkStatus.SUCCEEDED:
            failed.append({"chunk": chunk.index, "title": chunk.title, "status": chunk.status,
                           "reason": chunk.error or chunk.status})
            continue
        for asset in chunk.assets:
            if asset.get("bundled") is False:
                continue
            entry = {"name": asset["name"], "chunk": chunk.index, "kind": asset["kind"], "status": "succeeded",
                     "bytes": asset["bytes"], "sha256": asset["sha256"],
                     "duration_ms": asset.get("duration_ms")}
            if asset["kind"] == "still":
                entry.update(after_step=asset.get("after_step"), width=asset.get("width"),
                             height=asset.get("height"))
            if asset["kind"] == "video":
                entry["cost"] = chunk.cost
            assets.append(entry)
    total = sum((c.cost or {}).get("total_usd", 0.0) for c in chunks if c.status == ChunkStatus.SUCCEEDED)
    return {
        "manifest_version": "1.0",
        "job_id": job.id,
        "bundle_version": version,
        "status": "succeeded" if not failed else "partial_success",
        "created_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "target_url": job.spec["target_url"],
        "metadata": job.spec.get("metadata", {}),
        "chunks": [
            {"chunk": c.index, "title": c.title, "status": c.status, "error": c.error or None,
             "recording": c.recording, "speech": c.speech, "cost": c.cost}
            for c in chunks
        ],
        "assets": assets,
        "failed_chunks": failed,
        "cost": {"currency": "USD", "total_usd": round(total, 6)},
    }


class BundleAssetMismatch(PermanentError):
    """An asset in storage is not the one the chunk recorded (other bytes or another size)."""


def _zip_info(name: str, *, compress_type: int, date_time: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=date_time)
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def _copy_verified(asset: dict[str, Any], dst: IO[bytes]) -> None:
    """Copy one asset from storage into ``dst``, checking its sha256 and size as the bytes pass."""
    digest = hashlib.sha256()
    size = 0
    with storage_reader(asset["key"]) as src:
        while block := src.read(_COPY_CHUNK):
            digest.update(block)
            size += len(block)
            dst.write(block)
    if digest.hexdigest() != asset["sha256"] or size != asset["bytes"]:
        raise BundleAssetMismatch(f"{asset['name']} changed in storage since it was written "
                                  f"({size} bytes, sha256 {digest.hexdigest()[:12]}...)")


def bundle_write(sink: io.RawIOBase | IO[bytes], *, chunks: list[Chunk], manifest: dict[str, Any]) -> None:
    """Stream every bundled asset and then the manifest into ``sink`` as a zip64 archive; returns nothing.

    ``sink`` may be unseekable (zipfile then writes data descriptors); nothing is held whole in memory.
    """
    stamp = timezone.now().timetuple()[:6]
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for chunk in chunks:
            if chunk.status != ChunkStatus.SUCCEEDED:
                continue
            for asset in chunk.assets:
                if asset.get("bundled") is False:
                    continue
                # Media barely compresses (FIELD_NOTES: 93-97%); deflating it only burns CPU.
                method = zipfile.ZIP_STORED if asset["kind"] in _STORED_KINDS else zipfile.ZIP_DEFLATED
                info = _zip_info(asset["name"], compress_type=method, date_time=stamp)
                with archive.open(info, "w", force_zip64=True) as dst:
                    _copy_verified(asset, dst)
        info = _zip_info("manifest.json", compress_type=zipfile.ZIP_DEFLATED, date_time=stamp)
        with archive.open(info, "w", force_zip64=True) as dst:
            dst.write(json.dumps(manifest, indent=2).encode())


def bundle_build(*, job: Job, chunks: list[Chunk]) -> dict[str, Any]:
    """Zip the job's succeeded chunks with a manifest straight into storage; returns the bundle summary."""
    version = job.run
    key = bundle_key(job, version)
    filename = f"{job.id}-v{version}.zip"
    manifest = manifest_build(job=job, chunks=chunks, version=version)
    # Committed (multipart completed, or temp file renamed) only if the whole archive was written.
    with bundle_sink(key=key, content_type="application/zip") as sink:
        bundle_write(sink, chunks=chunks, manifest=manifest)
    with transaction.atomic():
        Bundle.objects.update_or_create(
            job=job, version=version,
            defaults={"client_id": job.client_id, "key": key, "size_bytes": sink.size,
                      "sha256": sink.sha256, "manifest": manifest, "purged_at": None},
        )
    link = link_sign(client_id=job.client_id, key=key, filename=filename)
    return {"version": version, "size_bytes": sink.size, "sha256": sink.sha256,
            "assets": len(manifest["assets"]), "failed_chunks": [f["chunk"] for f in manifest["failed_chunks"]],
            **link.to_dict()}
