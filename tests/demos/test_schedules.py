"""A demo's schedule: parsed by cronsim in the demo's time zone, at most hourly, and run by beat's
``demos_refresh_due``: one version per due time however often beat runs, times missed while beat was down
make no versions of their own, and a refresh the client has no room for is skipped without stopping the
schedule. (tests/e2e/test_demos.py runs it from a real beat.)"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from demos.models import Demo, DemoVersion
from demos.schedules import ScheduleInvalid, schedule_next
from demos.services import _refresh_scheduled, demo_create, demos_refresh_due
from tests.conftest import VALID_SPEC, Tenant

pytestmark = pytest.mark.django_db


def test_a_schedule_is_read_in_its_time_zone_across_daylight_saving() -> None:
    winter = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 6, 12, 0, tzinfo=UTC)
    assert schedule_next("0 6 * * *", "Europe/Paris", after=winter) == datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    assert schedule_next("0 6 * * *", "Europe/Paris", after=summer) == datetime(2026, 7, 7, 4, 0, tzinfo=UTC)
    assert schedule_next("30 * * * *", "UTC", after=winter) == datetime(2026, 12, 6, 12, 30, tzinfo=UTC)
    for cron, code in (("* * * * *", "schedule_too_frequent"), ("0 0 31 4 *", "invalid_cron"),
                       ("0 0 * * * *", "invalid_cron"), ("0 " * 60, "invalid_cron")):
        with pytest.raises(ScheduleInvalid) as refused:
            schedule_next(cron, "UTC", after=winter)
        assert refused.value.code == code


def _due(tenant: Tenant, *, ago: timedelta = timedelta(seconds=1), name: str = "Nightly") -> Demo:
    demo = demo_create(client=tenant.client, name=name, spec=copy.deepcopy(VALID_SPEC),
                       schedule={"cron": "0 6 * * *", "timezone": "Europe/Paris"})
    Demo.objects.filter(pk=demo.pk).update(next_refresh_at=timezone.now() - ago)
    return demo


def test_a_due_demo_makes_one_version_however_often_beat_runs(tenant: Tenant) -> None:
    demo = _due(tenant)
    due = Demo.objects.get(pk=demo.pk).next_refresh_at
    assert due is not None
    now = timezone.now()
    assert _refresh_scheduled(demo.pk, now) is True
    assert _refresh_scheduled(demo.pk, now) is False  # a second beat at the same moment
    assert demos_refresh_due() == 0
    version = DemoVersion.objects.get(demo=demo)
    assert (version.number, version.trigger, version.idempotency_key) == (1, "schedule", f"schedule:{due.isoformat()}")
    after = Demo.objects.get(pk=demo.pk).next_refresh_at
    assert after == schedule_next("0 6 * * *", "Europe/Paris", after=now)


def test_times_missed_while_beat_was_down_make_one_version(tenant: Tenant) -> None:
    demo = _due(tenant, ago=timedelta(days=3))
    assert demos_refresh_due() == 1
    assert DemoVersion.objects.filter(demo=demo).count() == 1
    refreshed = Demo.objects.get(pk=demo.pk)
    assert refreshed.next_refresh_at is not None and refreshed.next_refresh_at > timezone.now()


def test_a_refresh_without_room_is_skipped_and_the_schedule_goes_on(tenant: Tenant, settings: SettingsWrapper,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    settings.SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS = 1
    first, second = _due(tenant), _due(tenant, name="Weekly")
    with caplog.at_level(logging.WARNING, logger="demos.services"):
        assert demos_refresh_due() == 1
    assert DemoVersion.objects.count() == 1
    assert "too_many_jobs" in caplog.text
    for demo in (first, second):
        moved = Demo.objects.get(pk=demo.pk).next_refresh_at
        assert moved is not None and moved > timezone.now()


def test_an_unscheduled_demo_is_never_refreshed_by_beat(tenant: Tenant) -> None:
    demo = _due(tenant)
    tenant.api.patch(f"/v1/demos/{demo.pk}", {"schedule": None}, format="json")
    assert Demo.objects.get(pk=demo.pk).next_refresh_at is None
    assert demos_refresh_due() == 0 and not DemoVersion.objects.exists()
