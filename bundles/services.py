"""Building a job's bundle: a zip of every succeeded chunk's files plus ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from bundles.links import link_sign
from bundles.models import Bundle
from jobs.models import Chunk, ChunkStatus, Job
from jobs.storage import job_prefix, store_file

# Media barely compresses (FIELD_NOTES: 93-97%); deflating it only burns CPU.
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


def _write_zip(target: Path, *, chunks: list[Chunk], manifest: dict[str, Any]) -> None:
    """Stream every asset from storage into the zip: nothing is held whole in memory."""
    with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
        for chunk in chunks:
            if chunk.status != ChunkStatus.SUCCEEDED:
                continue
            for asset in chunk.assets:
                if asset.get("bundled") is False:
                    continue
                info = zipfile.ZipInfo(asset["name"], date_time=timezone.now().timetuple()[:6])
                info.compress_type = zipfile.ZIP_STORED if asset["kind"] in _STORED_KINDS \
                    else zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with default_storage.open(asset["key"], "rb") as src, \
                        archive.open(info, "w", force_zip64=True) as dst:
                    digest = hashlib.sha256()
                    while block := src.read(_COPY_CHUNK):
                        digest.update(block)
                        dst.write(block)
                if digest.hexdigest() != asset["sha256"]:
                    raise RuntimeError(f"{asset['name']} changed in storage since it was written")
        archive.writestr(zipfile.ZipInfo("manifest.json", date_time=timezone.now().timetuple()[:6]),
                         json.dumps(manifest, indent=2), compress_type=zipfile.ZIP_DEFLATED)


def bundle_build(*, job: Job, chunks: list[Chunk]) -> dict[str, Any]:
    """Zip the job's succeeded chunks with a manifest, store it and sign a link; returns the bundle summary."""
    version = job.run
    key = bundle_key(job, version)
    manifest = manifest_build(job=job, chunks=chunks, version=version)
    settings.SCREENREEL_WORK_DIR.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix="bundle-", dir=settings.SCREENREEL_WORK_DIR))
    try:
        path = tmpdir / f"{job.id}-v{version}.zip"
        _write_zip(path, chunks=chunks, manifest=manifest)
        stored = store_file(key=key, path=path, kind="bundle")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    with transaction.atomic():
        Bundle.objects.update_or_create(
            job=job, version=version,
            defaults={"client_id": job.client_id, "key": key, "size_bytes": stored["bytes"],
                      "sha256": stored["sha256"], "manifest": manifest, "purged_at": None},
        )
    link = link_sign(client_id=job.client_id, key=key, filename=f"{job.id}-v{version}.zip")
    return {"version": version, "size_bytes": stored["bytes"], "sha256": stored["sha256"],
            "assets": len(manifest["assets"]), "failed_chunks": [f["chunk"] for f in manifest["failed_chunks"]],
            **link.to_dict()}

