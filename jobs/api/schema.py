"""What drf-spectacular needs to describe the API that it cannot infer: the API key scheme, the shapes of
the responses, every error a route can answer, and the event stream."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers

from jobs.lib.rest import MAX_URL, NO_NUL, NOT_BLANK
from jobs.models import ChunkStatus, EventType, JobStatus, ObjectKind, RetentionClass


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <api key>``, as jobs.api.auth.ApiKeyAuthentication reads it."""

    target_class = "jobs.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A client API key: `Authorization: Bearer sr_...`."}


# --- Response shapes ----------------------------------------------------------------------------------
# What the views return is built by the models' to_dict(); these serializers only describe it to
# OpenAPI (nothing is serialized through them). tests/test_openapi.py checks real responses against the
# generated document, so the two cannot drift apart unnoticed.

class AssetSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=ObjectKind.choices)
    retention_class = serializers.ChoiceField(choices=RetentionClass.choices)
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    duration_ms = serializers.IntegerField(required=False, allow_null=True)
    after_step = serializers.IntegerField(required=False)
    width = serializers.IntegerField(required=False)
    height = serializers.IntegerField(required=False)
    rendition = serializers.CharField(required=False, help_text='A cut or preview: "9:16", "1:1" or "gif".')
    # A narration line's audio (kind "line"): which line, at which step, its text, length and loudness.
    line = serializers.IntegerField(required=False)
    step = serializers.IntegerField(required=False, allow_null=True)
    text = serializers.CharField(required=False)
    samples = serializers.IntegerField(required=False)
    sample_rate = serializers.IntegerField(required=False)
    lufs = serializers.FloatField(required=False, allow_null=True)
    true_peak_dbtp = serializers.FloatField(required=False, allow_null=True)
    gain_db = serializers.FloatField(required=False)
    limited = serializers.BooleanField(required=False)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    purged_at = serializers.DateTimeField(allow_null=True)


class TimedStepSerializer(serializers.Serializer):
    step = serializers.IntegerField(min_value=1)
    start_ms = serializers.IntegerField()
    end_ms = serializers.IntegerField()


class TimedLineSerializer(serializers.Serializer):
    line = serializers.IntegerField(min_value=1)
    step = serializers.IntegerField(allow_null=True, help_text="The step it is spoken at; null for a script sentence.")
    start_ms = serializers.IntegerField()
    end_ms = serializers.IntegerField()
    text = serializers.CharField()


class TimedChapterSerializer(serializers.Serializer):
    start_ms = serializers.IntegerField()
    title = serializers.CharField()


class TimelineSerializer(serializers.Serializer):
    """Where the chunk's steps, lines and chapters are in its final video, in milliseconds from its start."""

    duration_ms = serializers.IntegerField()
    recording_starts_ms = serializers.IntegerField(help_text="Where the recording starts (after the intro).")
    outro_starts_ms = serializers.IntegerField()
    steps = TimedStepSerializer(many=True)
    lines = TimedLineSerializer(many=True)
    chapters = TimedChapterSerializer(many=True)
    captions = serializers.IntegerField(help_text="How many caption cues.")


class CandidateSerializer(serializers.Serializer):
    tag = serializers.CharField()
    role = serializers.CharField()
    name = serializers.CharField(help_text="Its visible text or accessible name (what the redaction hides masked).")
    selector = serializers.CharField(help_text="A selector that names it: #id, [data-testid=...] or text=...")


class FailureSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    action = serializers.CharField()
    selector = serializers.CharField(allow_null=True)
    url = serializers.CharField()
    cause = serializers.CharField()
    still = serializers.CharField(allow_null=True)
    candidates = CandidateSerializer(many=True)


class CarriedFromSerializer(serializers.Serializer):
    job_id = serializers.CharField()
    chunk = serializers.IntegerField(min_value=1)


class ChunkSerializer(serializers.Serializer):
    index = serializers.IntegerField(min_value=1)
    title = serializers.CharField()
    status = serializers.ChoiceField(choices=ChunkStatus.choices)
    progress = serializers.FloatField(min_value=0, max_value=1)
    attempts = serializers.IntegerField(min_value=0)
    error = serializers.CharField(allow_null=True)
    recording = serializers.DictField(allow_null=True)
    speech = serializers.DictField(allow_null=True)
    cost = serializers.DictField(allow_null=True)
    timeline = TimelineSerializer(allow_null=True)
    failure = FailureSerializer(allow_null=True, help_text=(
        "When a step failed: the step, the page's URL, the selector, the elements the page offered (visible text "
        "and accessible names, with a selector for each) and the still of the page (a bundled asset's name; none "
        "for a step that typed a secret)."))
    carried_from = CarriedFromSerializer(allow_null=True, help_text=(
        "Set when the chunk was not recorded: its outputs were copied from this chunk of an earlier job of the "
        "client's (a demo refresh with mode \"changed\", docs/demos.md), and it cost nothing."))
    assets = AssetSerializer(many=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ProgressSerializer(serializers.Serializer):
    chunks_total = serializers.IntegerField()
    chunks_done = serializers.IntegerField()
    chunks_succeeded = serializers.IntegerField()
    chunks_failed = serializers.IntegerField()


class CostSerializer(serializers.Serializer):
    currency = serializers.CharField()
    total_usd = serializers.FloatField()


class JobBundleSerializer(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True)
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    assets = serializers.IntegerField(allow_null=True)
    failed_chunks = serializers.ListField(child=serializers.IntegerField())
    url = serializers.URLField(allow_null=True, help_text="A signed link, valid until expires_at.")
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    object_expires_at = serializers.DateTimeField(allow_null=True)
    purged_at = serializers.DateTimeField(allow_null=True)


class JobViewportSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    device_scale_factor = serializers.IntegerField(required=False, help_text="1 or 2 (jobs created before it: 1).")


class JobSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text='Always "job".')
    status = serializers.ChoiceField(choices=JobStatus.choices)
    target_url = serializers.CharField(help_text="As submitted (it may hold non-ASCII characters).")
    viewport = JobViewportSerializer()
    metadata = serializers.DictField()
    run = serializers.IntegerField(min_value=1)
    progress = ProgressSerializer()
    cost = CostSerializer()
    chunks = ChunkSerializer(many=True)
    bundle = JobBundleSerializer(allow_null=True)
    error = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class EventSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=EventType.choices)
    version = serializers.CharField()
    created = serializers.IntegerField(help_text="Milliseconds since the epoch.")
    job_id = serializers.CharField(allow_null=True)
    sequence = serializers.IntegerField(help_text="Per job, from 1, gap-free; 0 for a client's own events.")
    data = serializers.DictField(help_text="Per type: docs/events.md.")  # type: ignore[assignment]


class ApiKeySerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The key's prefix: sr_<id>_... (never the key itself).")
    object = serializers.CharField(help_text='Always "api_key".')
    name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField(), help_text="Empty: everything the client may.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class NewApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The key, shown this once: store it now (only a hash is kept).")


class StreamTokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()


# --- Completing the document ----------------------------------------------------------------------------

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_WHEN = {
    400: "Bad input: validation_error (details.fields), too_long (a feature cannot be recorded in the stage's "
         "time limit: details.minimum_s, limit_s), malformed_json, invalid_body, invalid_filter...",
    401: "unauthenticated: no API key, or an unknown or revoked one.",
    403: "scope_forbidden: the API key's scopes do not allow this operation, or this job (docs/api.md, API keys "
         "and scopes).",
    404: "The object does not exist for your client (job_not_found, endpoint_not_found, credential_not_found, "
         "unknown_chunk...).",
    406: "not_acceptable: the Accept header allows no JSON, the only type the API answers in.",
    409: "The object's state refuses the request (job_not_cancelable, job_not_ended, nothing_to_rerun, "
         "nothing_to_bundle, outputs_purged, idempotency_key_reused, endpoint_disabled, endpoint_exists, "
         "too_many_endpoints, too_many_credentials, bundle_not_ready, "
         "bundle_not_found, not_awaiting_input, demo_name_taken, too_many_demos, version_not_publishable, "
         "nothing_published, too_many_api_keys, api_key_in_use, too_many_shares).",
    410: "bundle_purged: retention purged the job's bundle (details.purged_at).",
    413: "payload_too_large: the body is over 1 MiB (any request under /v1/, even one that takes no body).",
    415: "unsupported_media_type: the body is not application/json.",
    429: "rate_limited (with Retry-After and RateLimit-* headers), too_many_jobs on POST /v1/jobs, or "
         "too_many_streams on the event stream.",
    503: "database_busy (with Retry-After): the database's write lock stayed busy past its wait; nothing was "
         "changed, and the same request may be sent again. On POST /v1/jobs/{job_id}/input also unavailable: the "
         "value could not be handed over just now (nothing was used up).",
}
_CONFLICTS = {"jobs_create", "jobs_cancel", "jobs_input", "jobs_rerun", "jobs_rebuild_bundle", "jobs_bundle_links",
              "webhook_endpoints_test", "webhook_endpoints_create", "webhook_endpoints_update", "credentials_create",
              "demos_create", "demos_update", "demos_refresh", "demos_versions_publish", "demos_latest",
              "api_keys_create", "api_keys_revoke", "hooks_call", "demos_shares_create"}
_QUERIES = {"jobs_list", "events_list", "webhook_endpoints_list", "webhook_endpoints_deliveries", "credentials_list",
            "demos_list", "demos_versions_list", "api_keys_list", "demos_shares_list"}
# The operations that write, so may find the write lock busy past its wait (jobs.lib.errors.database_busy).
_WRITES = {"jobs_create", "jobs_cancel", "jobs_input", "jobs_rerun", "jobs_rebuild_bundle", "webhook_endpoints_create",
           "webhook_endpoints_update", "webhook_endpoints_delete", "webhook_endpoints_rotate", "webhook_endpoints_test",
           "credentials_create", "credentials_update", "credentials_delete", "credentials_rotate",
           "demos_create", "demos_update", "demos_delete", "demos_refresh", "demos_versions_publish",
           "api_keys_create", "api_keys_revoke", "demos_deploy_hook_set", "demos_deploy_hook_delete", "hooks_call",
           "demos_shares_create", "demos_shares_revoke"}
# The operations that make a job from a spec: a step may name a credential the client does not have (404).
_SPEC_RUNS = {"jobs_create", "demos_refresh", "hooks_call"}


def _error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _WHEN[status], "content": {"application/json": {"schema": _ERROR_REF}}}
    if status == 429:
        response["headers"] = {name: {"schema": {"type": "integer"}, "description": text} for name, text in (
            ("Retry-After", "Seconds until one request is allowed."),
            ("RateLimit-Limit", "The burst: requests allowed at once from a full budget."),
            ("RateLimit-Remaining", "Requests left now."),
            ("RateLimit-Reset", "Seconds until the budget is full again."))}
    elif status == 503:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                               "description": "Seconds to wait before sending it again."}}
    return response


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    op_id = operation.get("operationId", "")
    # Every API view negotiates JSON (406) and sits behind the body limit (413), bodiless ones included.
    if op_id == "links_download":  # no key, not rate limited: its own 403, 410 and 416 are listed on it
        return [406, 413]
    if op_id == "hooks_call":  # its token is the key; its body is read as sent (any JSON, or GitHub's form)
        return [400, 401, 404, 406, 409, 413, 429, 503]
    if op_id == "jobs_events_stream":  # a plain Django view: it negotiates nothing
        return [400, 401, 403, 404, 413, 429]
    statuses = [401, 403, 406, 413, 429]
    if "{" in path:
        statuses.append(404)
    if "requestBody" in operation:
        statuses += [400, 413, 415]
    if op_id in _QUERIES:
        statuses += [400, 404]  # a bad filter; a cursor that is not one of ours (not_found)
    if op_id in _CONFLICTS:
        statuses.append(409)
    if op_id in ("jobs_bundle_links", "demos_latest"):
        statuses.append(410)
    if op_id in _SPEC_RUNS:
        statuses.append(404)  # a step names a credential the client does not have (credential_not_found)
    if op_id in _WRITES:
        statuses.append(503)
    return sorted(set(statuses))


EVENT_ID = r"^evt_[0-9A-HJKMNP-TV-Z]{26}$"

_STREAM: dict[str, Any] = {
    "get": {
        "operationId": "jobs_events_stream",
        "summary": "The job's events, live, as Server-Sent Events",
        "description": "Each event is `id: <event id>`, `event: <type>`, `data: <the envelope>`. Send "
                       "`Last-Event-ID` (or `?last_event_id=`) to resume exactly after an event; a browser's "
                       "EventSource, which cannot send headers, authenticates with `?token=` from "
                       "POST /v1/jobs/{job_id}/events/token. A comment line arrives every 15 s.",
        "tags": ["v1"],
        "parameters": [
            {"in": "path", "name": "job_id", "required": True, "schema": {"type": "string"}},
            {"in": "query", "name": "token", "schema": {"type": "string"}},
            # Empty: from the first event, as without it.
            {"in": "query", "name": "last_event_id", "schema": {"type": "string", "pattern": f"^$|{EVENT_ID}"}},
            {"in": "header", "name": "Last-Event-ID", "schema": {"type": "string", "pattern": f"^$|{EVENT_ID}"}},
        ],
        "security": [{"ApiKey": []}, {}],
        "responses": {"200": {"description": "An endless text/event-stream; each event's data is the envelope.",
                              "content": {"text/event-stream": {"schema": {
                                  "type": "object", "properties": {
                                      "id": {"type": "string"}, "event": {"type": "string"},
                                      "data": {"type": "string", "contentMediaType": "application/json",
                                               "contentSchema": {"$ref": "#/components/schemas/Event"}}}}}}}},
    }
}


# A URL the validator accepts as written: http(s), a host name (what the egress rule makes of it is only
# known at run time), an optional port and path. Stricter than the validator, never looser.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# A host name is at most 253 characters, as jobs.lib.net.egress checks: a first label of up to 63 and up to six
# more of up to 30 (63 + 6 x 31 = 249). A lookahead on the length would say it exactly, but generators
# (hypothesis, so schemathesis) then draw and discard: its coverage phase went from 20 s to 4 minutes.
HTTP_URL = (r"^https?://[A-Za-z][A-Za-z0-9-]{0,62}(\.[A-Za-z0-9-]{1,30}){1,6}"
            r"(:" + _PORT + r")?([/?#][^\s\\\x00-\x1f\x7f\x85]*)?$")
# A goto's path, resolved against target_url (jobs.api.serializers.StepSerializer says the same): \ufeff is
# named because Python's \s, which generators read the pattern with, does not take it in.
RELATIVE_PATH = r"^/[^\s\\\x00-\x1f\x7f\x85\ufeff]*$"
# A literal, then at most one character class of letters, digits, _ and the ranges a-z, A-Z and 0-9 (a
# hyphen only last): every such class compiles, where [z-a] would not.
REDACT_PATTERN = r"^[A-Za-z0-9_]{1,40}(\[([A-Za-z0-9_]|a-z|A-Z|0-9){1,20}-?\][+*]?)?$"
_FILTERS = sorted({*EventType.values, "*", "job.*", "chunk.*", "bundle.*", "chunk.recording.*", "chunk.synthesis.*",
                   "demo.*", "demo.version.*"})


def _step_variants(components: dict[str, Any]) -> None:
    """StepRequest as a union discriminated by ``action``: each action's own required and allowed fields.

    A feature is narrated either by its ``script`` or by its steps' ``say`` lines: FeatureRequest is one of
    ScriptFeature (a script; no step says anything) and LinesFeature (no script; at least one step says
    something), so a generated feature is never one the validator refuses.
    """
    from jobs.api.serializers import STEP_COMMON, STEP_FIELDS

    fields = components["StepRequest"]["properties"]
    fields["url"] = {"type": "string", "maxLength": 2048, "pattern": RELATIVE_PATH + "|" + HTTP_URL}
    mapping, silent, signing = {}, {}, {}
    for action, (required, optional) in STEP_FIELDS.items():
        name = "Step" + "".join(part.title() for part in action.split("_"))
        allowed = sorted(required | optional | STEP_COMMON)
        components[name] = {"type": "object", "additionalProperties": False,
                            "required": ["action", *sorted(required)],
                            "properties": {"action": {"type": "string", "const": action},
                                           **{f: fields[f] for f in allowed}}}
        # An input (a value a person posts) is typed in a sign-in only.
        components[name + "SignIn"] = {**components[name], "properties": {
            k: v for k, v in components[name]["properties"].items() if k not in STEP_COMMON}}
        components[name]["properties"].pop("input", None)
        if action == "type":  # exactly one of text (typed as written), secret (a credential's value) and input
            components[name]["oneOf"] = [{"required": ["text"]}, {"required": ["secret"]}]
            components[name + "SignIn"]["oneOf"] = [{"required": [f]} for f in ("text", "secret", "input")]
        components[name + "Silent"] = {**components[name], "properties": {
            k: v for k, v in components[name]["properties"].items() if k != "say"}}
        mapping[action] = f"#/components/schemas/{name}"
        silent[action] = f"#/components/schemas/{name}Silent"
        signing[action] = f"#/components/schemas/{name}SignIn"
    components["StepRequest"] = {"oneOf": [{"$ref": ref} for ref in mapping.values()],
                                 "discriminator": {"propertyName": "action", "mapping": mapping}}
    components.pop("SignInStepRequest", None)
    sign_in = components["SignInRequest"]["properties"]
    sign_in["url"] = fields["url"]
    sign_in["steps"] = {"type": "array", "minItems": 1, "maxItems": 20, "items": {
        "oneOf": [{"$ref": ref} for ref in signing.values()],
        "discriminator": {"propertyName": "action", "mapping": signing}}}
    feature = components.pop("FeatureRequest")
    steps = feature["properties"]["steps"]
    components["ScriptFeature"] = {**feature, "required": ["title", "script", "steps"], "properties": {
        **feature["properties"], "steps": {**steps, "items": {
            "oneOf": [{"$ref": ref} for ref in silent.values()],
            "discriminator": {"propertyName": "action", "mapping": silent}}}}}
    components["LinesFeature"] = {**feature, "required": ["title", "steps"], "properties": {
        "title": feature["properties"]["title"],
        "steps": {**steps, "contains": {"type": "object", "required": ["say"]}}}}
    components["FeatureRequest"] = {"oneOf": [_ref("ScriptFeature"), _ref("LinesFeature")]}


def _constrain_requests(components: dict[str, Any]) -> None:
    """What the validators check beyond each field's own bounds, written into the request schemas."""
    for name, component in components.items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False  # StrictSerializer: unknown fields are errors
            for field_name, field in component.get("properties", {}).items():
                if (name, field_name) == ("StepRequest", "text"):
                    continue  # typed as given, spaces included (trim_whitespace=False)
                if _is_string(field) and field.get("minLength") == 1 and "pattern" not in field:
                    field["pattern"] = NOT_BLANK  # blank after trimming is an error too
    if "ValuesRequest" in components:  # a credential's values: at least one (credentials.serializers)
        components["ValuesRequest"]["minProperties"] = 1
    spec = components["JobSpecRequest"]["properties"]
    url = {"type": "string", "maxLength": MAX_URL, "pattern": HTTP_URL}
    spec["target_url"] = url
    spec["webhook_url"] = {**url, "pattern": f"^$|{HTTP_URL}", "default": ""}
    spec["features"].update(minItems=1, maxItems=20)
    spec["metadata"] = {"type": "object", "maxProperties": 50, "propertyNames": {"maxLength": 40},
                        "additionalProperties": {"anyOf": [{"type": "string", "maxLength": 500}, {"type": "number"},
                                                           {"type": "boolean"}, {"type": "null"}]}}
    components["FeatureRequest"]["properties"]["steps"].update(minItems=1, maxItems=50)

    for side in ("width", "height"):
        components["ViewportRequest"]["properties"][side]["multipleOf"] = 2
    branding = components["BrandingRequest"]["properties"]
    for colour in ("background", "accent"):
        branding[colour] = {**branding[colour], "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"}
    branding["logo_url"] = {**url, "pattern": f"^$|{HTTP_URL}", "default": ""}
    # What the validators accept that a pattern cannot say whole, written stricter, never looser: simple
    # selectors (tags, classes, ids), and patterns made of a literal and one character class.
    from jobs.api.serializers import LOCALE, _timezones
    from jobs.media.redact import BUILTIN_PATTERNS

    redact = components["RedactRequest"]["properties"]
    redact["selectors"]["items"] = {"type": "string", "maxLength": 500,
                                    "pattern": r"^[#.]?[A-Za-z][A-Za-z0-9_-]*([#.][A-Za-z][A-Za-z0-9_-]*)*$"}
    redact["patterns"]["items"] = {"anyOf": [{"type": "string", "enum": sorted(BUILTIN_PATTERNS)},
                                             {"type": "string", "maxLength": 200,
                                              "pattern": REDACT_PATTERN}]}
    spec["locale"] = {**spec["locale"], "pattern": LOCALE.pattern}
    spec["outputs"] = {**spec["outputs"], "uniqueItems": True}  # each output once (duplicate)
    # A credential's id: not blank once trimmed (CharField), each once (duplicate).
    spec["credentials"] = {**spec["credentials"], "uniqueItems": True,
                           "items": {**spec["credentials"]["items"], "pattern": NOT_BLANK}}
    # Area/Location names and UTC: Etc/GMT+1 and Etc/GMT-1 (and GMT0, GMT-0) differ only by a sign, which
    # generated clients' enum member names drop (openapi-python-client refused the document).
    spec["timezone_id"] = {"type": "string", "enum": ["UTC", *sorted(
        z for z in _timezones() if "/" in z and not z.startswith("Etc/") and z[0].isupper())]}
    if "ShareCreateRequest" in components:  # demos.serializers: origins, written stricter than the validator
        origins = components["ShareCreateRequest"]["properties"]["allowed_origins"]
        origins["items"] = {"type": "string", "maxLength": 300,
                            "pattern": r"^https://[a-z][a-z0-9]{0,30}(\.[a-z][a-z0-9]{0,30}){1,3}$"}
        origins["uniqueItems"] = True
    if "ScheduleRequest" in components:  # a demo's schedule (demos.schedules): at most hourly, a date that comes
        schedule = components["ScheduleRequest"]["properties"]
        schedule["cron"] = {**schedule["cron"], "pattern": r"^[0-5]?[0-9] (\*|[01]?[0-9]|2[0-3]) \* \* (\*|[0-6])$"}
        schedule["timezone"] = {**schedule["timezone"], "enum": spec["timezone_id"]["enum"]}
    for endpoint in ("EndpointCreateRequest", "PatchedEndpointUpdateRequest"):
        props = components[endpoint]["properties"]
        props["url"] = url
        props["event_types"]["items"] = {"type": "string", "enum": _FILTERS}
    for name, component in components.items():
        if name.endswith("Request"):
            _refuse_nul(component)
    _step_variants(components)
    _voice_variants(components)


def _voice_variants(components: dict[str, Any]) -> None:
    """A voice_id is one of its provider's voices (jobs.media.voice.voice_error): one variant per provider,
    each naming its voices; "auto" (or no provider) takes any of them. Exact case: stricter than espeak-ng."""
    from jobs.media.voice import ELEVENLABS, ELEVENLABS_VOICE_ID, ESPEAK_VOICES, piper_voices

    voice = components["VoiceRequest"]
    components["EspeakVoice"] = {"type": "string", "enum": list(ESPEAK_VOICES)}
    components["ElevenLabsVoiceId"] = {"type": "string", "pattern": ELEVENLABS_VOICE_ID.pattern}
    ids: dict[str, list[dict[str, Any]]] = {"espeak-ng": [_ref("EspeakVoice")],
           "piper": [{"type": "string", "enum": list(piper_voices())}] if piper_voices() else [],
           ELEVENLABS: [_ref("ElevenLabsVoiceId")]}

    def variant(name: str, provider: dict[str, Any], allowed: list[dict[str, Any]], required: list[str]) -> Any:
        # Named components: generated clients (openapi-python-client) drop inline object variants.
        components[name] = {"type": "object", "additionalProperties": False, "required": required, "properties": {
            "provider": provider, "voice_id": {"anyOf": [{"type": "null"}, *allowed]},
            "lexicon": voice["properties"]["lexicon"]}}
        return _ref(name)

    titles = {"espeak-ng": "VoiceEspeak", "piper": "VoicePiper", ELEVENLABS: "VoiceElevenLabs"}
    components["VoiceRequest"] = {
        "description": "The narrating voice. voice_id is null (the provider's default) or one of the provider's "
                       "voices: espeak-ng's languages, the installed Piper voice, or an ElevenLabs voice id.",
        "oneOf": [variant("VoiceAuto", {"type": "string", "enum": ["auto"], "default": "auto"},
                          [item for allowed in ids.values() for item in allowed], []),
                  *(variant(titles[name], {"type": "string", "enum": [name]}, allowed, ["provider"])
                    for name, allowed in ids.items())]}


def _is_string(field: dict[str, Any]) -> bool:
    kinds = field.get("type")
    return kinds == "string" or (isinstance(kinds, list) and "string" in kinds)


def _refuse_nul(schema: dict[str, Any], *, key: bool = False) -> None:
    """Every string a request carries refuses NUL, as the validators do (DRF's CharField, and the lexicon's
    and metadata's own checks), object keys included: say so wherever no pattern or enum says it already.
    The patterns given above all exclude it (URLs, paths, selectors, colours, locales, redaction patterns)."""

    if (key or _is_string(schema)) and not {"pattern", "enum", "const"} & set(schema):
        schema["pattern"] = NO_NUL
    for name in ("items", "additionalProperties"):
        if isinstance(schema.get(name), dict):
            _refuse_nul(schema[name])
    if isinstance(schema.get("propertyNames"), dict):
        _refuse_nul(schema["propertyNames"], key=True)
    for sub in schema.get("properties", {}).values():
        _refuse_nul(sub)
    for name in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(name, []):
            _refuse_nul(sub)


def _parameters_bounded(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "limit":
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
        elif parameter["name"] == "Idempotency-Key":
            # Printable ASCII, no space at either end: HTTP strips those from a header's value.
            parameter["schema"] = {"type": "string", "minLength": 1, "maxLength": 255,
                                   "pattern": r"^[!-~]([ -~]*[!-~])?$"}


# What a created job, endpoint or credential leads to: generated clients and stateful testers follow these.
_LINKS = {
    ("jobs_create", "201"): ("job_id", ["jobs_get", "jobs_cancel", "jobs_rerun", "jobs_bundle_links",
                                        "jobs_events_token"]),
    ("webhook_endpoints_create", "201"): ("endpoint_id", [
        "webhook_endpoints_get", "webhook_endpoints_update", "webhook_endpoints_delete", "webhook_endpoints_rotate",
        "webhook_endpoints_test", "webhook_endpoints_deliveries"]),
    ("credentials_create", "201"): ("credential_id", [
        "credentials_get", "credentials_update", "credentials_delete", "credentials_rotate"]),
    ("demos_create", "201"): ("demo_id", ["demos_get", "demos_update", "demos_delete", "demos_refresh",
                                          "demos_versions_list", "demos_latest"]),
}


def _linked(operation: dict[str, Any]) -> None:
    for (op_id, status), (parameter, targets) in _LINKS.items():
        if operation.get("operationId") == op_id and status in operation.get("responses", {}):
            operation["responses"][status]["links"] = {
                target: {"operationId": target, "parameters": {parameter: "$response.body#/id"}} for target in targets}


def openapi_complete(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every operation lists the errors it can answer, in the one envelope; the event stream is listed;
    request schemas say what the validators check."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    _constrain_requests(components)
    _events_typed(components)
    components["Error"] = components.pop("Error", None) or {
        "type": "object", "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}}}
    result["paths"]["/v1/jobs/{job_id}/events"] = _STREAM
    for path, operations in result["paths"].items():
        for method, operation in operations.items():
            _parameters_bounded(operation)
            _linked(operation)
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation):
                responses.setdefault(str(status), _error(status))
    return result


# --- Each event type's data, and the manifest ---------------------------------------------------------

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": sorted(required), "properties": {**required, **(optional or {})}}


_CHUNK_DATA = _object({"chunk": _ref("Chunk")})
_BUNDLE_SUMMARY = _object({
    "version": {"type": "integer"}, "assets": {"type": "integer"},
    "failed_chunks": {"type": "array", "items": {"type": "integer"}}, "size_bytes": {"type": "integer"},
    "sha256": {"type": "string"}, "url": {"type": "string", "format": "uri"},
    "expires_at": {"type": "string", "format": "date-time"}})
_DRIFT_SUMMARY = {"type": ["object", "null"], "description": (
    "How the version differs from the published one (docs/demos.md, The drift report): the verdict, and per "
    "feature the steps over the threshold. Null: nothing was published to compare with."), "properties": {
        "baseline_version": {"type": "integer"}, "threshold": {"type": "number"}, "over_threshold": {"type": "boolean"},
        "features": {"type": "array", "items": {"type": "object"}}}}
_DEMO_DATA = _object({"demo": _object({"id": {"type": "string"}, "name": {"type": "string"}}),
                      "version": _ref("DemoVersion")})
_DATA_BY_TYPE: dict[str, dict[str, Any]] = {
    **{t: {"allOf": [_ref("Job")], "properties": {"rerun_chunks": {"type": "array", "items": {"type": "integer"}},
                                                  "rebuild_bundle": {"type": "boolean"}}}
       for t in EventType.values if t.startswith("job.") and t != EventType.JOB_PROGRESS},
    EventType.JOB_PROGRESS: _object({"progress": {"type": "number", "minimum": 0, "maximum": 1},
                                     "chunks": {"type": "integer"}}),
    **{t: _CHUNK_DATA for t in EventType.values if t.startswith("chunk.") and t != EventType.CHUNK_PROGRESS},
    EventType.CHUNK_PROGRESS: _object({"chunk": {"type": "integer", "description": "The chunk's index."},
                                       "stage": {"type": "string", "enum": ["recording", "synthesizing", "muxing"]},
                                       "progress": {"type": "number", "minimum": 0, "maximum": 1}}),
    EventType.BUNDLE_READY: _object({"bundle": _BUNDLE_SUMMARY}),
    EventType.BUNDLE_FAILED: _object({"reason": {"type": "string"},
                                      "storage_status_code": {"type": ["integer", "null"]}},
                                     {"error_id": {"type": ["string", "null"], "description": (
                                         "The id the failure's detail is logged under, to quote to support; "
                                         "null when the reason says all there is (docs/api.md#error-ids).")}}),
    EventType.WEBHOOK_TEST: _object({"endpoint_id": {"type": "string"}, "message": {"type": "string"}}),
    # A demo's (demos app): the demo and the version (its DemoVersion component, docs/demos.md).
    EventType.DEMO_VERSION_CREATED: _DEMO_DATA,
    EventType.DEMO_VERSION_READY: {"allOf": [_DEMO_DATA], "properties": {"drift": _DRIFT_SUMMARY},
                                   "required": ["drift"]},
    EventType.DEMO_DRIFT_DETECTED: {"allOf": [_DEMO_DATA], "properties": {"drift": _DRIFT_SUMMARY},
                                    "required": ["drift"]},
    EventType.DEMO_PUBLISHED: {"allOf": [_DEMO_DATA], "properties": {
        "previous_version": {"type": ["integer", "null"], "description": "The version it replaced."},
        "actor": {"type": "string", "description": '"auto", "api", or "operator:<username>".'}},
        "required": ["previous_version", "actor"]},
}

# Plain strings: the YAML renderer of /api/schema/ cannot write enum members.
EVENT_DATA = {str(event_type): data for event_type, data in _DATA_BY_TYPE.items()}

MANIFEST = {
    "type": "object",
    "description": "manifest.json in every bundle (docs/api.md#the-manifest).",
    "required": ["manifest_version", "job_id", "bundle_version", "status", "created_at", "target_url", "metadata",
                 "chunks", "assets", "failed_chunks", "cost"],
    "properties": {
        "manifest_version": {"type": "string", "const": "1.1"},
        "job_id": {"type": "string"},
        "bundle_version": {"type": "integer", "minimum": 1},
        "status": {"type": "string", "enum": ["succeeded", "partial_success"]},
        "created_at": {"type": "string", "format": "date-time"},
        "target_url": {"type": "string"},
        "metadata": {"type": "object"},
        "chunks": {"type": "array", "items": _object({
            "chunk": {"type": "integer"}, "title": {"type": "string"}, "status": _ref("ChunkStatusEnum"),
            "error": {"type": ["string", "null"]}, "recording": {"type": ["object", "null"]},
            "speech": {"type": ["object", "null"]}, "cost": {"type": ["object", "null"]},
            "timeline": {"anyOf": [_ref("Timeline"), {"type": "null"}]},
            "carried_from": {"anyOf": [_ref("CarriedFrom"), {"type": "null"}]}})},
        "assets": {"type": "array", "items": _object(
            {"name": {"type": "string"}, "chunk": {"type": "integer"}, "kind": _ref("KindEnum"),
             "status": {"type": "string", "const": "succeeded"}, "bytes": {"type": "integer"},
             "sha256": {"type": "string"}, "duration_ms": {"type": ["integer", "null"]}},
            {"after_step": {"type": ["integer", "null"]}, "width": {"type": ["integer", "null"]},
             "height": {"type": ["integer", "null"]}, "cost": {"type": ["object", "null"]},
             "rendition": {"type": "string", "enum": ["9:16", "1:1", "gif"]}})},
        "failed_chunks": {"type": "array", "items": _object({
            "chunk": {"type": "integer"}, "title": {"type": "string"}, "status": _ref("ChunkStatusEnum"),
            "reason": {"type": "string"}}, {"failure": {"anyOf": [_ref("Failure"), {"type": "null"}]}})},
        "cost": _object({"currency": {"type": "string"}, "total_usd": {"type": "number"}}),
        "demo": {"type": "object", "description": "A demo version's bundle: the demo's id and name, the version's "
                                                  "number and ref."},
        "drift": {"type": ["object", "null"], "description": "A demo version's bundle: its drift report "
                                                             "(docs/demos.md, The drift report)."},
    },
}


def _events_typed(components: dict[str, Any]) -> None:
    """Event: one variant per type, discriminated by ``type``, each with its own ``data``."""
    envelope = components["Event"]
    mapping = {}
    for event_type, data in EVENT_DATA.items():
        name = "Event_" + event_type.replace(".", "_")
        components[name] = {**envelope, "properties": {**envelope["properties"], "type": {"type": "string",
                            "const": event_type}, "data": data}}
        mapping[event_type] = f"#/components/schemas/{name}"
    components["Event"] = {"oneOf": [{"$ref": ref} for ref in mapping.values()],
                           "discriminator": {"propertyName": "type", "mapping": mapping}}
    components["Manifest"] = MANIFEST
