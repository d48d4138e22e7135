"""Redaction that holds on real front-end code, read back by OCR: a page of our own (pages/redaction.html)
shows an address in every form a page can, against its own CSS that undoes styles put on its elements, and
``redact: {"patterns": ["email"]}`` must leave none of them legible in any still, any frame (2 a second) of
the final video, its 9:16 and 1:1 cuts, or its GIF. The labels beside them and a line that is no address are
read, so OCR is shown to work on the same pixels."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.media.recorder import RecordRequest, record
from jobs.media.redact import Redaction
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.jobs.media.ocr import frames, ocr, renditions_of
from tests.pages import pages_served

pytestmark = [requires_chromium, pytest.mark.skipif(not shutil.which("tesseract"), reason="needs tesseract-ocr"),
              pytest.mark.timeout(600)]

PAGES = Path(__file__).with_name("pages")
# Each form's address: its own animal as the user part, its own Greek letter as the domain.
FORMS = {
    "split text nodes (React's {user}@{domain})": "quokka@alpha.io",
    "inline elements (<b>, <span>, <em>)": "wombat@beta.io",
    "open shadow root": "narwhal@mu.io",
    "closed shadow root": "bison@nu.io",
    "::before content": "ocelot@gamma.io",
    "::after content from attr()": "pangolin@delta.io",
    "placeholder": "axolotl@epsilon.io",
    "alt text of a broken image": "capybara@zeta.io",
    "title": "meerkat@eta.io",
    "aria-label shown as a tooltip on hover": "tapir@theta.io",
    "controlled input set by script": "gecko@xi.io",
    "display: contents": "okapi@iota.io",
    "page rule filter: none !important": "lemur@kappa.io",
    "value of a button": "ibex@lambda.io",
    "text that arrives later": "toucan@rho.io",
    "typed by the recorder": "jaguar@phi.io",
    "same-origin iframe": "marmot@pi.io",
    "srcdoc iframe": "heron@omicron.io",
    "fixed header": "falcon@upsilon.io",
    "below the fold, after a scroll": "walrus@sigma.io",
    "modal dialog (the top layer)": "jackal@tau.io",
}
# What OCR must never read: every user part, and every domain of four letters or more (shorter ones could be
# made up by OCR out of anything).
PROTECTED = re.compile("|".join(sorted({part for address in FORMS.values() for part in re.split("[@.]", address)
                                        if len(part) >= 4 and part != "io"})), re.IGNORECASE)
LABELS = ["Split nodes", "Inline tags", "Open shadow", "Closed shadow", "Before", "After", "Placeholder", "Alt text",
          "Title", "Tooltip", "Controlled", "Contents", "Filter none", "Button", "Later", "Typed", "Same origin",
          "Srcdoc"]
STEPS: list[dict[str, Any]] = [
    {"action": "wait", "ms": 1000},  # the controlled value (300 ms) and the late text (600 ms) arrive
    {"action": "hover", "selector": "#tip"},
    {"action": "type", "selector": "#typed", "text": FORMS["typed by the recorder"]},
    {"action": "click", "selector": "#open-dialog"},
    {"action": "wait", "ms": 500},
    {"action": "press", "key": "Escape"},
    {"action": "scroll", "y": 900},
    {"action": "wait", "ms": 500},
]


def test_no_output_holds_an_address_in_any_form_the_page_shows_it(tmp_path: Path) -> None:
    pages = {"/": (PAGES / "redaction.html").read_text(), "/redaction-frame.html":
             (PAGES / "redaction-frame.html").read_text()}
    with pages_served(pages) as served:
        rec = record(RecordRequest(target_url=f"{served.base}/", width=1280, height=720, steps=STEPS,
                                   feature_title="Forms", out_dir=tmp_path / "rec", chromium_path=CHROMIUM,
                                   tenant="test", redaction=Redaction(patterns=("email",))))
    final, *cuts = renditions_of(rec, tmp_path / "renditions", title="Forms")
    images = {"still": [still.path for still in rec.stills], "final video": frames(final, tmp_path / "final", fps=2)}
    for n, video in enumerate(cuts):
        images[video.name] = frames(video, tmp_path / f"rendition-{n}", fps=2)
    read = {kind: {image: ocr(image) for image in paths} for kind, paths in images.items()}

    assert len(images["final video"]) >= 24 and all(images.values())
    leaks = [(kind, image.name, text) for kind, texts in read.items() for image, text in texts.items()
             if PROTECTED.search(text)]
    assert not leaks, leaks
    # OCR reads these very pixels: the line that is no address, in stills and in the video, and the labels.
    for kind in ("still", "final video"):
        text = " ".join(read[kind].values())
        assert "kingfisher harbour" in text, (kind, text)
        labels = [label for label in LABELS if label in text]
        assert len(labels) >= 10, (kind, labels, text)
    assert rec.redaction is not None and isinstance(rec.redaction["text_matches"], int)
    assert rec.redaction["text_matches"] >= len(FORMS) - 1  # the dialog's address is counted once it is open


def test_without_redaction_ocr_reads_the_addresses_of_this_page(tmp_path: Path) -> None:
    # The same page and steps without redaction: the forms are legible, so the test above can fail.
    pages = {"/": (PAGES / "redaction.html").read_text(), "/redaction-frame.html":
             (PAGES / "redaction-frame.html").read_text()}
    with pages_served(pages) as served:
        rec = record(RecordRequest(target_url=f"{served.base}/", width=1280, height=720, steps=STEPS,
                                   feature_title="Forms", out_dir=tmp_path, chromium_path=CHROMIUM, tenant="test"))
    text = " ".join(ocr(still.path) for still in rec.stills)
    found = {match.lower() for match in PROTECTED.findall(text)}
    assert len(found) >= 25, sorted(found)
