"""Each bundle's zip becomes a StoredObject row (0004 then drops the fields that row now owns)."""

from django.db import migrations


def forwards(apps, schema_editor):
    Bundle = apps.get_model("bundles", "Bundle")
    StoredObject = apps.get_model("jobs", "StoredObject")
    for bundle in Bundle.objects.filter(stored__isnull=True).iterator():
        manifest = bundle.manifest or {}
        stored, _ = StoredObject.objects.get_or_create(
            key=bundle.key,
            defaults={"client_id": bundle.client_id, "job_id": bundle.job_id, "chunk_id": None,
                      "name": bundle.key.rsplit("/", 1)[-1], "kind": "bundle", "retention_class": "bundle",
                      "bytes": bundle.size_bytes, "sha256": bundle.sha256, "created_at": bundle.created_at,
                      "purged_at": bundle.purged_at,
                      "meta": {"version": bundle.version, "assets": len(manifest.get("assets", [])),
                               "failed_chunks": [f.get("chunk") for f in manifest.get("failed_chunks", [])]}},
        )
        bundle.stored_id = stored.pk
        bundle.save(update_fields=["stored"])


def backwards(apps, schema_editor):
    Bundle = apps.get_model("bundles", "Bundle")
    for bundle in Bundle.objects.select_related("stored").iterator():
        bundle.client_id, bundle.key = bundle.stored.client_id, bundle.stored.key
        bundle.size_bytes, bundle.sha256 = bundle.stored.bytes, bundle.stored.sha256
        bundle.purged_at = bundle.stored.purged_at
        bundle.save()


class Migration(migrations.Migration):
    dependencies = [("bundles", "0002_bundle_stored_object"), ("jobs", "0004_assets_to_rows")]
    operations = [migrations.RunPython(forwards, backwards)]
