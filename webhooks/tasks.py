from __future__ import annotations

from celery import shared_task

from webhooks.services import deliveries as services


@shared_task(name="webhooks.tasks.delivery_send", acks_late=True, reject_on_worker_lost=True)
def delivery_send(delivery_id: str, token: str | None = None) -> None:
    services.delivery_attempt(delivery_id=delivery_id, token=token)


@shared_task(name="webhooks.tasks.deliveries_sweep")
def deliveries_sweep() -> int:
    return services.deliveries_sweep()
