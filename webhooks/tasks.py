"""Webhooks need no Celery tasks: the dispatcher (webhooks.dispatcher) runs inside every worker that
consumes the ``deliver`` queue, started by the worker signal below."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready, worker_shutdown

from webhooks.dispatcher import Dispatcher

_dispatcher: Dispatcher | None = None


@worker_ready.connect
def _start_dispatcher(sender: Any = None, **kwargs: Any) -> None:
    global _dispatcher
    queues = {queue.name for queue in sender.app.amqp.queues.consume_from.values()}
    if "deliver" in queues and _dispatcher is None:
        _dispatcher = Dispatcher()
        _dispatcher.start()


@worker_shutdown.connect
def _stop_dispatcher(**kwargs: Any) -> None:
    if _dispatcher is not None:
        _dispatcher.stop()
