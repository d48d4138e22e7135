"""Public shares of a demo (docs/demos.md, "Public shares"): a page with a player for the published version, at
a URL that stays the same as versions are published, and the stable URLs of its files.

The token is ``<prefix>_<secret>``, kept as a SHA-256, as hooks and API keys are. What a share shows is read
at each request: the demo's published version now, so an embed follows a publish or a rollback with nothing
to change where it was pasted. A revoked or expired share, or one whose version's files retention purged,
answers 410.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from demos.models import Demo, DemoShare, DemoVersion
from demos.tokens import token_issue, token_matches, token_prefix
from jobs.lib.errors import DomainError, NotFound
from jobs.models import Chunk, ChunkStatus, ObjectKind, StoredObject

MAX_LIVE_SHARES = 20
# Revoked shares kept per demo, the latest revoked: their URLs answer 410 share_revoked. Older ones are deleted as
# more are revoked (their URLs then answer 404 share_not_found), so sharing and revoking in a loop cannot grow a
# demo's rows without bound.
KEPT_REVOKED_SHARES = 100


@dataclass(frozen=True)
class NewShare:
    share: DemoShare
    token: str  # shown once, in the answer that made it


def share_create(*, demo: Demo, allowed_origins: list[str], expires_at: datetime | None) -> NewShare:
    """Share the demo's published version (whichever it is at each view); at most MAX_LIVE_SHARES live per demo."""
    issued = token_issue()
    with transaction.atomic():
        Demo.objects.select_for_update(of=("self",)).filter(pk=demo.pk).first()  # two creates: one counts after
        live = DemoShare.objects.filter(demo=demo, revoked_at__isnull=True).count()
        if live >= MAX_LIVE_SHARES:
            raise DomainError(f"This demo has {live} shares not revoked, its limit; revoke one first.",
                              code="too_many_shares", status_code=409, details={"limit": MAX_LIVE_SHARES})
        share = DemoShare.objects.create(demo=demo, prefix=issued.prefix, token_hash=issued.digest,
                                         allowed_origins=allowed_origins, expires_at=expires_at)
    return NewShare(share=share, token=issued.token)


def share_revoke(*, share: DemoShare) -> DemoShare:
    """Revoke a share, and forget the demo's revoked shares beyond the latest KEPT_REVOKED_SHARES."""
    with transaction.atomic():
        Demo.objects.select_for_update(of=("self",)).filter(pk=share.demo_id).first()  # two revokes: one after
        DemoShare.objects.filter(pk=share.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        forgotten = (DemoShare.objects.filter(demo_id=share.demo_id, revoked_at__isnull=False)
                     .exclude(pk=share.pk)  # the one asked about is kept and answered, whatever its age
                     .order_by("-revoked_at", "-pk").values_list("pk", flat=True)[KEPT_REVOKED_SHARES - 1:])
        DemoShare.objects.filter(pk__in=list(forgotten)).delete()
    share.refresh_from_db()
    return share


class ShareGone(DomainError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code=code, status_code=410)


def share_find(token: str) -> DemoShare:
    """The live share the token names; NotFound for none, ShareGone (410) for one revoked or expired."""
    prefix = token_prefix(token)
    share = None
    if prefix is not None:
        share = DemoShare.objects.select_related("demo", "demo__published__job").filter(prefix=prefix).first()
    if share is None or not token_matches(share.token_hash, token):
        raise NotFound("No share has this URL.", code="share_not_found")
    if share.revoked_at is not None:
        raise ShareGone("This share was revoked.", "share_revoked")
    if share.expires_at is not None and share.expires_at <= timezone.now():
        raise ShareGone("This share has expired.", "share_expired")
    return share


@dataclass(frozen=True)
class SharedFeature:
    chunk: Chunk
    video: StoredObject
    captions: StoredObject | None
    stills: list[StoredObject]
    drift: list[StoredObject]  # the version's drift pictures of this feature, by step (demos.drift)


def shared_version(share: DemoShare) -> tuple[DemoVersion, list[SharedFeature]]:
    """The published version and, per feature, its files; 404 before anything is published, 410 once its files
    were purged."""
    version = share.demo.published
    if version is None:
        raise NotFound("Nothing of this demo is published yet.", code="nothing_published")
    objects = list(StoredObject.objects.current().filter(job_id=version.job_id, chunk__status=ChunkStatus.SUCCEEDED)
                   .select_related("chunk").order_by("chunk__index", "id"))
    features: list[SharedFeature] = []
    for chunk in sorted({o.chunk for o in objects if o.chunk is not None}, key=lambda c: c.index):
        own = [o for o in objects if o.chunk_id == chunk.pk]
        video = next((o for o in own if o.kind == ObjectKind.VIDEO), None)
        if video is None:
            continue
        if video.purged_at is not None:
            raise ShareGone("Retention purged the published version's files.", "share_files_purged")
        captions = next((o for o in own if o.kind == ObjectKind.CAPTIONS and o.name.endswith(".vtt")
                         and o.purged_at is None), None)
        stills = [o for o in own if o.kind == ObjectKind.STILL and o.purged_at is None]
        drift = sorted((o for o in own if o.kind == ObjectKind.DRIFT and o.purged_at is None),
                       key=lambda o: (o.meta.get("after_step") or 0, o.pk))
        features.append(SharedFeature(chunk=chunk, video=video, captions=captions, stills=stills, drift=drift))
    return version, features


def shared_object(share: DemoShare, *, chunk: int, name: str) -> StoredObject:
    """One file of the published version's feature ``chunk``: its video, captions, a still or a drift picture."""
    _, features = shared_version(share)
    for feature in features:
        if feature.chunk.index == chunk:
            for obj in (feature.video, feature.captions, *feature.stills, *feature.drift):
                if obj is not None and obj.name == name:
                    return obj
    raise NotFound("The published version has no such file.", code="not_found")


def chapters_vtt(chunk: Chunk) -> str:
    """The feature's chapters as a WebVTT chapters track (from its timeline), for the player."""
    timeline = chunk.timeline or {}
    chapters = [c for c in timeline.get("chapters", []) if isinstance(c, dict)]
    end = int(timeline.get("duration_ms") or 0)
    lines = ["WEBVTT", ""]
    for n, chapter in enumerate(chapters):
        start = int(chapter.get("start_ms", 0))
        stop = int(chapters[n + 1].get("start_ms", end)) if n + 1 < len(chapters) else end
        lines += [f"{_vtt_time(start)} --> {_vtt_time(max(stop, start + 1))}",
                  _cue_text(str(chapter.get("title", ""))), ""]
    return "\n".join(lines)


def _cue_text(title: str) -> str:
    """A chapter's title as one line of cue text: no line break (which would end the cue and start another), and
    no markup or arrow (entities for &, < and >)."""
    return " ".join(title.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_time(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
