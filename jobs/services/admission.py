"""Fair share between clients: how much of the workers one client may hold at once.

- **Running jobs.** At most ``max_running_jobs`` per client (Client, else
  SCREENREEL_CLIENT_MAX_RUNNING_JOBS, 20). A job over it is accepted and stays ``queued``; when one of
  the client's jobs ends, its oldest queued job starts.
- **Chunks on their way to a recording or recording.** At most ``max_active_chunks`` per client
  (Client, else SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS, 4). A running job's other chunks wait ``pending``
  in the database, not in the broker; each time one of the client's chunks is done recording, the next
  one is admitted (oldest job first, then by index). A chunk canceled while it records keeps its turn
  until its worker has let go (its lease, jobs.services.leases), so cancel and resubmit never records
  more at once than the share. Admission queues a chunk's synthesis, and its
  recording too unless the recording paces to per-step lines (then the synthesis queues it).

- **Chunks muxing.** At most ``max_muxing_chunks`` per client (Client, else
  SCREENREEL_CLIENT_MAX_MUXING_CHUNKS, 2: the Procfile's media tier, so a lone client can still fill it).
  A chunk ready to be muxed waits ``muxing`` with no ``mux_admitted_at`` until one of its client's muxes
  ends; then the oldest job's is queued. The media queue is FIFO, so without this one client's 50 muxes
  would all sit in front of another client's first; with it, that first mux waits behind at most
  ``max_muxing_chunks`` of each other client's.

- **Sign-ins.** A job with a ``sign_in`` signs in first (jobs.pipeline.signing_in), and its chunks are
  admitted only once the session is stored. The sign-in takes one of the same ``max_active_chunks`` turns
  from its admission until it ends, also while it waits for a code a person must read (``awaiting_input``):
  a client waiting for codes waits in its own share, never in another's. The sign-in workers' threads are
  shared by every client, so one client has at most ``SCREENREEL_CLIENT_MAX_SIGN_INS`` (2) sign-ins under way.

- **Carries.** A chunk a demo's ``changed`` refresh carries over (jobs.pipeline.carrying) is copied, not recorded:
  it takes no recording turn, but its copies take a worker of the ``default`` queue, which every client's jobs
  share. At most ``max_carries`` (Client, else SCREENREEL_CLIENT_MAX_CARRIES, 4) of a client's carries are queued
  or copying at once, also while their job waits for a sign-in's code; the rest wait ``pending`` with no
  ``carry_admitted_at``, and each carry that leaves ``pending`` (copied, recorded instead, canceled, failed with
  its job) lets the client's next one in (oldest job first, then by index). A client's twenty running refreshes
  of fifty features thus put four copies ahead of another client's first, not a thousand.

So the record queue never holds more than ``max_active_chunks`` of any one client, nor the media queue
more than ``max_muxing_chunks`` of its muxes: a burst of 500 jobs waits in the database, and another
client's job starts recording (or muxing) as soon as a slot frees, within one chunk's time on a saturated
tier. Every decision is taken under the client's row lock, so
concurrent starts and ends never overshoot; what a lost message or a dead worker leaves undone,
``pipeline_recover`` admits again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.lib.queue import enqueue_on_commit
from jobs.lib.task_names import TaskName
from jobs.models import JOB_UNDER_WAY, Chunk, ChunkStatus, Client, Job, JobSession, JobStatus
from jobs.services.locks import client_lock


def running_jobs_free(client: Client) -> int:
    """How many more jobs ``client`` may run now (call under its row lock)."""
    limit = client.max_running_jobs or settings.SCREENREEL_CLIENT_MAX_RUNNING_JOBS
    return limit - Job.objects.filter(client=client, status__in=JOB_UNDER_WAY).count()


def chunks_admit(*, client_id: str) -> list[int]:
    """Let the client's next sign-ins, then its next waiting chunks, into their queues, up to its limit; returns
    the chunks' ids."""
    with transaction.atomic():
        client = client_lock(client_id)
        if client is None:
            return []
        limit = client.max_active_chunks or settings.SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS
        running = Chunk.objects.filter(job__client_id=client_id, job__status=JobStatus.RUNNING)
        active = running.filter(admitted_at__isnull=False).filter(
            Q(status__in=[ChunkStatus.PENDING, ChunkStatus.RECORDING])
            | Q(status=ChunkStatus.SYNTHESIZING, recording__isnull=True)).count()
        active += _letting_go(client_id, recorded=False)  # canceled while recording, still stopping
        # A sign-in is a browser too, and one that waits for a code may hold it for minutes: each holds one of
        # the client's turns, from its admission until its session is stored or it fails.
        signing_in = JobSession.objects.filter(job__client_id=client_id, job__status__in=JOB_UNDER_WAY,
                                               ready_at__isnull=True, error="")
        sign_ins_active = signing_in.filter(admitted_at__isnull=False).count()
        active += sign_ins_active
        if active >= limit:
            return []
        # The sign-in workers' threads are shared by every client: one client holds at most this many of them.
        sign_ins_free = settings.SCREENREEL_CLIENT_MAX_SIGN_INS - sign_ins_active
        sign_ins = list(signing_in.filter(admitted_at__isnull=True, job__status=JobStatus.RUNNING)
                        .order_by("job__created_at", "job_id")
                        .values_list("job_id", flat=True)[:max(0, min(limit - active, sign_ins_free))])
        JobSession.objects.filter(pk__in=sign_ins).update(admitted_at=timezone.now())
        for job_id in sign_ins:
            enqueue_on_commit(TaskName.JOB_SIGN_IN, job_id)
        active += len(sign_ins)
        # A feature of a job with a sign-in records only once the session is stored.
        # A carried chunk is copied, not recorded (jobs.pipeline.carrying): it takes no turn.
        chosen = list(running.filter(status=ChunkStatus.PENDING, admitted_at__isnull=True, carried_from__isnull=True)
                      .filter(Q(job__signin_session__isnull=True) | Q(job__signin_session__ready_at__isnull=False))
                      .order_by("job__created_at", "job_id", "index")
                      .values_list("id", "paced")[:max(0, limit - active)])
        Chunk.objects.filter(pk__in=[chunk_id for chunk_id, _ in chosen]).update(admitted_at=timezone.now())
        for chunk_id, paced in chosen:
            chunk_queue(chunk_id=chunk_id, paced=paced)
        return [chunk_id for chunk_id, _ in chosen]


def _letting_go(client_id: str, *, recorded: bool) -> int:
    """The client's chunks canceled in a stage whose worker has not let go yet (it still holds the lease):
    recording ones (``recorded`` False) or muxing ones."""
    return Chunk.objects.filter(job__client_id=client_id, status=ChunkStatus.CANCELED,
                                recording__isnull=not recorded, lease_expires_at__gt=timezone.now()).count()


def mux_admit(*, client_id: str) -> list[int]:
    """Let the client's next chunks waiting to be muxed into the media queue, up to its limit; returns their
    ids."""
    with transaction.atomic():
        client = client_lock(client_id)
        if client is None:
            return []
        limit = client.max_muxing_chunks or settings.SCREENREEL_CLIENT_MAX_MUXING_CHUNKS
        muxing = Chunk.objects.filter(job__client_id=client_id, job__status=JobStatus.RUNNING,
                                      status=ChunkStatus.MUXING)
        active = muxing.filter(mux_admitted_at__isnull=False).count() + _letting_go(client_id, recorded=True)
        if active >= limit:
            return []
        chosen = list(muxing.filter(mux_admitted_at__isnull=True).order_by("job__created_at", "job_id", "index")
                      .values_list("id", flat=True)[:limit - active])
        Chunk.objects.filter(pk__in=chosen).update(mux_admitted_at=timezone.now())
        for chunk_id in chosen:
            enqueue_on_commit(TaskName.CHUNK_MUX, chunk_id)
        return chosen


def carries_admit(*, client_id: str) -> list[int]:
    """Let the client's next carried chunks into the default queue, up to its limit; returns their ids."""
    with transaction.atomic():
        client = client_lock(client_id)
        if client is None:
            return []
        limit = client.max_carries or settings.SCREENREEL_CLIENT_MAX_CARRIES
        # A job waiting for a sign-in's code goes on carrying (a copy needs no session), and its carries count.
        carried = Chunk.objects.filter(job__client_id=client_id, job__status__in=JOB_UNDER_WAY,
                                       status=ChunkStatus.PENDING, carried_from__isnull=False)
        free = limit - carried.filter(carry_admitted_at__isnull=False).count()
        if free <= 0:
            return []
        chosen = list(carried.filter(carry_admitted_at__isnull=True).order_by("job__created_at", "job_id", "index")
                      .values_list("id", flat=True)[:free])
        Chunk.objects.filter(pk__in=chosen).update(carry_admitted_at=timezone.now())
        for chunk_id in chosen:
            enqueue_on_commit(TaskName.CHUNK_CARRY, chunk_id)
        return chosen


def carries_admit_on_commit(*, client_id: str) -> None:
    """After the surrounding transaction commits (a job with carries started, a carry or such a job ended): admit."""
    transaction.on_commit(lambda: carries_admit(client_id=client_id))


def mux_admit_on_commit(*, client_id: str) -> None:
    """After the surrounding transaction commits (a chunk is ready to be muxed, or a mux ended): admit."""
    transaction.on_commit(lambda: mux_admit(client_id=client_id))


def chunk_queue(*, chunk_id: int, paced: bool, record: bool = True, synthesize: bool = True) -> None:
    """Queue an admitted chunk's stages after commit: its synthesis, and its recording unless it paces to
    per-step lines (the synthesis queues that one when it is done)."""
    if synthesize:
        enqueue_on_commit(TaskName.CHUNK_SYNTHESIZE, chunk_id)
    if record and not paced:
        enqueue_on_commit(TaskName.CHUNK_RECORD, chunk_id)


def chunks_admit_on_commit(*, client_id: str) -> None:
    """After the surrounding transaction commits (a chunk left recording): admit the next ones."""
    transaction.on_commit(lambda: chunks_admit(client_id=client_id))


def jobs_admit(*, client_id: str) -> int:
    """Queue job_start for the client's oldest queued jobs, as many as may run now; returns how many."""
    with transaction.atomic():
        client = client_lock(client_id)
        if client is None:
            return 0
        free = running_jobs_free(client)
        if free <= 0:
            return 0
        queued = list(Job.objects.filter(client=client, status=JobStatus.QUEUED).order_by("created_at", "id")
                      .values_list("id", flat=True)[:free])
        for job_id in queued:
            enqueue_on_commit(TaskName.JOB_START, job_id)
        return len(queued)


def jobs_admit_on_commit(*, client_id: str) -> None:
    transaction.on_commit(lambda: jobs_admit(client_id=client_id))
