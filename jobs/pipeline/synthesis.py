"""The synthesis stage: every line of a chunk's narration spoken, prepared and stored.

With lines per step it runs first and hands the chunk to the recording; with one script it runs beside
the recording, and whichever of the two ends last sends the chunk to the mux (both decide under the
chunk's row lock, so exactly one does).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from django.db import transaction

from jobs.lib.logs import log_context
from jobs.lib.queue import enqueue_on_commit
from jobs.lib.task_names import TaskName
from jobs.media import narration, voice
from jobs.models import STAGE_STATUSES, Chunk, ChunkStatus, EventType, ObjectKind
from jobs.pipeline import inputs
from jobs.pipeline.common import DONE, StageResult, chunk_claim, lost, stage_failed, timed, workdir
from jobs.pipeline.handoffs import LineAudio, LineSpan, Speech, Word
from jobs.pipeline.progress import ChunkProgress
from jobs.selectors import chunk_view
from jobs.services.events import event_record
from jobs.services.leases import lease_kept
from jobs.services.locks import chunk_lock
from jobs.services.objects import object_store
from jobs.services.transitions import chunk_transition

log = logging.getLogger(__name__)


def chunk_synthesize_run(*, chunk_id: int) -> StageResult:
    """Speak every line of the chunk's narration, prepare and store each line's audio; then hand on."""
    with log_context(chunk_id=chunk_id):
        chunk = chunk_claim(chunk_id=chunk_id, stage="synthesize")
        if chunk is None:
            return DONE
        with log_context(job_id=chunk.job_id):
            return _synthesize_run(chunk)


def _synthesize_run(chunk: Chunk) -> StageResult:
    work = workdir(chunk, "synthesize")
    started = time.monotonic()
    try:
        with lease_kept(chunk, synth=True) as lease, \
                ChunkProgress(chunk_id=chunk.pk, paced=chunk.paced) as progress:
            speech = _synthesize(chunk, work, progress)
    except Exception as exc:
        used_s = time.monotonic() - started
        return timed("synthesize", started, stage_failed(chunk, exc, stage="synthesize", used_s=used_s))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timed("synthesize", started, DONE, lost=lease.lost)
    if not lost(chunk, lease):
        _synthesized(chunk, speech)
    return DONE


def _synthesize(chunk: Chunk, work: Path, progress: ChunkProgress) -> Speech:
    """Speak, prepare and store every line; returns the chunk's ``speech``."""
    job, n = chunk.job, chunk.index
    spec, feature = job.parsed_spec, chunk.feature
    if chunk.paced:
        progress.stage(ChunkStatus.SYNTHESIZING)
    lines = feature.lines
    spoken = [narration.apply_lexicon(line.text, spec.voice.lexicon) for line in lines]
    elevenlabs = inputs.elevenlabs_config()
    request_ids = inputs.previous_request_ids(chunk)
    said: list[voice.Utterance] = []
    for i, line in enumerate(lines):
        utterance = voice.speak(
            spoken[i].text, work / f"voice-{line.index}", provider=spec.voice.provider,
            voice_id=spec.voice.voice_id, elevenlabs=elevenlabs, previous_request_ids=request_ids,
            previous_text=spoken[i - 1].text if i else "", next_text=spoken[i + 1].text if i + 1 < len(lines) else "")
        if utterance.request_id:
            request_ids.append(utterance.request_id)
        said.append(utterance)
        if chunk.paced:
            progress.update(ChunkStatus.SYNTHESIZING, (i + 1) / (len(lines) + 1))
    prepared = narration.prepare_lines([u.path for u in said], work,
                                       names=[f"chunk-{n}-line-{line.index}.wav" for line in lines])
    for line, words_of, utterance, audio in zip(lines, spoken, said, prepared, strict=True):
        words = narration.words_from_alignment(words_of, utterance.char_starts, utterance.char_ends,
                                               shift_s=audio.trimmed_start_s) if utterance.char_starts else []
        meta = LineAudio(line=line.index, step=line.step, text=line.text, **audio.meta(),
                         words=tuple(Word(text=w.text, start_ms=round(w.start_s * 1000), end_ms=round(w.end_s * 1000))
                                     for w in words))
        object_store(job=job, chunk=chunk, kind=ObjectKind.LINE, path=audio.path, meta=meta.row())
    script = work / f"chunk-{n}-script.txt"
    script.write_text(feature.narration_text + "\n", encoding="utf-8")
    object_store(job=job, chunk=chunk, kind=ObjectKind.SCRIPT, path=script)
    costs = [u.character_cost for u in said]
    first = said[0]
    return Speech(
        provider=first.provider, voice=first.voice, model=first.model,
        characters=sum(len(s.text) for s in spoken),
        duration_ms=sum(a.duration_ms for a in prepared),
        request_id=request_ids[-1] if first.request_id else None,
        character_cost=sum(c for c in costs if c is not None) if any(c is not None for c in costs) else None,
        lines=tuple(LineSpan(line=line.index, step=line.step, duration_ms=a.duration_ms)
                    for line, a in zip(lines, prepared, strict=True)),
    )


def _synthesized(chunk: Chunk, speech: Speech) -> None:
    """Keep the speech and hand on: to the recording (lines per step), to the mux (the recording is done
    and waits), or to nobody yet (the recording runs on and will find the speech when it ends)."""
    with transaction.atomic():
        locked = chunk_lock(chunk.pk)
        if (locked is None or locked.speech is not None or locked.synth_attempts != chunk.synth_attempts
                or locked.status not in STAGE_STATUSES["synthesize"]):
            return  # canceled, failed, or another attempt finished first
        done = {"speech": speech.row(), "synth_lease_expires_at": None}
        if locked.paced:
            if chunk_transition(chunk_id=locked.pk, to=ChunkStatus.RECORDING, expect=ChunkStatus.SYNTHESIZING,
                                changes={**done, "error": ""}):
                enqueue_on_commit(TaskName.CHUNK_RECORD, locked.pk)
        elif locked.status == ChunkStatus.SYNTHESIZING:  # to the mux, admitted by chunk_transition
            chunk_transition(chunk_id=locked.pk, to=ChunkStatus.MUXING, expect=ChunkStatus.SYNTHESIZING,
                             changes={**done, "attempts": 0, "lease_expires_at": None})
        else:
            for field, value in done.items():
                setattr(locked, field, value)
            locked.save(update_fields=[*done, "updated_at"])
            event_record(job=locked.job, type=EventType.CHUNK_SYNTHESIS_SUCCEEDED, data={"chunk": chunk_view(locked)})
