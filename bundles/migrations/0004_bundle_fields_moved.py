"""The zip's key, size, sha256, client and purge time now live on its StoredObject row."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bundles", "0003_bundle_rows")]
    operations = [
        migrations.RemoveField(model_name="bundle", name="client"),
        migrations.RemoveField(model_name="bundle", name="key"),
        migrations.RemoveField(model_name="bundle", name="size_bytes"),
        migrations.RemoveField(model_name="bundle", name="sha256"),
        migrations.RemoveField(model_name="bundle", name="purged_at"),
        migrations.AlterField(
            model_name="bundle", name="stored",
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="bundle",
                                       to="jobs.storedobject"),
        ),
    ]
