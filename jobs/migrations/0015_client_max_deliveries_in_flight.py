# A per-client cap on webhook attempts in flight (empty: the deployment's SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0014_client_max_webhook_endpoints'),
    ]

    operations = [
        migrations.AddField(
            model_name='client',
            name='max_deliveries_in_flight',
            field=models.PositiveIntegerField(blank=True, help_text="Webhook attempts in flight at once, over all the client's endpoints. Empty: the deployment's default (32).", null=True),
        ),
    ]
