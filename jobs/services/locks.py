"""Row locks, always taken in one order: a client, then its job, then the job's chunks.

Two transactions that lock the same rows in opposite orders can deadlock: PostgreSQL then aborts one of
them. bench/job met it: a chunk's claim locked its chunk, job and client rows in one statement
(``select_for_update()`` over a join locks every joined row) while admission held the client and waited
for the job. So:

- a chunk is locked through ``chunk_lock``: its job first, then the chunk alone;
- a client is locked ``FOR NO KEY UPDATE`` (``client_lock``): that still serialises admission, purges and
  holds on the client, but no longer blocks the ``FOR KEY SHARE`` lock every insert that references the
  client takes (events, deliveries), so those never wait for an admission to end;
- nothing that holds a job or chunk lock asks for its client's lock afterwards.
"""

from __future__ import annotations

from jobs.models import Chunk, Client, Job


def client_lock(client_id: str) -> Client | None:
    """Lock the client's row for admission, purge and hold decisions (see the module's docstring); returns
    it, or None if it is gone."""
    return Client.objects.select_for_update(no_key=True).filter(pk=client_id).first()


def chunk_lock(chunk_id: int) -> Chunk | None:
    """Lock the chunk's job, then the chunk; returns the chunk with its job, or None if it is gone."""
    if Job.objects.select_for_update(of=("self",)).filter(chunks__pk=chunk_id).values_list("pk").first() is None:
        return None
    return Chunk.objects.select_for_update(of=("self",)).select_related("job", "job__client").filter(
        pk=chunk_id).first()
