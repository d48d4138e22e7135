"""Validation of the job spec (docs/api.md, "The job spec"). Every rule here has a test with its error code."""

from __future__ import annotations

import functools
import re
import zoneinfo
from typing import Any

import cssselect
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.lib.errors import DomainError
from jobs.lib.keys.scopes import SCOPES
from jobs.lib.rest import (
    MAX_URL,
    NOT_BLANK,
    HttpUrlField,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    validate_http_url,
    validate_storable,
)
from jobs.media.camera import CameraSettings
from jobs.media.options import LANGUAGES, Pacing, least_duration_s
from jobs.media.patterns import PatternError, compile_pattern
from jobs.media.redact import BUILTIN_PATTERNS
from jobs.media.secrets import MAX_INPUT_CHARS, TYPED_FIELDS
from jobs.media.voice import voice_error
from jobs.spec import DEFAULT_VIEWPORT, Branding, Camera, Captions, Gif, Redact, Voice

HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
ACTIONS = ("goto", "click", "type", "press", "scroll", "hover", "wait", "wait_for")
# Which fields each action needs and may carry; anything else is an error, not silently ignored.
STEP_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "goto": ({"url"}, set()),
    "click": ({"selector"}, {"timeout_ms"}),
    "type": ({"selector"}, {"timeout_ms", "text", "secret", "input"}),  # exactly one of text, secret, input
    "press": ({"key"}, set()),
    "scroll": ({"y"}, set()),
    "hover": ({"selector"}, {"timeout_ms"}),
    "wait": ({"ms"}, set()),
    "wait_for": ({"selector"}, {"timeout_ms"}),
}
# Every action may also carry ``say`` (the line spoken as the step begins) and ``chapter`` (a chapter
# title starting at the step).
STEP_COMMON = frozenset({"say", "chapter"})
# What a ``type`` step types: literal text, a credential's secret, or (in a sign-in) an input a person posts.
TYPED = ("text", "secret", "input")
INPUT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Inputs one sign-in may wait for (each up to SCREENREEL_INPUT_WINDOW_S): an e-mailed code, then a texted one.
MAX_INPUTS = 2
VOICE_PROVIDERS = ("auto", "espeak-ng", "piper", "elevenlabs")
MAX_LINE = 1000
MAX_LEXICON = 200


class ViewportSerializer(StrictSerializer):
    width = StrictIntegerField(min_value=320, max_value=1920)
    height = StrictIntegerField(min_value=240, max_value=1080)
    # 2 records the same layout with twice the pixels each way (2560x1440 from 1280x720): crisp text.
    device_scale_factor = StrictIntegerField(min_value=1, max_value=2, required=False, default=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # H.264 in yuv420p needs even dimensions.
        for name in ("width", "height"):
            if attrs[name] % 2:
                raise serializers.ValidationError({name: serializers.ErrorDetail(
                    "Must be an even number of pixels.", code="not_even")})
        return attrs


class SecretRefSerializer(StrictSerializer):
    """A secret a ``type`` step types: a credential of the client's and one of its fields (docs/credentials.md).
    The value is never in the spec; it is read at the moment it is typed."""

    credential = StrictCharField(max_length=40)
    field = serializers.ChoiceField(choices=TYPED_FIELDS)


def validate_url_or_path(url: str) -> None:
    """A path on the target (``/projects``), or an http(s) URL."""
    if url.startswith("/"):
        if any(ch.isspace() or ord(ch) < 0x20 or ch in "\\\x7f\ufeff" for ch in url):
            raise serializers.ValidationError(
                "A path must not contain spaces, control characters or backslashes.", code="invalid_url")
        return
    validate_http_url(url)


class StepSerializer(StrictSerializer):
    in_sign_in = False

    action = serializers.ChoiceField(choices=ACTIONS)
    url = StrictCharField(max_length=MAX_URL, required=False)
    selector = StrictCharField(max_length=500, required=False)
    text = StrictCharField(max_length=2000, required=False, trim_whitespace=False)
    secret = SecretRefSerializer(required=False)
    # The name of an input a person must read (an e-mailed code), posted to POST /v1/jobs/{id}/input.
    input = StrictCharField(max_length=40, required=False,
                            validators=[RegexValidator(INPUT_NAME, "A name of lowercase letters, digits and _, "
                                                       "starting with a letter (e.g. email_code).",
                                                       code="invalid_input_name")])
    key = StrictCharField(max_length=50, required=False)
    y = StrictIntegerField(min_value=-20000, max_value=20000, required=False)
    ms = StrictIntegerField(min_value=0, max_value=30000, required=False)
    timeout_ms = StrictIntegerField(min_value=100, max_value=60000, required=False)
    say = StrictCharField(max_length=MAX_LINE, required=False)
    chapter = StrictCharField(max_length=100, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        action = attrs["action"]
        required, optional = STEP_FIELDS[action]
        given = set(attrs) - {"action"} - STEP_COMMON
        errors: dict[str, Any] = {}
        for name in sorted(required - given):
            errors[name] = serializers.ErrorDetail(f"Required for action '{action}'.", code="required")
        for name in sorted(given - required - optional):
            errors[name] = serializers.ErrorDetail(f"Not allowed for action '{action}'.", code="not_allowed")
        if action == "type" and len(given & set(TYPED)) != 1:
            errors["text"] = serializers.ErrorDetail(
                "Give exactly one of 'text' (typed as written), 'secret' (a credential's value) and, in sign_in, "
                "'input' (a value a person posts).", code="text_or_secret")
        if "input" in given and not self.in_sign_in:
            errors["input"] = serializers.ErrorDetail(
                "An input is typed in sign_in only: a feature's steps are on camera, and the video would wait "
                "for it.", code="input_in_sign_in_only")
        if errors:
            raise serializers.ValidationError(errors)
        if action == "goto":
            try:
                validate_url_or_path(attrs["url"])
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"url": exc.detail}) from exc
        return attrs


class SignInStepSerializer(StepSerializer):
    """A step of the off-camera sign-in: nothing is said or shown, so no ``say`` and no ``chapter``; an input a
    person must read may be waited for here."""

    in_sign_in = True

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in sorted(STEP_COMMON & set(attrs)):
            raise serializers.ValidationError({name: serializers.ErrorDetail(
                "Not allowed in sign_in: its steps are off camera.", code="not_allowed")})
        return super().validate(attrs)


class SignInSerializer(StrictSerializer):
    """Steps run once per job, off camera, before any feature records; every feature starts from the session
    they leave (docs/credentials.md)."""

    url = StrictCharField(max_length=MAX_URL, required=False, validators=[validate_url_or_path])
    steps = SignInStepSerializer(many=True, min_length=1, max_length=20)  # type: ignore[call-arg]

    def validate_steps(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if sum("input" in step for step in value) > MAX_INPUTS:
            raise serializers.ValidationError(
                f"At most {MAX_INPUTS} steps may wait for an input.", code="too_many_inputs")
        return value


class FeatureSerializer(StrictSerializer):
    """A feature is narrated either by one ``script`` over its recording or by its steps' ``say`` lines
    (each spoken as its step begins; the recorder paces the steps to them), never both."""

    title = StrictCharField(max_length=200)
    script = StrictCharField(max_length=5000, required=False)
    # many=True passes these on to the ListSerializer; the stubs do not know that.
    steps = StepSerializer(many=True, max_length=50, min_length=1)  # type: ignore[call-arg]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        lines = any("say" in step for step in attrs["steps"])
        if lines and "script" in attrs:
            raise serializers.ValidationError({"script": serializers.ErrorDetail(
                "Give either a script or per-step 'say' lines, not both.", code="script_and_lines")})
        if not lines and "script" not in attrs:
            raise serializers.ValidationError({"script": serializers.ErrorDetail(
                "Required unless steps carry 'say' lines: a feature needs narration.", code="required")})
        return attrs


class HexColourField(StrictCharField):
    """``#RGB`` or ``#RRGGBB``, stored as upper-case ``#RRGGBB`` (the one form the renderer takes)."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not HEX_COLOUR.match(value):
            raise serializers.ValidationError("Must be a hex colour like #1A2B3C.", code="invalid")
        digits = value[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return "#" + digits.upper()


class BrandingSerializer(StrictSerializer):
    intro_title = StrictCharField(max_length=120, required=False, default="")
    outro_title = StrictCharField(max_length=120, required=False, default="")
    background = HexColourField(required=False, default=Branding().background)
    accent = HexColourField(required=False, default=Branding().accent)
    # A PNG or JPEG (at most 5 MB) drawn on the cards, fetched through the guarded transport.
    logo_url = HttpUrlField(required=False, allow_blank=True, default="")


@extend_schema_field({
    "type": "object", "maxProperties": MAX_LEXICON, "description": "Words mapped to how they are spoken.",
    "propertyNames": {"minLength": 1, "maxLength": 60, "pattern": NOT_BLANK},
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NOT_BLANK}})
class LexiconField(serializers.Field):
    """Words mapped to how the voice should say them: ``{"Screenreel": "screen reel"}``. Whole words,
    case-insensitive, applied before synthesis and never to the captions."""

    default_error_messages = {"invalid_type": "Must be an object of words to how they are spoken."}

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if not isinstance(data, dict):
            self.fail("invalid_type")
        if len(data) > MAX_LEXICON:
            raise serializers.ValidationError(f"At most {MAX_LEXICON} entries.", code="too_many_keys")
        for word, spoken in data.items():
            if not word.strip() or len(word) > 60:
                raise serializers.ValidationError(f"Entry {word[:60]!r} must be 1 to 60 characters.",
                                                  code="invalid_key")
            if not isinstance(spoken, str):
                raise serializers.ValidationError(f"How {word!r} is spoken must be a string.", code="invalid_type")
            if not spoken.strip() or len(spoken) > 200:
                raise serializers.ValidationError(f"How {word!r} is spoken must be 1 to 200 characters.",
                                                  code="invalid_value")
            validate_storable(word, what=f"Entry {word[:60]!r}")
            validate_storable(spoken, what=f"How {word[:60]!r} is spoken")
        return dict(data)

    def to_representation(self, value: Any) -> dict[str, str]:
        return dict(value)


class VoiceSerializer(StrictSerializer):
    """``voice_id`` must be one of the provider's voices (jobs.media.voice.voice_error): it reaches the
    provider's command line or URL, so anything else is refused here, naming what is allowed."""

    provider = serializers.ChoiceField(choices=VOICE_PROVIDERS, required=False, default="auto")
    voice_id = StrictCharField(max_length=100, required=False, allow_null=True, default=None)
    lexicon = LexiconField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        voice_id = attrs.get("voice_id")
        if voice_id is not None:
            reason = voice_error(attrs.get("provider", "auto"), voice_id)
            if reason:
                raise serializers.ValidationError({"voice_id": serializers.ErrorDetail(reason, code="invalid_voice")})
        return attrs


class CaptionsSerializer(StrictSerializer):
    """VTT and SRT files and a soft subtitle track are always made; ``burn_in`` also draws them into the
    picture, which costs a re-encode of the video."""

    burn_in = StrictBooleanField(required=False, default=False)
    language = serializers.ChoiceField(choices=sorted(LANGUAGES), required=False, default="en")


class PacingSerializer(StrictSerializer):
    """How fast the recording moves; every field optional, bounded to keep videos watchable."""

    typing_ms_per_char = StrictIntegerField(min_value=Pacing.BOUNDS["typing_ms_per_char"][0],
                                                  max_value=Pacing.BOUNDS["typing_ms_per_char"][1], required=False)
    cursor_ms = StrictIntegerField(min_value=Pacing.BOUNDS["cursor_ms"][0],
                                         max_value=Pacing.BOUNDS["cursor_ms"][1], required=False)
    step_pause_ms = StrictIntegerField(min_value=Pacing.BOUNDS["step_pause_ms"][0],
                                             max_value=Pacing.BOUNDS["step_pause_ms"][1], required=False)
    hold_before_ms = StrictIntegerField(min_value=Pacing.BOUNDS["hold_before_ms"][0],
                                              max_value=Pacing.BOUNDS["hold_before_ms"][1], required=False)
    hold_after_ms = StrictIntegerField(min_value=Pacing.BOUNDS["hold_after_ms"][0],
                                             max_value=Pacing.BOUNDS["hold_after_ms"][1], required=False)
    line_pause_ms = StrictIntegerField(min_value=Pacing.BOUNDS["line_pause_ms"][0],
                                       max_value=Pacing.BOUNDS["line_pause_ms"][1], required=False)


def validate_selector(value: str) -> None:
    try:
        cssselect.parse(value)
    except cssselect.SelectorError as exc:
        raise serializers.ValidationError(f"Not a CSS selector: {exc}.", code="invalid_selector") from None


def validate_pattern(value: str) -> None:
    """A built-in name, or a regular expression that RE2 and the page both run in linear time
    (jobs.media.patterns): one they cannot is refused with what to write instead. It is never compiled by
    CPython's backtracking ``re``."""
    if value in BUILTIN_PATTERNS:
        return
    try:
        compile_pattern(value)
    except PatternError as exc:
        raise serializers.ValidationError(str(exc), code="invalid_pattern") from None


class CameraSerializer(StrictSerializer):
    """Auto-zoom: the view eases toward what is clicked or typed into, rendered sharp by the browser."""

    zoom = serializers.ChoiceField(choices=("auto", "off"), required=False, default="auto")
    max_scale = StrictFloatField(min_value=CameraSettings.BOUNDS["max_scale"][0],
                                 max_value=CameraSettings.BOUNDS["max_scale"][1], required=False,
                                 default=CameraSettings.max_scale)
    lead_in_ms = StrictIntegerField(min_value=int(CameraSettings.BOUNDS["lead_in_ms"][0]),
                                    max_value=int(CameraSettings.BOUNDS["lead_in_ms"][1]), required=False,
                                    default=CameraSettings.lead_in_ms)
    lead_out_ms = StrictIntegerField(min_value=int(CameraSettings.BOUNDS["lead_out_ms"][0]),
                                     max_value=int(CameraSettings.BOUNDS["lead_out_ms"][1]), required=False,
                                     default=CameraSettings.lead_out_ms)


OUTPUTS = ("16:9", "9:16", "1:1", "gif")


class GifSerializer(StrictSerializer):
    """The preview: ``seconds`` from where step ``from_step`` starts (clamped to each feature's steps)."""

    seconds = StrictFloatField(min_value=1, max_value=15, required=False, default=Gif().seconds)
    from_step = StrictIntegerField(min_value=1, max_value=50, required=False, default=Gif().from_step)


class RedactSerializer(StrictSerializer):
    """What to mask in the page before anything is captured: elements by CSS selector, and text (and
    field values, attributes and pseudo-element content) matching a pattern: "email", "phone", "card" or a
    regular expression that runs in linear time (RE2 syntax, without lookarounds or backreferences)."""

    selectors = serializers.ListField(child=StrictCharField(max_length=500, validators=[validate_selector]),
                                      required=False, max_length=50, default=list)
    patterns = serializers.ListField(child=StrictCharField(max_length=200, validators=[validate_pattern]),
                                     required=False, max_length=20, default=list)


LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")


def validate_locale(value: str) -> None:
    if not LOCALE.match(value):
        raise serializers.ValidationError("Must be a BCP 47 language tag such as en-US or de-DE.", code="invalid")


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise serializers.ValidationError("Must be an IANA time zone such as Europe/Berlin.", code="invalid")


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class JobSpecSerializer(StrictSerializer):
    target_url = HttpUrlField()
    viewport = ViewportSerializer(required=False, default=lambda: dict(DEFAULT_VIEWPORT))
    features = FeatureSerializer(many=True, min_length=1, max_length=20)  # type: ignore[call-arg]
    branding = BrandingSerializer(required=False,
                                  default=lambda: Branding().model_dump(exclude={"logo_url"}))
    voice = VoiceSerializer(required=False, default=lambda: Voice().model_dump())
    pacing = PacingSerializer(required=False, default=dict)
    captions = CaptionsSerializer(required=False, default=lambda: Captions().model_dump())
    redact = RedactSerializer(required=False, default=lambda: Redact().model_dump())
    camera = CameraSerializer(required=False, default=lambda: Camera().model_dump())
    outputs = serializers.ListField(child=serializers.ChoiceField(choices=OUTPUTS), required=False, min_length=1,
                                    max_length=len(OUTPUTS), default=lambda: ["16:9"])
    gif = GifSerializer(required=False, default=lambda: Gif().model_dump())
    color_scheme = serializers.ChoiceField(choices=("light", "dark"), required=False, default="light")
    locale = StrictCharField(max_length=35, required=False, validators=[validate_locale])
    timezone_id = StrictCharField(max_length=64, required=False, validators=[validate_timezone])
    webhook_url = HttpUrlField(required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)
    sign_in = SignInSerializer(required=False)
    # Credentials whose headers, HTTP basic and saved session go with every request to their origins only.
    credentials = serializers.ListField(child=StrictCharField(max_length=40), required=False, max_length=5)

    def validate_credentials(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Name each credential once.", code="duplicate")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _check_durations(attrs["features"], Pacing(**attrs.get("pacing", {})))
        return attrs

    def validate_outputs(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Name each output once.", code="duplicate")
        return value

    def validate_metadata(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 keys.", code="too_many_keys")
        for key, item in value.items():
            if len(key) > 40:
                raise serializers.ValidationError(f"Key {key[:40]!r}… is longer than 40 characters.",
                                                  code="key_too_long")
            validate_storable(key, what=f"Key {key[:40]!r}")
            if isinstance(item, str):
                validate_storable(item, what=f"Value of {key!r}")
            if not isinstance(item, str | int | float | bool) and item is not None:
                raise serializers.ValidationError(f"Value of {key!r} must be a string, number or boolean.",
                                                  code="invalid_value")
            if isinstance(item, str) and len(item) > 500:
                raise serializers.ValidationError(f"Value of {key!r} is longer than 500 characters.",
                                                  code="value_too_long")
        return value


def _check_durations(features: list[dict[str, Any]], pacing: Pacing) -> None:
    """Refuse features the recorder could never finish inside the recording stage's time limit (400
    ``too_long``), so that no worker spends its limit, three times over, on one that cannot end.

    A line spoken as a step begins counts only the pause after it: how long a voice takes is no function of
    the text (espeak-ng says forty "I"s in 0.8 s and a line of dots in 8 ms), so no bound from its length
    holds, and the stage's time limit ends the rare feature that talks past it."""
    from jobs.pipeline.common import feature_budget_s

    limit = feature_budget_s()
    over = []
    for index, feature in enumerate(features):
        steps = feature["steps"]
        least = least_duration_s(steps, pacing, {n: 0 for n, step in enumerate(steps, 1) if step.get("say")})
        if least > limit:
            over.append({"field": f"features[{index}]", "minimum_s": round(least, 3)})
    if over:
        first = over[0]
        raise DomainError(
            f"{first['field']} takes at least {first['minimum_s']:g} s to record (its waits, typing, scrolls, "
            f"pauses and holds), more than the {limit:g} s a feature may take; split it into shorter features "
            "or shorten its waits and typed text.", code="too_long",
            details={**first, "limit_s": limit, "features": over})


class JobInputSerializer(StrictSerializer):
    """A value a job's sign-in waits for (``job.awaiting_input``): used once, never stored or echoed."""

    name = StrictCharField(max_length=40, validators=[RegexValidator(
        INPUT_NAME, "The input's name, as the step and the job.awaiting_input event say it (e.g. email_code).",
        code="invalid_input_name")])
    value = StrictCharField(max_length=MAX_INPUT_CHARS, min_length=1)


class RerunSerializer(StrictSerializer):
    chunks = serializers.ListField(child=StrictIntegerField(min_value=1, max_value=20),
                                   required=False, min_length=1, max_length=20)


class ApiKeyCreateSerializer(StrictSerializer):
    """A new key: a name to know it by, and what it may do (no scopes: everything the client may)."""

    name = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=sorted(SCOPES)), required=False,
                                   default=list, max_length=len(SCOPES), help_text=(
                                       "demos:refresh: refresh demos and follow, read and download the versions "
                                       "it makes; every other operation answers 403 scope_forbidden."))

    def validate_name(self, value: str) -> str:
        validate_storable(value, what="name")
        return value

    def validate_scopes(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Name each scope once.", code="duplicate")
        return value
