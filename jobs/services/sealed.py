"""Re-sealing every secret at rest with the first encryption key: the middle step of a key rotation
(docs/operating.md). Finds the columns by their type (``jobs.lib.keys.crypto.SealedField``), so a new model
holding secrets is covered without changes here."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.apps import apps
from django.db import models, transaction

from jobs.lib.keys import crypto


@dataclass
class ColumnRotation:
    """What one sealed column held: values re-sealed, values already under the first key, values no key
    opens (their primary keys, to investigate: never the values)."""

    column: str
    resealed: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)


def sealed_columns() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) whose column holds tokens from ``jobs.lib.keys.crypto.seal``."""
    return [(model, f.name) for model in apps.get_models() for f in model._meta.get_fields()
            if isinstance(f, crypto.SealedField)]


def sealed_rotate(*, batch: int = 500) -> list[ColumnRotation]:
    """Seal again with the first key every value sealed with another one; returns a summary per column.

    Idempotent and resumable: a value already under the first key is left alone, so a second run (or a
    run after an interrupted one) changes nothing it need not. Each write is a compare-and-swap on the
    token read, so a secret rotated by its owner meanwhile is never overwritten with the old one.
    """
    return [_rotate_column(model, name, batch) for model, name in sealed_columns()]


def _rotate_column(model: type[models.Model], name: str, batch: int) -> ColumnRotation:
    summary = ColumnRotation(column=f"{model._meta.label}.{name}")
    manager = model._default_manager
    last: object = None
    while True:
        page = manager.exclude(**{name: ""}).order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        rows = list(page.values_list("pk", name)[:batch])
        if not rows:
            return summary
        with transaction.atomic():
            for pk, token in rows:
                if not crypto.needs_rotation(token):
                    summary.current += 1
                    continue
                try:
                    fresh = crypto.rotate(token)
                except crypto.SealError:
                    summary.unreadable.append(str(pk))
                    continue
                if manager.filter(pk=pk, **{name: token}).update(**{name: fresh}):
                    summary.resealed += 1
                else:
                    summary.current += 1  # changed meanwhile by its owner, sealed with the first key then
        last = rows[-1][0]
