"""The purge's concurrent path, committed to the database (each client on its own thread and connection):
the same outcome as one at a time, and no connection left open behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from jobs.models import StoredObject
from retention.models import PurgeAudit, PurgeRun
from retention.services.purge import retention_purge
from tests.factories import make_client, make_job
from tests.retention.support import in_storage, put, recordings

pytestmark = pytest.mark.django_db(transaction=True)


def _backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def test_clients_purged_concurrently_are_each_purged_and_audited_once(
        local_storage: Path, tmp_path: Path, settings: SettingsWrapper) -> None:
    settings.SCREENREEL_RETENTION_CONCURRENCY = 3
    settings.SCREENREEL_RETENTION_BATCH = 2
    objects, young = [], []
    for c in range(5):
        job = make_job(client=make_client(f"C{c}"))
        objects += recordings(job, 5, tmp=tmp_path)
        young.append(put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path))
    before = _backends()

    summary = retention_purge()

    assert sorted(summary.keys) == sorted(o.key for o in objects)
    assert summary.objects == 25 and summary.by_class == {"raw": 2500, "output": 0, "bundle": 0}
    assert not any(in_storage(o) for o in objects) and all(in_storage(o) for o in young)
    assert sorted(PurgeAudit.objects.values_list("stored_object_id", flat=True)) == sorted(o.pk for o in objects)
    assert StoredObject.objects.filter(purged_at__isnull=False).count() == 25
    run = PurgeRun.objects.get()
    assert (run.status, run.objects_purged, run.bytes_purged) == ("finished", 25, 2500)
    assert _backends() <= before  # the pool's connections were closed
