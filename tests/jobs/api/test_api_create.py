"""POST /v1/jobs: a valid spec makes a job; every malformed one a 400 naming the field, and no rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs.models import Chunk, Event, Job
from tests.conftest import Tenant


def _rows() -> tuple[int, int, int]:
    return Job.objects.count(), Chunk.objects.count(), Event.objects.count()


def test_it_creates_a_job_with_one_chunk_per_feature(tenant: Tenant, spec: dict[str, Any]) -> None:
    spec["features"].append({**spec["features"][0], "title": "Second"})
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("job_")
    assert body["status"] == "queued"
    assert [c["index"] for c in body["chunks"]] == [1, 2]
    assert [c["status"] for c in body["chunks"]] == ["pending", "pending"]
    assert body["progress"] == {"chunks_total": 2, "chunks_done": 0, "chunks_succeeded": 0, "chunks_failed": 0}
    job = Job.objects.get(pk=body["id"])
    assert job.client == tenant.client
    assert list(job.events.values_list("type", "sequence")) == [("job.created", 1)]


def test_it_fills_in_defaults_for_optional_sections(tenant: Tenant, spec: dict[str, Any]) -> None:
    for key in ("viewport", "branding", "voice", "webhook_url", "metadata"):
        del spec[key]
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.spec["viewport"] == {"width": 1280, "height": 720}
    assert job.spec["branding"]["background"] == "#101828"
    assert job.spec["voice"]["provider"] == "auto"


def test_a_feature_may_be_narrated_by_per_step_lines_with_chapters(tenant: Tenant, spec: dict[str, Any]) -> None:
    feature = spec["features"][0]
    del feature["script"]
    feature["steps"][0].update(say="Open your projects.", chapter="Projects")
    feature["steps"][2].update(say="Type a name.")
    spec["voice"]["lexicon"] = {"Screenreel": "screen reel"}
    spec["captions"] = {"burn_in": True, "language": "de"}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.chunks.get().paced is True
    assert [line.text for line in job.parsed_spec.features[0].lines] == ["Open your projects.", "Type a name."]
    assert job.parsed_spec.captions.mp4_language == "deu"
    assert job.spec["voice"]["lexicon"] == {"Screenreel": "screen reel"}


def test_page_settings_reach_the_spec(tenant: Tenant, spec: dict[str, Any]) -> None:
    spec["viewport"]["device_scale_factor"] = 2
    spec.update(color_scheme="dark", locale="de-DE", timezone_id="Europe/Berlin")
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    parsed = Job.objects.get(pk=response.json()["id"]).parsed_spec
    assert (parsed.viewport.video_width, parsed.viewport.video_height) == (2560, 1440)
    assert parsed.page_settings() == {"viewport": {"width": 1280, "height": 720}, "device_scale_factor": 2,
                                      "color_scheme": "dark", "locale": "de-DE", "timezone_id": "Europe/Berlin"}
    assert response.json()["viewport"] == {"width": 1280, "height": 720, "device_scale_factor": 2}


def test_camera_and_redaction_reach_the_spec(tenant: Tenant, spec: dict[str, Any]) -> None:
    spec["camera"] = {"zoom": "auto", "max_scale": 2, "lead_in_ms": 300}
    spec["redact"] = {"selectors": [".api-key", "input[type=email]"], "patterns": ["email", "sk_live_[A-Za-z0-9]+"]}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    parsed = Job.objects.get(pk=response.json()["id"]).parsed_spec
    camera = parsed.camera.settings()
    assert (camera.zoom, camera.max_scale, camera.lead_in_ms, camera.lead_out_ms) == (True, 2.0, 300, 800)
    redaction = parsed.redact.redaction()
    assert redaction.selectors == (".api-key", "input[type=email]")
    assert redaction.matches("write to jane@acme.example") and redaction.matches("sk_live_abc123")
    assert not redaction.matches("nothing to hide")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return apply


_DELETE = object()


def _lines(spec: dict[str, Any], *, say: str) -> None:
    """The first feature narrated by a line on its second step instead of its script."""
    del spec["features"][0]["script"]
    spec["features"][0]["steps"][1]["say"] = say
_STEP = "features.0.steps"

MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("target url missing", _set("target_url", _DELETE), "target_url", "required"),
    ("target url ftp", _set("target_url", "ftp://example.com/"), "target_url", "invalid_scheme"),
    ("target url too long", _set("target_url", "https://example.com/" + "a" * 2100), "target_url", "max_length"),
    ("target url without host", _set("target_url", "https:///path"), "target_url", "invalid_url"),
    ("viewport too small", _set("viewport.width", 100), "viewport.width", "min_value"),
    ("viewport too large", _set("viewport.height", 4000), "viewport.height", "max_value"),
    ("viewport odd", _set("viewport.width", 1281), "viewport.width", "not_even"),
    ("viewport not a number", _set("viewport.width", "wide"), "viewport.width", "invalid_type"),
    # No coercion: each of these used to be converted silently.
    ("a number for a string", _set("features.0.script", 12345), "features[0].script", "invalid_type"),
    ("a string for a number", _set("viewport.width", "1280"), "viewport.width", "invalid_type"),
    ("a boolean for an integer", _set("viewport.height", True), "viewport.height", "invalid_type"),
    ("a fraction for an integer", _set("viewport.width", 1280.5), "viewport.width", "invalid_type"),
    ("no features", _set("features", []), "features", "min_length"),
    ("too many features", lambda s: s.update(features=s["features"] * 21), "features", "max_length"),
    ("feature without title", _set("features.0.title", _DELETE), "features[0].title", "required"),
    ("script too long", _set("features.0.script", "x" * 5001), "features[0].script", "max_length"),
    ("no steps", _set("features.0.steps", []), "features[0].steps", "min_length"),
    ("too many steps", lambda s: s["features"][0].update(steps=[{"action": "wait", "ms": 1}] * 51),
     "features[0].steps", "max_length"),
    ("unknown action", _set(f"{_STEP}.0", {"action": "teleport"}), "features[0].steps[0].action",
     "invalid_choice"),
    ("click without selector", _set(f"{_STEP}.1", {"action": "click"}), "features[0].steps[1].selector",
     "required"),
    ("type without text or secret", _set(f"{_STEP}.2", {"action": "type", "selector": "#name"}),
     "features[0].steps[2].text", "text_or_secret"),
    ("negative wait", _set(f"{_STEP}.7", {"action": "wait", "ms": -5}), "features[0].steps[7].ms", "min_value"),
    ("field foreign to the action", _set(f"{_STEP}.3", {"action": "press", "key": "Enter", "selector": "#x"}),
     "features[0].steps[3].selector", "not_allowed"),
    ("goto javascript url", _set(f"{_STEP}.0", {"action": "goto", "url": "javascript:alert(1)"}),
     "features[0].steps[0].url", "invalid_scheme"),
    ("bad colour", _set("branding.background", "red"), "branding.background", "invalid"),
    ("webhook url not http", _set("webhook_url", "mailto:ops@example.com"), "webhook_url", "invalid_scheme"),
    ("unknown top-level field", lambda s: s.update(callback="https://x.example"), "callback", "unknown_field"),
    ("unknown step field", _set(f"{_STEP}.7", {"action": "wait", "ms": 5, "extra": 1}),
     "features[0].steps[7].extra", "unknown_field"),
    ("unknown voice provider", _set("voice.provider", "hal9000"), "voice.provider", "invalid_choice"),
    ("metadata value nested", _set("metadata.release", {"a": 1}), "metadata", "invalid_value"),
    ("typing too fast to read", lambda s: s.update(pacing={"typing_ms_per_char": 5}), "pacing.typing_ms_per_char",
     "min_value"),
    ("unknown pacing field", lambda s: s.update(pacing={"warp": 9}), "pacing.warp", "unknown_field"),
    # Narration: per-step lines, chapters, the lexicon, captions.
    ("a script and per-step lines", _set(f"{_STEP}.1.say", "Click it."), "features[0].script", "script_and_lines"),
    ("no narration at all", _set("features.0.script", _DELETE), "features[0].script", "required"),
    ("a line that is not a string", _set(f"{_STEP}.1.say", ["Click"]), "features[0].steps[1].say", "invalid_type"),
    ("a line too long", lambda s: _lines(s, say="x" * 1001), "features[0].steps[1].say", "max_length"),
    ("a blank line", lambda s: _lines(s, say="  "), "features[0].steps[1].say", "blank"),
    ("a chapter title too long", _set(f"{_STEP}.0.chapter", "c" * 101), "features[0].steps[0].chapter", "max_length"),
    ("a lexicon that is a list", _set("voice.lexicon", ["Screenreel"]), "voice.lexicon", "invalid_type"),
    ("a lexicon entry that is a number", _set("voice.lexicon", {"Screenreel": 5}), "voice.lexicon", "invalid_type"),
    ("a lexicon entry spoken as nothing", _set("voice.lexicon", {"Screenreel": " "}), "voice.lexicon",
     "invalid_value"),
    ("a huge lexicon", _set("voice.lexicon", {f"w{i}": "x" for i in range(201)}), "voice.lexicon", "too_many_keys"),
    ("burn-in as a string", lambda s: s.update(captions={"burn_in": "yes"}), "captions.burn_in", "invalid_type"),
    ("an unknown caption language", lambda s: s.update(captions={"language": "klingon"}), "captions.language",
     "invalid_choice"),
    ("a line pause too long", lambda s: s.update(pacing={"line_pause_ms": 9000}), "pacing.line_pause_ms",
     "max_value"),
    # Page settings.
    ("a scale factor of 3", _set("viewport.device_scale_factor", 3), "viewport.device_scale_factor", "max_value"),
    ("a scale factor as a string", _set("viewport.device_scale_factor", "2"), "viewport.device_scale_factor",
     "invalid_type"),
    ("an unknown colour scheme", lambda s: s.update(color_scheme="sepia"), "color_scheme", "invalid_choice"),
    ("a locale that is not a tag", lambda s: s.update(locale="English please"), "locale", "invalid"),
    ("an unknown time zone", lambda s: s.update(timezone_id="Mars/Olympus_Mons"), "timezone_id", "invalid"),
    # Camera and redaction.
    ("a zoom that is not auto or off", lambda s: s.update(camera={"zoom": "max"}), "camera.zoom", "invalid_choice"),
    ("a zoom scale too large", lambda s: s.update(camera={"max_scale": 4}), "camera.max_scale", "max_value"),
    ("a zoom scale as a string", lambda s: s.update(camera={"max_scale": "1.5"}), "camera.max_scale",
     "invalid_type"),
    ("a lead-in too long", lambda s: s.update(camera={"lead_in_ms": 9000}), "camera.lead_in_ms", "max_value"),
    ("a selector that is not CSS", lambda s: s.update(redact={"selectors": ["div["]}), "redact.selectors[0]",
     "invalid_selector"),
    ("a selector that injects a rule", lambda s: s.update(redact={"selectors": ["a{color:red}"]}),
     "redact.selectors[0]", "invalid_selector"),
    ("a pattern that is not a regex", lambda s: s.update(redact={"patterns": ["(unclosed"]}), "redact.patterns[0]",
     "invalid_pattern"),
    ("a pattern with a named group", lambda s: s.update(redact={"patterns": ["(?P<key>sk_[a-z]+)"]}),
     "redact.patterns[0]", "invalid_pattern"),
    ("a pattern that matches nothing at all", lambda s: s.update(redact={"patterns": ["x*"]}), "redact.patterns[0]",
     "invalid_pattern"),
    # Patterns run in linear time (RE2 here, V8's linear engine in the page): no lookaround, no backreference.
    ("a pattern with a lookahead", lambda s: s.update(redact={"patterns": ["sk_(?=live)\\w+"]}), "redact.patterns[0]",
     "invalid_pattern"),
    ("a pattern with a lookbehind", lambda s: s.update(redact={"patterns": ["(?<=key: )\\w+"]}),
     "redact.patterns[0]", "invalid_pattern"),
    ("a pattern with a backreference", lambda s: s.update(redact={"patterns": ["(\\w)\\1"]}), "redact.patterns[0]",
     "invalid_pattern"),
    ("a pattern with a named backreference", lambda s: s.update(redact={"patterns": ["email", "(a)\\k<a>"]}),
     "redact.patterns[1]", "invalid_pattern"),
    ("a pattern that can match the empty string between words",
     lambda s: s.update(redact={"patterns": ["\\b(?:sk_\\w+)?"]}), "redact.patterns[0]", "invalid_pattern"),
    ("a repeat too large to write out", lambda s: s.update(redact={"patterns": ["(?:[a-z]{100}){30}"]}),
     "redact.patterns[0]", "invalid_pattern"),
    ("too many selectors", lambda s: s.update(redact={"selectors": [".a"] * 51}), "redact.selectors", "max_length"),
]


@pytest.mark.parametrize(("pattern", "advice"), [
    ("sk_(?=live)\\w+", "Lookarounds ((?=...), (?!...), (?<=...), (?<!...)) are not supported: patterns run in linear "
                        "time (RE2). Match the text itself"),
    ("(\\w+)@\\1", "Backreferences (\\1, \\k<name>) are not supported: patterns run in linear time (RE2). Repeat the "
                   "group's pattern instead."),
    ("(?i)secret", "Inline flags such as (?i) or (?s) are not supported: patterns already ignore case"),
    ("\\p{Lu}+", "Unicode classes (\\p{...}) are not supported: list the characters"),
])
def test_a_pattern_that_cannot_run_in_linear_time_is_refused_saying_what_to_write(
        tenant: Tenant, spec: dict[str, Any], pattern: str, advice: str) -> None:
    spec["redact"] = {"patterns": ["email", pattern]}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["details"]["fields"]
    assert [(f["field"], f["code"]) for f in fields] == [("redact.patterns[1]", "invalid_pattern")]
    assert advice in response.json()["error"]["message"], response.json()
    assert _rows() == (0, 0, 0)


def test_builtin_and_plain_patterns_still_validate(tenant: Tenant, spec: dict[str, Any]) -> None:
    # The built-ins, and the syntax RE2 and the page share: classes, counted repeats, anchors, \b, alternation.
    spec["redact"] = {"patterns": ["email", "phone", "card", "sk_live_[A-Za-z0-9]{24}", "^ID-\\d{3,}$",
                                   "\\bjane(?:\\.doe)?\\b", "(?:IBAN|iban):? ?[A-Z]{2}\\d{2}(?: ?\\d{4}){4}",
                                   "[^\\s@]+@corp\\.example", "(a+)+$"]}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    redaction = Job.objects.get(pk=response.json()["id"]).parsed_spec.redact.redaction()
    assert redaction.matches("Key SK_LIVE_" + "a1" * 12) and redaction.matches("iban DE89 3704 0044 0532 0130 00")
    assert redaction.matches("+1 (415) 555-0132") and not redaction.matches("nothing to hide here")


@pytest.mark.parametrize(("mutate", "field", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_it_rejects_a_malformed_spec_naming_the_field(tenant: Tenant, spec: dict[str, Any],
                                                      mutate: Callable[[dict[str, Any]], None],
                                                      field: str, code: str) -> None:
    mutate(spec)
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {"field": field, "code": code} in [{"field": f["field"], "code": f["code"]}
                                              for f in error["details"]["fields"]], error
    assert field in error["message"] or len(error["details"]["fields"]) > 1
    assert _rows() == (0, 0, 0)


# A voice reaches the provider's command line (espeak-ng -v) or URL: only its provider's own voices pass.
BAD_VOICES = [
    ("espeak-ng", "--help"),  # an option, not a voice
    ("espeak-ng", "../../x"),  # a path
    ("espeak-ng", "en-us -w /tmp/x"),
    ("espeak-ng", "JBFqnCBsd6RMkjVDRZzb"),  # an ElevenLabs id is no espeak-ng voice
    ("piper", "en-us"),
    ("elevenlabs", "../../v1/user"),
    ("elevenlabs", "short"),
    ("auto", "--help"),
]


@pytest.mark.parametrize(("provider", "voice_id"), BAD_VOICES)
def test_a_voice_its_provider_does_not_have_is_refused_naming_the_allowed_ones(
        tenant: Tenant, spec: dict[str, Any], provider: str, voice_id: str) -> None:
    spec["voice"] = {"provider": provider, "voice_id": voice_id}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    [field] = error["details"]["fields"]
    assert (field["field"], field["code"]) == ("voice.voice_id", "invalid_voice")
    allowed = {"espeak-ng": "en-us, en-us-nyc", "piper": "en_US-joe-medium", "elevenlabs": "20 letters and digits",
               "auto": "en-us, en-us-nyc"}[provider]
    assert allowed in field["message"], field["message"]
    assert _rows() == (0, 0, 0)


@pytest.mark.parametrize(("provider", "voice_id"), [
    ("espeak-ng", "de"), ("espeak-ng", "en-GB"), ("piper", "en_US-joe-medium"),
    ("elevenlabs", "JBFqnCBsd6RMkjVDRZzb"), ("auto", "de"), ("auto", "JBFqnCBsd6RMkjVDRZzb"), ("auto", None),
])
def test_a_voice_of_its_provider_is_accepted(tenant: Tenant, spec: dict[str, Any], provider: str,
                                             voice_id: str | None) -> None:
    spec["voice"] = {"provider": provider, "voice_id": voice_id}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    assert Job.objects.get(pk=response.json()["id"]).spec["voice"]["voice_id"] == voice_id


def test_it_rejects_a_body_that_is_not_json(tenant: Tenant) -> None:
    response = tenant.api.post("/v1/jobs", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert _rows() == (0, 0, 0)


def test_it_rejects_a_json_array_body(tenant: Tenant) -> None:
    response = tenant.api.post("/v1/jobs", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_body"


def test_it_rejects_a_body_over_one_mebibyte_with_413(tenant: Tenant, spec: dict[str, Any]) -> None:
    spec["metadata"] = {"pad": "x" * 400}
    spec["features"] = [{**spec["features"][0], "script": "y" * 1_100_000}]
    response = tenant.api.post("/v1/jobs", data=json.dumps(spec), content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _rows() == (0, 0, 0)


def test_it_answers_415_for_form_bodies(tenant: Tenant, spec: dict[str, Any]) -> None:
    response = tenant.api.post("/v1/jobs", {"target_url": "https://x.example"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert _rows() == (0, 0, 0)


def test_it_needs_an_api_key(db: None, spec: dict[str, Any]) -> None:
    response = APIClient().post("/v1/jobs", spec, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_it_refuses_an_unknown_or_malformed_key(db: None, spec: dict[str, Any]) -> None:
    for header in ("Bearer sr_abc_def", "Bearer nonsense", "Basic dXNlcjpwYXNz"):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=header)
        response = api.post("/v1/jobs", spec, format="json")
        assert response.status_code == 401, header
    assert _rows() == (0, 0, 0)


def test_it_refuses_a_revoked_key(tenant: Tenant, spec: dict[str, Any]) -> None:
    from jobs.services.clients import api_key_revoke

    assert api_key_revoke(api_key=tenant.client.api_keys.get())
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_same_idempotency_key_and_body_give_the_same_job(tenant: Tenant, spec: dict[str, Any]) -> None:
    first = tenant.api.post("/v1/jobs", spec, format="json", HTTP_IDEMPOTENCY_KEY="release-2.4")
    again = tenant.api.post("/v1/jobs", spec, format="json", HTTP_IDEMPOTENCY_KEY="release-2.4")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Job.objects.count() == 1


def test_same_idempotency_key_with_another_body_is_a_conflict(tenant: Tenant, spec: dict[str, Any]) -> None:
    first = tenant.api.post("/v1/jobs", spec, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    spec["metadata"] = {"release": "2.5"}
    second = tenant.api.post("/v1/jobs", spec, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_key_reused"
    assert second.json()["error"]["details"] == {"job_id": first.json()["id"]}
    assert Job.objects.count() == 1


def test_idempotency_keys_are_per_client(tenant: Tenant, other_tenant: Tenant, spec: dict[str, Any]) -> None:
    a = tenant.api.post("/v1/jobs", spec, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    b = other_tenant.api.post("/v1/jobs", spec, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize("field", ["target_url", "webhook_url"])
@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/",
                                 "http://[::ffff:192.168.0.1]/", "http://localhost:8080/",
                                 "http://metadata.google.internal/computeMetadata/v1/", "http://instance-data/"])
def test_it_refuses_private_and_metadata_addresses(tenant: Tenant, spec: dict[str, Any], field: str,
                                                   url: str) -> None:
    spec[field] = url
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["details"]["fields"]
    assert {"field": field, "code": "blocked_address"} in [{"field": f["field"], "code": f["code"]} for f in fields]
    assert _rows() == (0, 0, 0)


def test_pacing_is_kept_as_given_and_defaults_to_a_persons_pace(tenant: Tenant, spec: dict[str, Any]) -> None:
    spec["pacing"] = {"typing_ms_per_char": 120, "cursor_ms": 800}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    assert Job.objects.get(pk=response.json()["id"]).spec["pacing"] == {"typing_ms_per_char": 120, "cursor_ms": 800}


def test_short_hex_colours_are_stored_in_full(tenant: Tenant, spec: dict[str, Any]) -> None:
    spec["branding"] = {"background": "#fff", "accent": "#7f56d9"}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    branding = Job.objects.get(pk=response.json()["id"]).spec["branding"]
    assert (branding["background"], branding["accent"]) == ("#FFFFFF", "#7F56D9")


def test_an_integral_number_is_an_integer_as_json_schema_says(tenant: Tenant, spec: dict[str, Any]) -> None:
    spec["viewport"] = {"width": 1280.0, "height": 720}
    response = tenant.api.post("/v1/jobs", spec, format="json")
    assert response.status_code == 201, response.json()
    assert Job.objects.get(pk=response.json()["id"]).spec["viewport"] == {"width": 1280, "height": 720,
                                                                          "device_scale_factor": 1}
    assert isinstance(Job.objects.get(pk=response.json()["id"]).spec["viewport"]["width"], int)
