"""The stages of a chunk, each run by a thin Celery task: synthesize, record, mux (docs/operating.md, "Queues
and tasks").

- ``synthesis``: every line of the narration spoken, trimmed and brought to loudness, stored with its
  exact duration and measurement. With lines per step it runs first (the recorder paces the steps to
  the lines); with one script, beside the recording.
- ``signing_in``: a job's ``sign_in`` steps, once, off camera, before any feature records (and any input a
  person must read, waited for on a pool of threads of its own).
- ``recording``: Chromium performs the steps; the recording, its stills and when each step ran are kept.
- ``carrying``: a chunk made from the same feature as a succeeded chunk of the client's takes over its outputs
  (copied in storage) instead of being recorded (a demo's ``mode: "changed"`` refresh).
- ``muxing``: the lines laid out where their steps started, captions and chapters timed from them,
  intro + recording + outro joined by stream copy, one AAC encode.
- ``recovery``: the sweep that queues again whatever a lost message or a dead worker left behind.

A stage first claims its chunk with a lease (row lock + attempt count in the database), which a
heartbeat renews while the stage runs (``jobs.services.leases``). A redelivered or duplicated task finds
the lease held or the chunk moved on and does nothing; a worker that died stops renewing its lease,
which lapses within SCREENREEL_STAGE_LEASE_S, and the sweep queues the stage again. Attempts are counted
in the row, so a chunk that keeps failing (or keeps killing its worker) ends ``failed`` with its reason.
An error whose ``permanent`` is true (``jobs.lib.failures``) fails the chunk at once.
"""

from jobs.pipeline.carrying import chunk_carry_run
from jobs.pipeline.common import DONE, FAILED, StageResult, chunk_claim
from jobs.pipeline.muxing import chunk_mux_run
from jobs.pipeline.recording import chunk_record_run
from jobs.pipeline.recovery import pipeline_recover
from jobs.pipeline.signing_in import job_sign_in_run
from jobs.pipeline.synthesis import chunk_synthesize_run

__all__ = ["DONE", "FAILED", "StageResult", "chunk_carry_run", "chunk_claim", "chunk_mux_run", "chunk_record_run",
           "chunk_synthesize_run", "job_sign_in_run", "pipeline_recover"]
