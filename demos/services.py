"""Every write of demos: create, change, delete, refresh (a new version, as an ordinary job) and publish.

Locks: the job-end handler (``demos.handlers``) runs inside the job's transition, with the job's row locked,
and then locks the demo's. So no write here locks a demo and then an existing job: a refresh locks the demo
and writes a new job (no one else holds it yet), and ``version_publish`` locks only the demo (its event is the
client's, not the job's). Retention holds take the client's lock, which comes before a job's, so they are
synced after the change commits (``demos.keeping``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from demos.fingerprints import fingerprints
from demos.keeping import demo_holds_sync_on_commit
from demos.models import DEFAULT_DRIFT_THRESHOLD, Demo, DemoVersion, Mode, Publish, Trigger
from demos.reports import drift_summary
from demos.schedules import ScheduleInvalid, schedule_next
from demos.selectors import carried_over
from jobs.lib.errors import Conflict, DomainError, NotFound
from jobs.lib.keys.scopes import JobOrigin
from jobs.models import Client, EventType, JobStatus
from jobs.services.events import event_record
from jobs.services.jobs import job_create, request_hash
from jobs.services.locks import client_lock

log = logging.getLogger(__name__)

SETTINGS = ("name", "spec", "publish", "keep_versions", "drift_threshold")


def _limit(client: Client) -> int:
    if client.max_demos is not None:
        return client.max_demos
    return int(settings.SCREENREEL_CLIENT_MAX_DEMOS)


def _name_taken(name: str) -> Conflict:
    return Conflict(f"This client already has a demo named {name!r}; names are unique per client.",
                    code="demo_name_taken", details={"name": name})


def _schedule(demo: Demo, schedule: dict[str, str] | None) -> None:
    """Set the demo's schedule (None: none) and its next time."""
    if schedule is None:
        demo.schedule_cron, demo.schedule_timezone, demo.next_refresh_at = "", "", None
        return
    demo.schedule_cron, demo.schedule_timezone = schedule["cron"], schedule["timezone"]
    demo.next_refresh_at = schedule_next(demo.schedule_cron, demo.schedule_timezone, after=timezone.now())


def demo_create(*, client: Client, name: str, spec: dict[str, Any], schedule: dict[str, str] | None = None,
                publish: str = "auto", keep_versions: int = 5,
                drift_threshold: float = DEFAULT_DRIFT_THRESHOLD) -> Demo:
    """Keep a named spec as a demo (no version yet: refresh makes one); at most the client's cap of demos."""
    demo = Demo(client=client, name=name, spec=spec, publish=publish, keep_versions=keep_versions,
                drift_threshold=drift_threshold)
    _schedule(demo, schedule)
    try:
        with transaction.atomic():
            client_lock(client.pk)  # two creates racing for the last place: one waits, then counts
            limit = _limit(client)
            if Demo.objects.filter(client=client).count() >= limit:
                raise DomainError(f"This client has {limit} demos, its limit; delete one it no longer keeps.",
                                  code="too_many_demos", status_code=409, details={"limit": limit})
            if Demo.objects.filter(client=client, name=name).exists():
                raise _name_taken(name)
            demo.save()
    except IntegrityError:  # the same name, created meanwhile (the unique constraint decides)
        raise _name_taken(name) from None
    return demo


def _locked(demo: Demo) -> Demo:
    locked = Demo.objects.select_for_update(of=("self",)).select_related("published").filter(pk=demo.pk).first()
    if locked is None:
        raise NotFound(f"No demo {demo.pk!r}.", code="demo_not_found")
    return locked


def demo_update(*, demo: Demo, changes: dict[str, Any]) -> Demo:
    """Change its settings; a new spec applies from the next version (the versions made keep theirs)."""
    try:
        with transaction.atomic():
            locked = _locked(demo)
            name = changes.get("name")
            if name is not None and name != locked.name and \
                    Demo.objects.filter(client_id=locked.client_id, name=name).exists():
                raise _name_taken(name)
            for field in SETTINGS:
                if field in changes:
                    setattr(locked, field, changes[field])
            if "schedule" in changes:
                _schedule(locked, changes["schedule"])
            locked.save()
            if "keep_versions" in changes:
                demo_holds_sync_on_commit(locked.pk, locked.client_id)
    except IntegrityError:
        raise _name_taken(str(changes.get("name"))) from None
    return locked


def demo_delete(*, demo: Demo) -> None:
    """Delete the demo and its versions now. Their jobs stay the client's, with their bundles, until retention
    purges them by the client's policy (the demo's holds are released); a version's job still running runs to its
    end."""
    with transaction.atomic():
        Demo.objects.filter(pk=demo.pk).delete()
        demo_holds_sync_on_commit(demo.pk, demo.client_id)


def demo_refresh(*, demo: Demo, ref: str = "", mode: str = Mode.ALL, trigger: str = Trigger.API,
                 idempotency_key: str | None = None) -> tuple[DemoVersion, bool]:
    """Make the next version: a job from the demo's spec as it is now. Returns (version, created); with an
    ``Idempotency-Key`` the demo already saw with the same request, the version it made then (created False)."""
    digest = request_hash({"ref": ref, "mode": mode})
    with transaction.atomic():
        locked = _locked(demo)
        if idempotency_key:
            replay = _replay(locked, idempotency_key, digest)
            if replay is not None:
                return replay, False
        prints = fingerprints(locked.spec)
        carry = carried_over(locked.published, prints) if mode == Mode.CHANGED else {}
        job, _ = job_create(client=locked.client, spec=locked.spec, origin=JobOrigin.DEMO, carry=carry)
        locked.versions_made += 1
        locked.save(update_fields=["versions_made", "updated_at"])
        version = DemoVersion.objects.create(demo=locked, number=locked.versions_made, job=job, ref=ref, mode=mode,
                                             trigger=trigger, idempotency_key=idempotency_key or None,
                                             request_hash=digest, fingerprints=prints)
        version.demo = locked
        event_record(job=job, type=EventType.DEMO_VERSION_CREATED, data=version_event(version))
        demo_holds_sync_on_commit(locked.pk, locked.client_id)
    return version, True


def _replay(demo: Demo, key: str, digest: str) -> DemoVersion | None:
    version = demo.versions.select_related("job").filter(idempotency_key=key).first()
    if version is None:
        return None
    if version.request_hash != digest:
        raise Conflict("This Idempotency-Key already made a version of this demo from another request; use a new "
                       "key for a new version.", code="idempotency_key_reused",
                       details={"version": version.number})
    version.demo = demo
    return version


def version_event(version: DemoVersion) -> dict[str, Any]:
    """What every demo event carries: the demo's id and name, and the version."""
    return {"demo": {"id": version.demo.pk, "name": version.demo.name}, "version": version.to_dict()}


def version_publish(*, version: DemoVersion, actor: str = "api") -> DemoVersion:
    """Make ``version`` the one the demo shows (also the rollback: publish an older one). Only a version whose job
    succeeded: a failed or partial one never replaces a good one."""
    with transaction.atomic():
        locked = _locked(version.demo)
        current = DemoVersion.objects.select_related("job").get(pk=version.pk)
        if current.job.status != JobStatus.SUCCEEDED:
            raise Conflict(f"Version {current.number} is {current.job.status}; only a version whose every feature "
                           "succeeded can be published.", code="version_not_publishable",
                           details={"status": current.job.status})
        _publish(locked, current, actor=actor)
    return current


def _publish(demo: Demo, version: DemoVersion, *, actor: str) -> None:
    """Point the locked demo at ``version`` and announce it (a client's event: no job's lock is taken)."""
    before = demo.published
    version.published_at = timezone.now()
    version.save(update_fields=["published_at"])
    demo.published = version
    demo.save(update_fields=["published", "updated_at"])
    demo_holds_sync_on_commit(demo.pk, demo.client_id)
    version.demo = demo
    event_record(client_id=demo.client_id, type=EventType.DEMO_PUBLISHED,
                 data={**version_event(version), "previous_version": before.number if before else None,
                       "actor": actor})


def version_ended(*, version: DemoVersion, status: str) -> None:
    """The version's job ended (inside its transition): say so, and publish it when the demo publishes what
    succeeds and nothing newer is published. A rerun that ends again says so again; if the published version's
    own rerun ends short of success, the demo falls back to its newest other version that succeeded (a partial
    bundle never stays published)."""
    demo = Demo.objects.select_for_update(of=("self",)).select_related("published").filter(
        pk=version.demo_id).first()
    if demo is None:  # deleted while its version ran: nothing to tell
        return
    version.demo = demo
    version.ready_at = timezone.now()
    version.save(update_fields=["ready_at"])
    newest = demo.published is None or demo.published.number < version.number
    publish = status == JobStatus.SUCCEEDED and demo.publish == Publish.AUTO and newest
    data = version_event(version)
    data["version"]["published"] = publish or demo.published_id == version.pk
    drift = drift_summary(version.drift)
    event_record(job=version.job, type=EventType.DEMO_VERSION_READY, data={**data, "drift": drift})
    if drift is not None and drift["over_threshold"]:
        event_record(job=version.job, type=EventType.DEMO_DRIFT_DETECTED, data={**data, "drift": drift})
    if publish:
        _publish(demo, version, actor="auto")
    elif demo.published_id == version.pk and status != JobStatus.SUCCEEDED:
        fallback = demo.versions.select_related("job").filter(job__status=JobStatus.SUCCEEDED) \
            .exclude(pk=version.pk).order_by("-number").first()
        if fallback is not None:
            _publish(demo, fallback, actor="auto")
        else:
            Demo.objects.filter(pk=demo.pk).update(published=None, updated_at=timezone.now())


def demos_refresh_due(*, batch: int = 100) -> int:
    """Refresh every demo whose schedule is due (beat, every SCREENREEL_DEMO_SCHEDULE_EVERY_S); returns how many
    versions it made. Safe to run twice at once: each due time makes one version (its idempotency key), and the
    demo's next time moves on in the same transaction."""
    now = timezone.now()
    due = list(Demo.objects.filter(next_refresh_at__lte=now).order_by("next_refresh_at")
               .values_list("pk", flat=True)[:batch])
    made = 0
    for demo_id in due:
        try:
            made += _refresh_scheduled(demo_id, now)
        except Exception:  # one demo's trouble must not stall every client's schedules behind it
            log.exception("demo %s: its scheduled refresh failed", demo_id)
    return made


def _refresh_scheduled(demo_id: str, now: datetime) -> bool:
    """One due demo: its next time is the schedule's first after now (times missed while beat was down make no
    versions of their own), and the due time makes a version unless the client has no room for it (too many
    jobs, a credential gone: logged and skipped, the schedule goes on)."""
    with transaction.atomic():
        demo = Demo.objects.select_for_update(of=("self",)).select_related("published", "client") \
            .filter(pk=demo_id).first()
        if demo is None or demo.next_refresh_at is None or demo.next_refresh_at > now:
            return False  # deleted, unscheduled, or another beat took this time
        due = demo.next_refresh_at
        try:
            demo.next_refresh_at = schedule_next(demo.schedule_cron, demo.schedule_timezone, after=now)
        except ScheduleInvalid as exc:  # the system's time zones changed under it: stop, say so, refresh this once
            log.error("demo %s: its schedule no longer reads (%s); it is not scheduled again", demo.pk, exc)
            demo.next_refresh_at = None
        demo.save(update_fields=["next_refresh_at", "updated_at"])
        try:
            with transaction.atomic():
                _, created = demo_refresh(demo=demo, trigger=Trigger.SCHEDULE,
                                          idempotency_key=f"schedule:{due.isoformat()}")
        except DomainError as exc:
            log.warning("demo %s: the refresh due at %s was not made (%s: %s)", demo.pk, due.isoformat(), exc.code,
                        exc.message)
            return False
    return created
