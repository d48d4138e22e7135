"""The data migration moves each chunk's JSON assets and each bundle's own fields into StoredObject rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("jobs", "0003_stored_objects"), ("bundles", "0002_bundle_stored_object")]
AFTER = [("jobs", "0005_drop_asset_json"), ("bundles", "0004_bundle_fields_moved")]


@pytest.mark.django_db(transaction=True)
def test_assets_and_bundles_become_stored_object_rows() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([*BEFORE, ("retention", None)])
    old = executor.loader.project_state(BEFORE).apps
    Client, Job, Chunk, Bundle = (old.get_model(*m) for m in (
        ("jobs", "Client"), ("jobs", "Job"), ("jobs", "Chunk"), ("bundles", "Bundle")))
    client = Client.objects.create(id="cli_m", name="M", webhook_secret="whsec_x")
    job = Job.objects.create(id="job_m", client=client, spec={"target_url": "https://x.example"})
    prefix = "clients/cli_m/jobs/job_m"
    Chunk.objects.create(job=job, index=1, title="F", status="succeeded", assets=[
        {"name": "chunk-1-recording.mp4", "kind": "recording", "key": f"{prefix}/chunks/1/chunk-1-recording.mp4",
         "bytes": 10, "sha256": "a" * 64, "duration_ms": 5000, "bundled": False},
        {"name": "chunk-1-still-1.png", "kind": "still", "key": f"{prefix}/chunks/1/chunk-1-still-1.png",
         "bytes": 3, "sha256": "b" * 64, "after_step": 2, "width": 1280, "height": 720}])
    Bundle.objects.create(job=job, client=client, version=1, key=f"{prefix}/bundles/v1/job_m-v1.zip", size_bytes=99,
                          sha256="c" * 64, manifest={"assets": [{}], "failed_chunks": []})

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    StoredObject = new.get_model("jobs", "StoredObject")
    rows = {o.name: o for o in StoredObject.objects.filter(job_id="job_m")}
    assert set(rows) == {"chunk-1-recording.mp4", "chunk-1-still-1.png", "job_m-v1.zip"}
    assert (rows["chunk-1-recording.mp4"].retention_class, rows["chunk-1-recording.mp4"].meta) == \
        ("raw", {"duration_ms": 5000})
    assert rows["chunk-1-still-1.png"].meta == {"after_step": 2, "width": 1280, "height": 720}
    zipped = rows["job_m-v1.zip"]
    assert (zipped.kind, zipped.retention_class, zipped.bytes, zipped.meta["version"]) == ("bundle", "bundle", 99, 1)
    assert new.get_model("bundles", "Bundle").objects.get(job_id="job_m").stored_id == zipped.pk

    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
