# A per-client cap on webhook endpoints (empty: the deployment's SCREENREEL_CLIENT_MAX_WEBHOOK_ENDPOINTS).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0013_client_webhook_secret_sealed'),
    ]

    operations = [
        migrations.AddField(
            model_name='client',
            name='max_webhook_endpoints',
            field=models.PositiveIntegerField(blank=True, help_text="Webhook endpoints registered at once, disabled ones included. Empty: the deployment's default (20).", null=True),
        ),
    ]
