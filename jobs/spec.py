"""The job spec as one typed object (one typed shape per payload that crosses apps: docs/architecture.md).

``jobs.api.serializers`` validates what a client sends, with field paths and error codes; what it keeps is
stored on ``Job.spec`` and read back here, once, into frozen objects that own every default. Nothing
else reads the JSON by hand, so a default (a branding colour, the viewport) is written down only here
and in the media layer it comes from.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobs.media.camera import CameraSettings
from jobs.media.options import DEFAULT_ACCENT, DEFAULT_BACKGROUND, LANGUAGES, LineText, Pacing, lines_for
from jobs.media.redact import Redaction
from jobs.media.secrets import SecretRef

DEFAULT_VIEWPORT = {"width": 1280, "height": 720}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Viewport(_Frozen):
    width: int = DEFAULT_VIEWPORT["width"]
    height: int = DEFAULT_VIEWPORT["height"]
    device_scale_factor: int = 1  # 2: the same layout with twice the pixels each way

    @property
    def video_width(self) -> int:
        return self.width * self.device_scale_factor

    @property
    def video_height(self) -> int:
        return self.height * self.device_scale_factor


class Branding(_Frozen):
    intro_title: str = ""
    outro_title: str = ""
    background: str = DEFAULT_BACKGROUND
    accent: str = DEFAULT_ACCENT
    logo_url: str = ""


class Voice(_Frozen):
    provider: str = "auto"
    voice_id: str | None = None
    lexicon: dict[str, str] = Field(default_factory=dict)


class Captions(_Frozen):
    burn_in: bool = False
    language: str = "en"

    @property
    def mp4_language(self) -> str:
        """The ISO 639-2 code the subtitle track carries."""
        return LANGUAGES[self.language]


class Camera(_Frozen):
    zoom: str = "auto"  # "auto": ease toward what is clicked or typed into; "off"
    max_scale: float = CameraSettings.max_scale
    lead_in_ms: int = CameraSettings.lead_in_ms
    lead_out_ms: int = CameraSettings.lead_out_ms

    def settings(self) -> CameraSettings:
        return CameraSettings(zoom=self.zoom == "auto", max_scale=self.max_scale, lead_in_ms=self.lead_in_ms,
                              lead_out_ms=self.lead_out_ms)


class Gif(_Frozen):
    seconds: float = 6.0
    from_step: int = 1  # starts where this step starts (the recording's start for step 1)


class Redact(_Frozen):
    selectors: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)

    def redaction(self) -> Redaction:
        return Redaction(selectors=tuple(self.selectors), patterns=tuple(self.patterns))


class Feature(_Frozen):
    title: str
    script: str = ""  # empty when the steps carry their own lines
    steps: list[dict[str, Any]] = Field(min_length=1)

    @property
    def lines(self) -> list[LineText]:
        """What is said: the steps' ``say`` lines, else the script's sentences (``jobs.media.narration``)."""
        return lines_for(script=self.script, steps=self.steps)

    @property
    def per_step(self) -> bool:
        """Whether the steps carry the lines (then synthesis comes before the recording, which paces to them)."""
        return any(step.get("say") for step in self.steps)

    @property
    def narration_text(self) -> str:
        """The narration as written, one line per line (chunk-N-script.txt)."""
        return "\n".join(line.text for line in self.lines) if self.per_step else self.script.strip()


class SignIn(_Frozen):
    """Steps run off camera before any of a job's features records (docs/credentials.md): the session they leave is
    where every feature starts."""

    url: str = ""  # where the sign-in starts: a path on target_url, or a URL; empty: target_url itself
    steps: list[dict[str, Any]] = Field(min_length=1)


class JobSpec(_Frozen):
    target_url: str
    viewport: Viewport = Viewport()
    features: list[Feature] = Field(min_length=1)
    branding: Branding = Branding()
    voice: Voice = Voice()
    pacing: dict[str, int] = Field(default_factory=dict)
    captions: Captions = Captions()
    redact: Redact = Redact()
    camera: Camera = Camera()
    # What to deliver besides the 16:9 video (always made): "9:16" and "1:1" cuts, a "gif" preview.
    outputs: list[str] = Field(default_factory=lambda: ["16:9"])
    gif: Gif = Gif()
    color_scheme: str = "light"
    locale: str | None = None  # e.g. "de-DE"; None: the browser's own (en-US)
    timezone_id: str | None = None  # e.g. "Europe/Berlin"; None: the worker's (UTC)
    webhook_url: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    sign_in: SignIn | None = None
    # Credentials whose headers, HTTP basic and saved session go with every request to their origins.
    credentials: list[str] = Field(default_factory=list)

    def secret_refs(self) -> list[SecretRef]:
        """Every secret a step names (the sign-in's, then the features'), each once."""
        steps = [*(self.sign_in.steps if self.sign_in else []), *(s for f in self.features for s in f.steps)]
        return list(dict.fromkeys(ref for step in steps if (ref := SecretRef.of(step)) is not None))

    @classmethod
    def load(cls, data: dict[str, Any]) -> JobSpec:
        """The spec stored on a job (validated at submission), with every default filled in."""
        return cls.model_validate(data)

    def recorder_pacing(self) -> Pacing:
        return Pacing(**self.pacing)

    def page_settings(self) -> dict[str, Any]:
        """What the browser was told about the page, as the manifest records it."""
        return {"viewport": {"width": self.viewport.width, "height": self.viewport.height},
                "device_scale_factor": self.viewport.device_scale_factor, "color_scheme": self.color_scheme,
                "locale": self.locale, "timezone_id": self.timezone_id}
