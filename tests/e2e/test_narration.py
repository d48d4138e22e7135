"""Narration that lands on the action, through real workers: per-step lines paced into a real recording,
captions and chapters from the script, checked against the final video's own audio and metadata with
tools we did not write (ffmpeg's silencedetect, ffprobe, webvtt-py, srt)."""

from __future__ import annotations

import io
import itertools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from jobs.media import voice
from jobs.models import JobStatus
from tests.conftest import Tenant
from tests.e2e.conftest import Worker, bundle_archive, wait_until_ended
from tests.jobs.media.elevenlabs_emulator import Emulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LEXICON = {"Screenreel": "screen reel"}
STEPS: list[dict[str, Any]] = [
    {"action": "goto", "url": "/projects.html", "chapter": "Projects", "say": "Here are your projects."},
    {"action": "click", "selector": "text=New project", "say": "Click New project."},
    {"action": "type", "selector": "#name", "text": "Launch", "say": "Name it, for example after Screenreel."},
    {"action": "press", "key": "Enter", "say": "Press enter."},
    {"action": "goto", "url": "/reports.html", "chapter": "Reports", "say": "Now open the reports."},
    {"action": "click", "selector": "#prepare-export"},
    # Slow: the export is ready two seconds after the click, longer than this step's line lasts.
    {"action": "wait_for", "selector": ".export-ready", "say": "Wait a moment."},
    {"action": "hover", "selector": "#export-status", "say": "The export is ready."},
]
SPOKEN = [s for s in STEPS if "say" in s]


def _onsets(video: Path) -> list[float]:
    """Where speech starts in the video's audio: the ends of silences ffmpeg's silencedetect finds."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(video), "-map", "0:a", "-af",
                          "silencedetect=noise=-45dB:d=0.12", "-f", "null", "-"], capture_output=True, text=True,
                         check=True).stderr
    return [float(x) for x in re.findall(r"silence_end: ([\d.]+)", out)]


def _probe(video: Path, *what: str) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *what, str(video)], capture_output=True,
                         check=True).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def test_per_step_lines_land_on_their_steps_with_captions_and_chapters_from_the_script(
        worker: Worker, sample_app: str, tmp_path: Path) -> None:
    tenant = Tenant("Narrated")
    created = tenant.api.post("/v1/jobs", {
        "target_url": sample_app, "viewport": {"width": 640, "height": 360},
        "voice": {"provider": "espeak-ng", "lexicon": LEXICON},
        "features": [{"title": "A narrated tour", "steps": STEPS}]}, format="json")
    assert created.status_code == 201, created.json()
    job = wait_until_ended(created.json()["id"], timeout=300)
    assert job.status == JobStatus.SUCCEEDED, job.to_dict()

    archive = bundle_archive(job)
    manifest = json.loads(archive.read("manifest.json"))
    timeline = manifest["chunks"][0]["timeline"]
    video = tmp_path / "final.mp4"
    video.write_bytes(archive.read("chunk-1-final.mp4"))

    # The final video: H.264, AAC and a mov_text subtitle track; chapter marks as the manifest says.
    streams = {s["codec_type"]: s for s in _probe(video, "-show_streams")["streams"]}
    assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
    assert (streams["subtitle"]["codec_name"], streams["subtitle"]["tags"]["language"]) == ("mov_text", "eng")
    marks = _probe(video, "-show_chapters")["chapters"]
    assert [(m["tags"]["title"], round(float(m["start_time"]) * 1000)) for m in marks] == [
        (c["title"], c["start_ms"]) for c in timeline["chapters"]]
    assert [c["title"] for c in timeline["chapters"]] == ["Intro", "Projects", "Reports", "Outro"]
    chapters_txt = archive.read("chunk-1-chapters.txt").decode()
    assert chapters_txt.splitlines()[0] == "0:00 Intro" and chapters_txt.splitlines()[-1].endswith(" Outro")

    # Captions: parsed by webvtt-py and srt, the script's words in order, the lexicon nowhere.
    vtt = webvtt.from_buffer(io.StringIO(archive.read("chunk-1-captions.vtt").decode())).captions
    subs = list(srt.parse(archive.read("chunk-1-captions.srt").decode()))
    written = " ".join(s["say"] for s in SPOKEN).split()
    assert " ".join(c.text for c in vtt).split() == written
    assert " ".join(s.content for s in subs).split() == written
    assert "screen reel" not in archive.read("chunk-1-captions.vtt").decode()
    assert all(len(row) <= 42 for c in vtt for row in c.text.split("\n"))
    cue_starts = [s.start.total_seconds() for s in subs]
    assert cue_starts == sorted(cue_starts)

    # Every line: its cue starts within 150 ms of where speech starts in the final video's audio, and its
    # step starts within 300 ms of its cue.
    onsets = _onsets(video)
    steps = {s["step"]: s for s in timeline["steps"]}
    lines = timeline["lines"]
    assert [line["text"] for line in lines] == [s["say"] for s in SPOKEN]
    def nearest(values: list[float], to: float) -> float:
        return min(values, key=lambda t: abs(t - to))

    for line in lines:
        cue = nearest(cue_starts, line["start_ms"] / 1000)
        onset = nearest(onsets, cue)
        assert abs(onset - cue) <= 0.150, (line, cue, onset)
        assert abs(steps[line["step"]]["start_ms"] / 1000 - cue) <= 0.300, (line, steps[line["step"]], cue)
        # Nothing is said in the 300 ms before a line: it never starts early.
        assert not [t for t in onsets if cue - 0.3 < t < cue - 0.150], (line, onsets)

    # The slow step: waiting for the export took longer than its line, and the next line still started
    # with its own step, after the wait, not before it.
    slow, after = steps[7], steps[8]
    slow_line = next(line for line in lines if line["step"] == 7)
    assert slow["end_ms"] - slow["start_ms"] > 1200 and slow["end_ms"] > slow_line["end_ms"], (slow, slow_line)
    next_line = next(line for line in lines if line["step"] == 8)
    assert next_line["start_ms"] >= slow["end_ms"]
    assert abs(next_line["start_ms"] - after["start_ms"]) <= 50

    # The manifest says where everything is: steps in order, lines within the video, the files listed.
    assert [s["step"] for s in timeline["steps"]] == list(range(1, len(STEPS) + 1))
    assert all(timeline["recording_starts_ms"] <= x["start_ms"] < x["end_ms"] <= timeline["outro_starts_ms"]
               for x in lines)
    names = {a["name"] for a in manifest["assets"]}
    assert {"chunk-1-captions.vtt", "chunk-1-captions.srt", "chunk-1-chapters.txt", "chunk-1-audio.mp3",
            "chunk-1-script.txt"} <= names
    assert archive.read("chunk-1-script.txt").decode().splitlines() == [s["say"] for s in SPOKEN]


def test_a_voice_with_word_timings_gives_chunk_words_json_in_the_written_words(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    mp3 = tmp_path / "voice.mp3"
    voice.synthesize("This is the emulated ElevenLabs voice speaking.", mp3, provider="espeak-ng")
    emulator = Emulator(api_key="sk_e2e_words", mp3=mp3.read_bytes(), seconds=1.5).start()
    worker = Worker({**worker_env, "ELEVENLABS_API_KEY": "sk_e2e_words", "ELEVENLABS_BASE_URL": emulator.base_url},
                    tmp_path / "worker.log")
    worker.start()
    try:
        created = Tenant("Words").api.post("/v1/jobs", {
            "target_url": sample_app, "viewport": {"width": 640, "height": 360},
            "voice": {"provider": "elevenlabs", "lexicon": LEXICON},
            "features": [{"title": "Words", "steps": [
                {"action": "goto", "url": "/", "say": "Screenreel records your app."},
                {"action": "wait", "ms": 300, "say": "Then it narrates."}]}]}, format="json")
        assert created.status_code == 201, created.json()
        job = wait_until_ended(created.json()["id"], timeout=240)
    finally:
        worker.stop()
        emulator.stop()
    assert job.status == JobStatus.SUCCEEDED, job.to_dict()
    archive = bundle_archive(job)
    words = json.loads(archive.read("chunk-1-words.json"))["words"]
    assert [w["text"] for w in words] == ["Screenreel", "records", "your", "app.", "Then", "it", "narrates."]
    lines = json.loads(archive.read("manifest.json"))["chunks"][0]["timeline"]["lines"]
    for line in lines:  # every word within its line, in order
        own = [w for w in words if w["line"] == line["line"]]
        assert line["start_ms"] <= own[0]["start_ms"] and own[-1]["end_ms"] <= line["end_ms"] + 1, (line, own)
        assert all(a["end_ms"] <= b["start_ms"] + 1 for a, b in itertools.pairwise(own))
    # What the voice was asked to say: the lexicon's spoken form, with its neighbours for prosody.
    sent = [r.json for r in emulator.received if r.json]
    assert sent[0]["text"] == "screen reel records your app." and sent[0]["next_text"] == "Then it narrates."
    assert sent[1]["previous_text"] == "screen reel records your app."
