# The fair claim reads each client's due deliveries (webhooks.services.deliveries._fair_order): an index
# per client in due order replaces the one in due order alone.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('webhooks', '0003_endpoint_secrets_sealed'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['client', 'next_attempt_at', 'id'], name='delivery_client_due_idx'),
        ),
        migrations.RemoveIndex(
            model_name='delivery',
            name='delivery_due_idx',
        ),
    ]
