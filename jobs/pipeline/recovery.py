"""The recovery sweep: queue again whatever a lost message or a dead worker left behind."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from jobs.lib.queue import enqueue_on_commit
from jobs.lib.task_names import TaskName
from jobs.models import JOB_ENDED, JOB_UNDER_WAY, Chunk, ChunkStatus, Job, JobSession, JobStatus
from jobs.services import admission
from jobs.services.transitions import job_transition

# A lapsed lease is proof enough (its worker stopped renewing it); these few seconds let a retry that is
# due right now claim first.
LEASE_SLACK_S = 5
_SPEAKABLE = [ChunkStatus.PENDING, ChunkStatus.SYNTHESIZING, ChunkStatus.RECORDING]


def pipeline_recover(*, grace_s: int = 60, limit: int = 200) -> dict[str, int]:
    """Queue again whatever a lost message or a dead worker left behind; returns counts per action.

    Everything it queues is idempotent, so queuing something that is in fact still running is harmless.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=grace_s)
    lapsed = now - timedelta(seconds=LEASE_SLACK_S)
    counts = dict.fromkeys(("job_start", "chunk_admit", "chunk_synthesize", "chunk_record", "mux_admit",
                            "chunk_mux", "job_settle", "sessions_dropped", "job_sign_in", "job_resumed",
                            "carry_admit", "chunk_carry"), 0)
    # A sign-in session is deleted when its job ends; one a recording stored as its job ended is deleted here.
    counts["sessions_dropped"], _ = JobSession.objects.filter(job__status__in=JOB_ENDED).delete()
    # Queued jobs start as their client's running slots allow (admission), not all at once.
    for client_id in Job.objects.filter(status=JobStatus.QUEUED, updated_at__lt=stale).order_by().values_list(
            "client_id", flat=True).distinct()[:limit]:
        counts["job_start"] += admission.jobs_admit(client_id=client_id)
    # A sign-in whose worker died (its lease lapsed, awaiting_input or not: the claim moves the job back to
    # running), whose retry's message was lost (due, unclaimed), or whose message was lost (admitted, never claimed
    # within the grace): queued again, at most once a grace (admitted_at moves on). Each claim counts an attempt.
    sign_ins = list(JobSession.objects.filter(job__status__in=JOB_UNDER_WAY, ready_at__isnull=True, error="",
                                              admitted_at__lt=stale).filter(
        Q(claimed_until__lt=lapsed) | Q(claimed_until__isnull=True)).values_list("job_id", flat=True)[:limit])
    JobSession.objects.filter(pk__in=sign_ins).update(admitted_at=now)
    for job_id in sign_ins:
        enqueue_on_commit(TaskName.JOB_SIGN_IN, job_id)
        counts["job_sign_in"] += 1
    # A job left awaiting_input with nothing waiting for it (its sign-in ended, failed or was dropped, and the
    # move back failed): running again, so it settles.
    for job_id in Job.objects.filter(status=JobStatus.AWAITING_INPUT, updated_at__lt=stale).filter(
            Q(signin_session__isnull=True) | Q(signin_session__claimed_until__lt=lapsed)
            | Q(signin_session__claimed_until__isnull=True)).values_list("id", flat=True)[:limit]:
        counts["job_resumed"] += int(job_transition(job_id=job_id, to=JobStatus.RUNNING) is not None)
    running = Chunk.objects.filter(job__status=JobStatus.RUNNING)
    # A lost admission (its message, or the commit hook of a dead process): chunks waiting for a turn.
    for client_id in running.filter(status=ChunkStatus.PENDING, admitted_at__isnull=True, updated_at__lt=stale,
                                    carried_from__isnull=True) \
            .order_by().values_list("job__client_id", flat=True).distinct()[:limit]:
        counts["chunk_admit"] += len(admission.chunks_admit(client_id=client_id))
    # Carries (jobs.pipeline.carrying) go through their client's share: one whose admission was lost (the hook of a
    # dead process) is admitted; an admitted one never claimed within the grace (its message was lost), whose worker
    # died (its lease lapsed) or whose retry's message was lost (due) is queued again, at most once a grace
    # (carry_admitted_at moves on); the claim lets one carry in at a time.
    carried = Chunk.objects.filter(job__status__in=JOB_UNDER_WAY, status=ChunkStatus.PENDING,
                                   carried_from__isnull=False)  # a job waiting for a code goes on carrying
    for client_id in carried.filter(carry_admitted_at__isnull=True, updated_at__lt=stale) \
            .order_by().values_list("job__client_id", flat=True).distinct()[:limit]:
        counts["carry_admit"] += len(admission.carries_admit(client_id=client_id))
    carries = list(carried.filter(carry_admitted_at__isnull=False).filter(
        Q(lease_expires_at__isnull=True, carry_admitted_at__lt=stale) | Q(lease_expires_at__lt=lapsed))
        .values_list("id", flat=True)[:limit])
    carried.filter(pk__in=carries, lease_expires_at__isnull=True).update(carry_admitted_at=now)
    for chunk_id in carries:
        enqueue_on_commit(TaskName.CHUNK_CARRY, chunk_id)
        counts["chunk_carry"] += 1
    # Admitted, but a stage it was queued for never claimed it: its message was lost, or it still waits in
    # a long queue. Queued again at most once a grace period (admitted_at moves on), so a backlog is not
    # multiplied every sweep.
    never_recorded = Q(status=ChunkStatus.PENDING, paced=False, lease_expires_at__isnull=True)
    never_spoken = Q(speech__isnull=True, synth_lease_expires_at__isnull=True, status__in=_SPEAKABLE)
    waiting = list(running.filter(admitted_at__lt=stale).filter(never_recorded | never_spoken)
                   .values_list("id", "paced", "status", "speech", "synth_lease_expires_at")[:limit])
    Chunk.objects.filter(pk__in=[row[0] for row in waiting]).update(admitted_at=now)
    for chunk_id, paced, status, speech, synth_lease in waiting:
        record = status == ChunkStatus.PENDING and not paced
        synthesize = speech is None and synth_lease is None
        admission.chunk_queue(chunk_id=chunk_id, paced=paced, record=record, synthesize=synthesize)
        counts["chunk_record"] += int(record)
        counts["chunk_synthesize"] += int(synthesize)
    # A lapsed lease (its worker died), or a hand-over whose message was lost.
    main_gone = running.filter(Q(lease_expires_at__lt=lapsed) | Q(lease_expires_at__isnull=True, updated_at__lt=stale))
    for chunk_id in main_gone.filter(status=ChunkStatus.RECORDING).values_list("id", flat=True)[:limit]:
        enqueue_on_commit(TaskName.CHUNK_RECORD, chunk_id)
        counts["chunk_record"] += 1
    # Muxes go through their client's share: one waiting for its turn whose admission was lost (the hook of a
    # dead process) is admitted; an admitted one whose worker died, or that no worker claimed within the grace
    # (its message was lost), is queued again, at most once a grace (mux_admitted_at moves on).
    for client_id in running.filter(status=ChunkStatus.MUXING, mux_admitted_at__isnull=True, updated_at__lt=stale) \
            .order_by().values_list("job__client_id", flat=True).distinct()[:limit]:
        counts["mux_admit"] += len(admission.mux_admit(client_id=client_id))
    mux_gone = list(running.filter(status=ChunkStatus.MUXING).filter(
        Q(lease_expires_at__lt=lapsed) | Q(lease_expires_at__isnull=True, mux_admitted_at__lt=stale))
        .values_list("id", flat=True)[:limit])
    Chunk.objects.filter(pk__in=mux_gone, lease_expires_at__isnull=True).update(mux_admitted_at=now)
    for chunk_id in mux_gone:
        enqueue_on_commit(TaskName.CHUNK_MUX, chunk_id)
        counts["chunk_mux"] += 1
    for chunk_id in running.filter(speech__isnull=True, synth_lease_expires_at__lt=lapsed,
                                   status__in=_SPEAKABLE).values_list("id", flat=True)[:limit]:
        enqueue_on_commit(TaskName.CHUNK_SYNTHESIZE, chunk_id)
        counts["chunk_synthesize"] += 1
    # Jobs whose chunks have all ended but that did not settle: the message was lost, or its build's worker died
    # (its claim lapsed), or a retry of a failed build is due and its countdown was lost. A build in flight or a
    # retry not yet due is left alone: settle_due_at is in the future.
    settle_due = Q(settle_due_at__isnull=True, updated_at__lt=stale) | Q(settle_due_at__lt=lapsed)
    settled_candidates = Job.objects.filter(settle_due, status=JobStatus.RUNNING).exclude(
        chunks__status__in=[ChunkStatus.PENDING, ChunkStatus.RECORDING, ChunkStatus.SYNTHESIZING,
                            ChunkStatus.MUXING])
    for job_id in settled_candidates.values_list("id", flat=True)[:limit]:
        enqueue_on_commit(TaskName.JOB_SETTLE, job_id)
        counts["job_settle"] += 1
    return counts
