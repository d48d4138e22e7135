# The client's webhook secret is stored sealed (jobs.lib.keys.crypto).

from typing import Any

from django.db import migrations

import jobs.lib.keys.crypto


def _seal_all(apps: Any, schema_editor: Any) -> None:
    """Seal every webhook secret still in clear. A value that already opens is left alone, so this may run
    again after an interruption."""
    Client = apps.get_model("jobs", "Client")
    for client in Client.objects.using(schema_editor.connection.alias).only("pk", "webhook_secret_sealed").iterator():
        value = client.webhook_secret_sealed
        try:
            jobs.lib.keys.crypto.unseal(value)
        except jobs.lib.keys.crypto.SealError:
            client.webhook_secret_sealed = jobs.lib.keys.crypto.seal(value)
            client.save(update_fields=["webhook_secret_sealed"])


def _unseal_all(apps: Any, schema_editor: Any) -> None:
    """Back to the old schema, which kept the secret in clear."""
    Client = apps.get_model("jobs", "Client")
    for client in Client.objects.using(schema_editor.connection.alias).only("pk", "webhook_secret_sealed").iterator():
        client.webhook_secret_sealed = jobs.lib.keys.crypto.unseal(client.webhook_secret_sealed)
        client.save(update_fields=["webhook_secret_sealed"])


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0012_mux_fair_share'),
    ]

    operations = [
        migrations.RenameField(
            model_name='client',
            old_name='webhook_secret',
            new_name='webhook_secret_sealed',
        ),
        migrations.AlterField(
            model_name='client',
            name='webhook_secret_sealed',
            field=jobs.lib.keys.crypto.SealedField(editable=False),
        ),
        migrations.RunPython(_seal_all, _unseal_all, elidable=False),
    ]
