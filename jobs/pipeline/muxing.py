"""The mux stage: the lines laid out where their steps started, captions and chapters timed from them, the
final video, its voiceover, captions, chapters and word timings stored, and where everything is kept."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from jobs.lib.logs import log_context
from jobs.lib.queue import enqueue_on_commit
from jobs.lib.task_names import TaskName
from jobs.media import captions, narration, options, probe, proc, renditions
from jobs.media import mux as muxer
from jobs.models import Chunk, ChunkStatus, ObjectKind, StoredObject
from jobs.pipeline import inputs
from jobs.pipeline.common import DONE, StageResult, chunk_claim, lost, stage_failed, timed, workdir
from jobs.pipeline.handoffs import LineAudio, Recording, recording_of, speech_of
from jobs.pipeline.pricing import chunk_cost_of
from jobs.pipeline.progress import ChunkProgress
from jobs.services.leases import lease_kept
from jobs.services.objects import object_store
from jobs.services.transitions import chunk_transition
from jobs.spec import Feature
from jobs.storage.files import fetch_file


@dataclass(frozen=True)
class _Muxed:
    cost: dict[str, Any]
    timeline: dict[str, Any]


def chunk_mux_run(*, chunk_id: int) -> StageResult:
    """Lay the narration out on the recording, add the cards, captions and chapters; store the final video."""
    with log_context(chunk_id=chunk_id):
        chunk = chunk_claim(chunk_id=chunk_id, stage="mux")
        if chunk is None:
            return DONE
        with log_context(job_id=chunk.job_id):
            return _mux_run(chunk)


def _mux_run(chunk: Chunk) -> StageResult:
    work = workdir(chunk, "mux")
    started = time.monotonic()
    try:
        with lease_kept(chunk) as lease, ChunkProgress(chunk_id=chunk.pk, paced=chunk.paced) as progress, \
                proc.stop_when(lambda: lease.lost):  # canceled: ffmpeg is killed within a second
            progress.stage(ChunkStatus.MUXING)
            muxed = _mux(chunk, work)
    except Exception as exc:
        used_s = time.monotonic() - started
        return timed("mux", started, stage_failed(chunk, exc, stage="mux", used_s=used_s))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timed("mux", started, DONE, lost=lease.lost)
    if lost(chunk, lease):
        return DONE
    with transaction.atomic():
        moved = chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.SUCCEEDED, expect=ChunkStatus.MUXING,
                                 changes={"cost": muxed.cost, "timeline": muxed.timeline, "error": ""})
        if moved is not None:
            enqueue_on_commit(TaskName.JOB_SETTLE, chunk.job_id)
    return DONE


def feature_chapters(feature: Feature, step_starts: dict[int, float]) -> list[captions.Chapter]:
    """The feature's chapters on the recording's timeline: one per step that starts one (the first step's
    from the recording's first frame), and the feature's title until the first of them when the first step
    starts none (for the whole recording when no step does)."""
    marks = [captions.Chapter(0.0 if n == 1 else step_starts.get(n, 0.0), str(step["chapter"]))
             for n, step in enumerate(feature.steps, 1) if step.get("chapter")]
    if not marks or marks[0].start_s > 0:
        marks.insert(0, captions.Chapter(0.0, feature.title))
    return marks


def _renditions(chunk: Chunk, work: Path, *, body: Path, main: muxer.MuxResult, logo: Path | None,
                branding: muxer.Branding, recording: Recording) -> None:
    """The cuts and the GIF the job asked for (``outputs``), from the final video, stored."""
    job, n = chunk.job, chunk.index
    spec = job.parsed_spec
    viewport = spec.viewport
    action = renditions.Action.from_track(chunk.track, layout_width=viewport.width, layout_height=viewport.height,
                                          dsf=viewport.device_scale_factor)
    for shape in (s for s in spec.outputs if s in renditions.SHAPES):
        cut = muxer.rendition(
            main=main, body=body, shape=shape, action=action, width=viewport.video_width,
            height=viewport.video_height, fps=settings.SCREENREEL_FPS, logo=logo,
            out=work / f"chunk-{n}-final-{shape.replace(':', 'x')}.mp4", work_dir=work / "renditions",
            cache_dir=settings.SCREENREEL_CARD_CACHE_DIR, chromium_path=settings.SCREENREEL_CHROMIUM,
            tenant=job.client_id, branding=branding)
        object_store(job=job, chunk=chunk, kind=ObjectKind.RENDITION, path=cut.path,
                     meta={"rendition": shape, "width": cut.width, "height": cut.height,
                           "duration_ms": cut.duration_ms})
    if "gif" in spec.outputs:
        steps = recording.steps
        first = min(spec.gif.from_step, len(steps)) if steps else 1
        start = main.timeline.body_offset_s + (steps[first - 1].start_ms / 1000 if first > 1 else 0.0)
        seconds = max(1.0, min(spec.gif.seconds, main.timeline.outro_start_s - start))
        preview = renditions.gif(main.path, start_s=start, seconds=seconds, out=work / f"chunk-{n}-preview.gif")
        video = probe.video_stream(preview)
        object_store(job=job, chunk=chunk, kind=ObjectKind.PREVIEW, path=preview,
                     meta={"rendition": "gif", "width": video.width, "height": video.height,
                           "duration_ms": round(seconds * 1000)})


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(frozen=True)
class _Narration:
    """The lines placed on the recording's timeline, each line's words, and the captions timed from them."""

    placed: list[narration.Placement]
    words: dict[int, list[narration.Word]]
    cues: list[captions.Cue]


def _mux(chunk: Chunk, work: Path) -> _Muxed:
    """Fetch what the synthesis and the recording left, place the narration, make the final video and its
    renditions, store everything; returns the chunk's cost and timeline."""
    job, spec = chunk.job, chunk.job.parsed_spec
    recording = recording_of(chunk)
    assert recording is not None, "the mux runs after the recording"
    current = list(chunk.stored_objects.current())
    body = next(fetch_file(key=o.key, dest=work / o.name) for o in current if o.kind == ObjectKind.RECORDING)
    said = _narration(chunk, work, current, recording)
    branding = spec.branding
    logo = inputs.logo_fetch(url=branding.logo_url, dest=work / "logo") if branding.logo_url else None
    cards = muxer.Branding(intro_title=branding.intro_title or chunk.title, outro_title=branding.outro_title,
                           background=branding.background, accent=branding.accent)
    result = _final_video(chunk, work, body=body, said=said, recording=recording, logo=logo, branding=cards)
    _renditions(chunk, work, body=body, main=result, logo=logo, branding=cards, recording=recording)
    _store_outputs(chunk, work, result=result, said=said)
    cost = chunk_cost_of(client=job.client, recording_ms=recording.duration_ms, speech=speech_of(chunk))
    return _Muxed(cost=cost, timeline=_timeline(result, said, recording))


def _narration(chunk: Chunk, work: Path, current: list[StoredObject], recording: Recording) -> _Narration:
    """Each line's audio fetched and placed where its step started (or one after another), with its words and
    the captions they make."""
    spec = chunk.job.parsed_spec
    rows = sorted(((LineAudio.of(o), o) for o in current if o.kind == ObjectKind.LINE), key=lambda pair: pair[0].line)
    paths = [fetch_file(key=o.key, dest=work / "lines" / o.name) for _, o in rows]
    lines = [options.LineText(index=audio.line, text=audio.text, step=audio.step) for audio, _ in rows]
    placed = narration.place_lines(lines, [audio.samples for audio, _ in rows], paths,
                                   step_starts=recording.step_starts_s(),
                                   pause_s=spec.recorder_pacing().line_pause_ms / 1000)
    words = {audio.line: [narration.Word(w.text, w.start_ms / 1000, w.end_ms / 1000) for w in audio.words]
             for audio, _ in rows}
    cues = captions.linger([cue for p in placed for cue in captions.line_cues(p.text, p.start_s, p.end_s,
                                                                                words=words[p.line])])
    return _Narration(placed=placed, words=words, cues=cues)


def _final_video(chunk: Chunk, work: Path, *, body: Path, said: _Narration, recording: Recording,
                 logo: Path | None, branding: muxer.Branding) -> muxer.MuxResult:
    job, n, spec = chunk.job, chunk.index, chunk.job.parsed_spec
    return muxer.mux(
        muxer.MuxPlan(
            body=body, lines=said.placed, out=work / f"chunk-{n}-final.mp4", logo=logo,
            width=spec.viewport.video_width, height=spec.viewport.video_height, fps=settings.SCREENREEL_FPS,
            cues=said.cues, chapters=feature_chapters(chunk.feature, recording.step_starts_s()),
            language=spec.captions.mp4_language, burn_in=spec.captions.burn_in,
            audio_out=work / f"chunk-{n}-audio.mp3", tenant=job.client_id, branding=branding,
        ),
        work_dir=work, cache_dir=settings.SCREENREEL_CARD_CACHE_DIR, chromium_path=settings.SCREENREEL_CHROMIUM,
    )


def _store_outputs(chunk: Chunk, work: Path, *, result: muxer.MuxResult, said: _Narration) -> None:
    """Store the final video, its voiceover, its captions and chapters, and its word timings when known."""
    job, n = chunk.job, chunk.index
    offset = result.timeline.body_offset_s
    texts = {
        f"chunk-{n}-captions.vtt": (ObjectKind.CAPTIONS, captions.to_vtt(result.cues)),
        f"chunk-{n}-captions.srt": (ObjectKind.CAPTIONS, captions.to_srt(result.cues)),
        f"chunk-{n}-chapters.txt": (ObjectKind.CHAPTERS, captions.to_youtube(result.chapters)),
    }
    if any(said.words.values()):
        texts[f"chunk-{n}-words.json"] = (ObjectKind.WORDS, json.dumps({"words": [
            {"line": p.line, "text": w.text, "start_ms": _ms(p.start_s + offset + w.start_s),
             "end_ms": _ms(p.start_s + offset + w.end_s)} for p in said.placed for w in said.words[p.line]]}, indent=1))
    object_store(job=job, chunk=chunk, kind=ObjectKind.VIDEO, path=result.path,
                 meta={"duration_ms": result.duration_ms})
    assert result.audio_path is not None
    object_store(job=job, chunk=chunk, kind=ObjectKind.AUDIO, path=result.audio_path,
                 meta={"duration_ms": result.duration_ms})
    for name, (kind, text) in texts.items():
        path = work / name
        path.write_text(text, encoding="utf-8")
        object_store(job=job, chunk=chunk, kind=kind, path=path)


def _timeline(result: muxer.MuxResult, said: _Narration, recording: Recording) -> dict[str, Any]:
    """Where everything is on the final video's timeline (``Chunk.timeline``, shown to clients)."""
    offset = result.timeline.body_offset_s
    return {
        "duration_ms": result.duration_ms,
        "recording_starts_ms": _ms(offset),
        "outro_starts_ms": _ms(result.timeline.outro_start_s),
        "steps": [{"step": s.step, "start_ms": s.start_ms + _ms(offset), "end_ms": s.end_ms + _ms(offset)}
                  for s in recording.steps],
        "lines": [{"line": p.line, "step": p.step, "start_ms": _ms(p.start_s + offset),
                   "end_ms": _ms(p.end_s + offset), "text": p.text} for p in said.placed],
        "chapters": [{"start_ms": _ms(c.start_s), "title": c.title} for c in result.chapters],
        "captions": len(result.cues),
    }
