"""A demo's schedule: a five-field cron expression read in a time zone, at most once an hour (docs/demos.md).

Parsed by cronsim (the cron parser of healthchecks.io): it refuses dates that never come (``0 0 30 2 *``) at
parse time, and steps through daylight-saving changes in the zone's own local time.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

MAX_CRON = 100


class ScheduleInvalid(ValueError):
    """What is wrong with a schedule, in words a client can act on; ``code`` is stable."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def zone(name: str) -> ZoneInfo:
    # Only the IANA names the system knows: ZoneInfo would also read a path-like key from the disk.
    if name not in _zones():
        raise ScheduleInvalid("Must be an IANA time zone name, such as UTC or Europe/Paris.", code="invalid_timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid("Must be an IANA time zone name, such as UTC or Europe/Paris.",
                              code="invalid_timezone") from None


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def schedule_next(cron: str, timezone: str, *, after: datetime) -> datetime:
    """The schedule's first time strictly after ``after``, in UTC. Raises ScheduleInvalid for a cron expression
    that is malformed, never comes, or comes more often than hourly."""
    if len(cron) > MAX_CRON or len(cron.split()) != 5:
        raise ScheduleInvalid("Must be a cron expression of five fields (minute hour day month weekday), such as "
                              "'0 6 * * 1-5'.", code="invalid_cron")
    start = after.astimezone(zone(timezone))
    try:
        times = CronSim(cron, start)
    except CronSimError as exc:
        raise ScheduleInvalid(f"Not a cron expression cronsim can read: {exc}.", code="invalid_cron") from None
    if len(times.minutes) != 1:
        # Two minutes in one hour run twice in that hour; one minute runs at most once an hour, whatever the rest.
        raise ScheduleInvalid("A demo is refreshed at most once an hour: give the minute field one value, such as "
                              "'0' or '30'.", code="schedule_too_frequent")
    try:
        due = next(times)
    except StopIteration:
        raise ScheduleInvalid("This cron expression never comes.", code="invalid_cron") from None
    return due.astimezone(UTC)
