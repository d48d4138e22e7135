# Endpoints' signing secrets are stored sealed (jobs.lib.keys.crypto).

from typing import Any

from django.db import migrations

import jobs.lib.keys.crypto

FIELDS = ("secret_sealed", "previous_secret_sealed")


def _seal_all(apps: Any, schema_editor: Any) -> None:
    """Seal every secret still in clear. A value that already opens is left alone, so this may run again."""
    Endpoint = apps.get_model("webhooks", "Endpoint")
    for endpoint in Endpoint.objects.using(schema_editor.connection.alias).only("pk", *FIELDS).iterator():
        changed = []
        for field in FIELDS:
            value = getattr(endpoint, field)
            if not value:
                continue
            try:
                jobs.lib.keys.crypto.unseal(value)
            except jobs.lib.keys.crypto.SealError:
                setattr(endpoint, field, jobs.lib.keys.crypto.seal(value))
                changed.append(field)
        if changed:
            endpoint.save(update_fields=changed)


def _unseal_all(apps: Any, schema_editor: Any) -> None:
    """Back to the old schema, which kept the secrets in clear."""
    Endpoint = apps.get_model("webhooks", "Endpoint")
    for endpoint in Endpoint.objects.using(schema_editor.connection.alias).only("pk", *FIELDS).iterator():
        for field in FIELDS:
            value = getattr(endpoint, field)
            setattr(endpoint, field, jobs.lib.keys.crypto.unseal(value) if value else "")
        endpoint.save(update_fields=list(FIELDS))


class Migration(migrations.Migration):

    dependencies = [
        ('webhooks', '0002_delivery_plural'),
    ]

    operations = [
        migrations.RenameField(
            model_name='endpoint',
            old_name='secret',
            new_name='secret_sealed',
        ),
        migrations.RenameField(
            model_name='endpoint',
            old_name='previous_secret',
            new_name='previous_secret_sealed',
        ),
        migrations.AlterField(
            model_name='endpoint',
            name='secret_sealed',
            field=jobs.lib.keys.crypto.SealedField(editable=False),
        ),
        migrations.AlterField(
            model_name='endpoint',
            name='previous_secret_sealed',
            field=jobs.lib.keys.crypto.SealedField(blank=True, default='', editable=False),
        ),
        migrations.RunPython(_seal_all, _unseal_all, elidable=False),
    ]
