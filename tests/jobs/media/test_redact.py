"""Redaction at capture, read back by OCR (Debian's tesseract): without it the email addresses and the
API key of the sample app are legible in the stills; with it, no still and no frame (one a second) of the
recording, the final video, its 9:16 and 1:1 cuts or its GIF holds them, including the address that
appears after a navigation and the one the recorder types."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.media import virtual_time
from jobs.media.errors import MediaError
from jobs.media.recorder import Recording, RecordRequest, record
from jobs.media.redact import Redaction, RedactionReport
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.jobs.media.ocr import frames, ocr, renditions_of

pytestmark = [requires_chromium, pytest.mark.skipif(not shutil.which("tesseract"), reason="needs tesseract-ocr")]

STEPS: list[dict[str, Any]] = [
    {"action": "goto", "url": "/index.html"},
    {"action": "wait", "ms": 400},
    {"action": "goto", "url": "/settings.html"},  # the key, and a contact that arrives 800 ms later
    {"action": "wait", "ms": 1200},
    {"action": "type", "selector": "#invite", "text": "sam.lee@acme-corp.com"},
    {"action": "wait", "ms": 300},
]
# What OCR must not find: the addresses' domain and the key (lenient to OCR's way with underscores).
SECRET = re.compile(r"acme|corp\.com|live.?51|51hcrn|hcrn2x", re.IGNORECASE)


def run(app: str, out: Path, redaction: Redaction, capture: str = "screencast") -> Recording:
    return record(RecordRequest(target_url=f"{app}/", width=1280, height=720, steps=STEPS, feature_title="Keys",
                                out_dir=out, chromium_path=CHROMIUM, redaction=redaction, tenant="test",
                                capture=capture))


def test_without_redaction_ocr_reads_the_addresses_and_the_key(sampleapp_url: str, tmp_path: Path) -> None:
    rec = run(sampleapp_url, tmp_path, Redaction())
    text = " ".join(ocr(still.path) for still in rec.stills)
    assert re.search(r"jane\.doe@acme", text, re.IGNORECASE), text  # the overview's account line
    assert re.search(r"live.?51", text, re.IGNORECASE), text  # the settings page's key
    assert re.search(r"billing@acme", text, re.IGNORECASE), text  # the contact that arrived later
    assert rec.redaction is None


# Both captures: on the video's clock the page is one the browser made for the recorder (jobs.media.virtual_time), and
# the redaction must be in it before its first paint all the same.
@pytest.mark.parametrize("capture", [
    "screencast",
    pytest.param("virtual_time", marks=pytest.mark.skipif(not virtual_time.available(), reason="needs the headless "
                                                                                                  "shell"))])
def test_with_redaction_no_still_and_no_frame_holds_them(sampleapp_url: str, tmp_path: Path, capture: str) -> None:
    rec = run(sampleapp_url, tmp_path, Redaction(selectors=(".api-key", ".not-on-any-page"), patterns=("email",)),
              capture)
    assert rec.capture == capture
    images = [still.path for still in rec.stills] + frames(rec.video_path, tmp_path / "frames")
    for n, video in enumerate(renditions_of(rec, tmp_path / "renditions")):
        images += frames(video, tmp_path / f"rendition-{n}")
    assert len(images) >= 40
    for image in images:
        text = ocr(image)
        assert not SECRET.search(text), (image.name, text)
    # The pages were still recorded, blurred only where they had to be.
    assert "Settings" in " ".join(ocr(still.path) for still in rec.stills)
    assert rec.redaction is not None
    assert rec.redaction["unmatched_selectors"] == [".not-on-any-page"]  # said, not ignored
    assert rec.redaction["selectors"] == {".api-key": 1, ".not-on-any-page": 0}
    assert isinstance(rec.redaction["text_matches"], int) and rec.redaction["text_matches"] >= 3


def test_a_pattern_that_cannot_run_in_linear_time_fails_before_anything_is_recorded(sampleapp_url: str,
                                                                                    tmp_path: Path) -> None:
    # A job stored before patterns were checked for linear time (the API refuses it now).
    steps = [{"action": "wait", "ms": 5000}]
    with pytest.raises(MediaError) as caught:
        record(RecordRequest(target_url=f"{sampleapp_url}/settings.html", width=640, height=360, steps=steps,
                             feature_title="Refused", out_dir=tmp_path, chromium_path=CHROMIUM,
                             redaction=Redaction(patterns=("sk_(?=live)[a-z]+",)), tenant="test"))
    assert caught.value.permanent is True
    message = str(caught.value)
    assert "redaction could not be applied" in message and "sk_(?=live)" in message and "Lookarounds" in message
    assert not list(tmp_path.glob("*.mp4"))  # nothing recorded: it failed before the 5 s step


def test_a_page_that_floods_the_report_binding_grows_nothing_beyond_its_bounds() -> None:
    """Any script of the page can call the binding the redaction reports through: what it sends is bounded."""
    report = RedactionReport(selectors=frozenset({"#card"}))
    for n in range(5000):
        report.add({"selectors": {f"junk-{n}": 1, "#card": 2}, "text": 1, "document": f"doc-{n}" * 100,
                    "errors": [f"error {n} " + "x" * 10_000]})
    assert report.selector_matches == {"#card": 2}
    assert len(report.text_by_document) == RedactionReport.MAX_DOCUMENTS
    assert len(report.errors) == RedactionReport.MAX_ERRORS and all(len(e) <= 300 for e in report.errors)
