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
from jobs.pipeline.pricing import chunk_cost
from jobs.pipeline.progress import ChunkProgress
from jobs.services.leases import lease_kept
from jobs.services.objects import object_store
from jobs.services.transitions import chunk_transition
from jobs.spec import Feature
from jobs.storage import fetch_file


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
                branding: muxer.Branding) -> None:
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
        steps = (chunk.recording or {}).get("steps", [])
        first = min(spec.gif.from_step, len(steps)) if steps else 1
        start = main.timeline.body_offset_s + (steps[first - 1]["start_ms"] / 1000 if first > 1 else 0.0)
        seconds = max(1.0, min(spec.gif.seconds, main.timeline.outro_start_s - start))
        preview = renditions.gif(main.path, start_s=start, seconds=seconds, out=work / f"chunk-{n}-preview.gif")
        video = probe.video_stream(preview)
        object_store(job=job, chunk=chunk, kind=ObjectKind.PREVIEW, path=preview,
                     meta={"rendition": "gif", "width": video.width, "height": video.height,
                           "duration_ms": round(seconds * 1000)})


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _mux(chunk: Chunk, work: Path) -> _Muxed:
    job, n = chunk.job, chunk.index
    spec, feature = job.parsed_spec, chunk.feature
    current = list(chunk.stored_objects.current())
    recording = next(o for o in current if o.kind == ObjectKind.RECORDING)
    body = fetch_file(key=recording.key, dest=work / recording.name)
    line_rows: list[StoredObject] = sorted((o for o in current if o.kind == ObjectKind.LINE),
                                           key=lambda o: int(o.meta["line"]))
    paths = [fetch_file(key=o.key, dest=work / "lines" / o.name) for o in line_rows]
    step_starts = {s["step"]: s["start_ms"] / 1000 for s in (chunk.recording or {}).get("steps", [])}
    lines = [options.LineText(index=int(o.meta["line"]), text=str(o.meta["text"]), step=o.meta.get("step"))
             for o in line_rows]
    placed = narration.place_lines(lines, [int(o.meta["samples"]) for o in line_rows], paths,
                                   step_starts=step_starts, pause_s=spec.recorder_pacing().line_pause_ms / 1000)
    words = {int(o.meta["line"]): [narration.Word(w[0], w[1] / 1000, w[2] / 1000) for w in o.meta.get("words", [])]
             for o in line_rows}
    cues = captions.linger([cue for p in placed for cue in captions.line_cues(p.text, p.start_s, p.end_s,
                                                                                words=words[p.line])])
    branding = spec.branding
    logo = inputs.logo_fetch(url=branding.logo_url, dest=work / "logo") if branding.logo_url else None
    cards_branding = muxer.Branding(intro_title=branding.intro_title or chunk.title, outro_title=branding.outro_title,
                                    background=branding.background, accent=branding.accent)
    result = muxer.mux(
        muxer.MuxPlan(
            body=body, lines=placed, out=work / f"chunk-{n}-final.mp4", logo=logo, width=spec.viewport.video_width,
            height=spec.viewport.video_height,
            fps=settings.SCREENREEL_FPS, cues=cues, chapters=feature_chapters(feature, step_starts),
            language=spec.captions.mp4_language, burn_in=spec.captions.burn_in,
            audio_out=work / f"chunk-{n}-audio.mp3", tenant=job.client_id, branding=cards_branding,
        ),
        work_dir=work, cache_dir=settings.SCREENREEL_CARD_CACHE_DIR, chromium_path=settings.SCREENREEL_CHROMIUM,
    )
    _renditions(chunk, work, body=body, main=result, logo=logo, branding=cards_branding)
    offset = result.timeline.body_offset_s
    texts = {
        f"chunk-{n}-captions.vtt": (ObjectKind.CAPTIONS, captions.to_vtt(result.cues)),
        f"chunk-{n}-captions.srt": (ObjectKind.CAPTIONS, captions.to_srt(result.cues)),
        f"chunk-{n}-chapters.txt": (ObjectKind.CHAPTERS, captions.to_youtube(result.chapters)),
    }
    if any(words.values()):
        texts[f"chunk-{n}-words.json"] = (ObjectKind.WORDS, json.dumps({"words": [
            {"line": p.line, "text": w.text, "start_ms": _ms(p.start_s + offset + w.start_s),
             "end_ms": _ms(p.start_s + offset + w.end_s)} for p in placed for w in words[p.line]]}, indent=1))
    object_store(job=job, chunk=chunk, kind=ObjectKind.VIDEO, path=result.path,
                 meta={"duration_ms": result.duration_ms})
    assert result.audio_path is not None
    object_store(job=job, chunk=chunk, kind=ObjectKind.AUDIO, path=result.audio_path,
                 meta={"duration_ms": result.duration_ms})
    for name, (kind, text) in texts.items():
        path = work / name
        path.write_text(text, encoding="utf-8")
        object_store(job=job, chunk=chunk, kind=kind, path=path)
    timeline = {
        "duration_ms": result.duration_ms,
        "recording_starts_ms": _ms(offset),
        "outro_starts_ms": _ms(result.timeline.outro_start_s),
        "steps": [{"step": s["step"], "start_ms": s["start_ms"] + _ms(offset), "end_ms": s["end_ms"] + _ms(offset)}
                  for s in (chunk.recording or {}).get("steps", [])],
        "lines": [{"line": p.line, "step": p.step, "start_ms": _ms(p.start_s + offset),
                   "end_ms": _ms(p.end_s + offset), "text": p.text} for p in placed],
        "chapters": [{"start_ms": _ms(c.start_s), "title": c.title} for c in result.chapters],
        "captions": len(result.cues),
    }
    speech = chunk.speech or {}
    cost = chunk_cost(client=job.client, recording_ms=(chunk.recording or {}).get("duration_ms", 0),
                      characters=int(speech.get("characters", 0)), provider=str(speech.get("provider", "")),
                      provider_characters=speech.get("character_cost"))
    return _Muxed(cost=cost, timeline=timeline)
