"""Move each chunk's JSON list of assets into StoredObject rows (keys stay as they were written)."""

from django.db import migrations

# As the kinds' classes were when this migration was written (jobs.models.KIND_CLASS may grow later).
KIND_CLASS = {"recording": "raw", "still": "output", "script": "output", "audio": "output", "video": "output"}
META_FIELDS = ("duration_ms", "after_step", "width", "height")


def forwards(apps, schema_editor):
    Chunk = apps.get_model("jobs", "Chunk")
    StoredObject = apps.get_model("jobs", "StoredObject")
    for chunk in Chunk.objects.select_related("job").exclude(assets=[]).iterator():
        for asset in chunk.assets or []:
            kind = asset.get("kind")
            if kind not in KIND_CLASS or not asset.get("key"):
                continue
            StoredObject.objects.get_or_create(
                key=asset["key"],
                defaults={"client_id": chunk.job.client_id, "job_id": chunk.job_id, "chunk_id": chunk.pk,
                          "name": asset.get("name", asset["key"].rsplit("/", 1)[-1]), "kind": kind,
                          "retention_class": KIND_CLASS[kind], "bytes": asset.get("bytes", 0),
                          "sha256": asset.get("sha256", ""),
                          "meta": {k: asset[k] for k in META_FIELDS if k in asset},
                          "created_at": chunk.finished_at or chunk.updated_at},
            )


def backwards(apps, schema_editor):
    Chunk = apps.get_model("jobs", "Chunk")
    StoredObject = apps.get_model("jobs", "StoredObject")
    for chunk in Chunk.objects.all().iterator():
        rows = StoredObject.objects.filter(chunk=chunk, current=True).exclude(kind="bundle").order_by("id")
        chunk.assets = [{"name": o.name, "kind": o.kind, "key": o.key, "bytes": o.bytes, "sha256": o.sha256,
                         **o.meta, **({"bundled": False} if o.kind == "recording" else {})} for o in rows]
        chunk.save(update_fields=["assets"])


class Migration(migrations.Migration):
    dependencies = [("jobs", "0003_stored_objects")]
    operations = [migrations.RunPython(forwards, backwards)]
