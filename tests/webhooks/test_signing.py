from __future__ import annotations

import base64

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobs.lib.keys.signing import (
    InvalidSignature,
    generate_secret,
    sign,
    signature_headers,
    verify,
)

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_it_matches_the_standard_webhooks_known_answer_vector() -> None:
    assert sign(secret=VECTOR_SECRET, msg_id=VECTOR_ID, timestamp=VECTOR_TS, body=VECTOR_BODY) == VECTOR_SIG


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    a, b = generate_secret(), generate_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a.removeprefix("whsec_"))) == 32


def test_headers_carry_both_families_with_the_same_values() -> None:
    headers = signature_headers(
        secrets=[VECTOR_SECRET], msg_id=VECTOR_ID, timestamp=VECTOR_TS, body=VECTOR_BODY
    )
    assert headers["webhook-id"] == headers["X-AISR-Id"] == VECTOR_ID
    assert headers["webhook-timestamp"] == headers["X-AISR-Timestamp"] == str(VECTOR_TS)
    assert headers["webhook-signature"] == headers["X-AISR-Signature"] == VECTOR_SIG


def test_the_independent_standardwebhooks_library_verifies_our_signature() -> None:
    import time

    secret = generate_secret()
    body = b'{"type": "job.completed", "data": {"id": "job_1"}}'
    now = int(time.time())
    headers = signature_headers(secrets=[secret], msg_id="msg_1", timestamp=now, body=body)
    assert Webhook(secret).verify(body, headers) == {"type": "job.completed", "data": {"id": "job_1"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_a_rotation_sends_two_signatures_and_each_secret_verifies() -> None:
    import time

    old, new = generate_secret(), generate_secret()
    body = b'{"n": 1}'
    now = int(time.time())
    headers = signature_headers(secrets=[old, new], msg_id="msg_2", timestamp=now, body=body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        verify(secret=secret, headers=headers, body=body, now=now)
        Webhook(secret).verify(body, headers)
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify(secret=generate_secret(), headers=headers, body=body, now=now)


def _vector_headers(**overrides: str) -> dict[str, str]:
    headers = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS), "webhook-signature": VECTOR_SIG}
    headers.update(overrides)
    return headers


@pytest.mark.parametrize("skew", [-299, 0, 299, 300])
def test_it_accepts_skew_within_tolerance(skew: int) -> None:
    verify(secret=VECTOR_SECRET, headers=_vector_headers(), body=VECTOR_BODY, now=VECTOR_TS + skew)


@pytest.mark.parametrize(("skew", "reason"), [(301, "too old"), (-301, "future")])
def test_it_rejects_skew_over_tolerance_in_both_directions(skew: int, reason: str) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify(secret=VECTOR_SECRET, headers=_vector_headers(), body=VECTOR_BODY, now=VECTOR_TS + skew)


def test_it_rejects_a_tampered_body() -> None:
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify(secret=VECTOR_SECRET, headers=_vector_headers(), body=b'{"test": 2432232315}', now=VECTOR_TS)


def test_it_rejects_a_tampered_id_or_timestamp() -> None:
    with pytest.raises(InvalidSignature):
        verify(
            secret=VECTOR_SECRET,
            headers=_vector_headers(**{"webhook-id": "msg_x"}),
            body=VECTOR_BODY,
            now=VECTOR_TS,
        )
    with pytest.raises(InvalidSignature):
        headers = _vector_headers(**{"webhook-timestamp": str(VECTOR_TS + 1)})
        verify(secret=VECTOR_SECRET, headers=headers, body=VECTOR_BODY, now=VECTOR_TS)


def test_it_accepts_our_header_family_case_insensitively() -> None:
    headers = {"x-aisr-id": VECTOR_ID, "X-AISR-TIMESTAMP": str(VECTOR_TS), "X-Aisr-Signature": VECTOR_SIG}
    verify(secret=VECTOR_SECRET, headers=headers, body=VECTOR_BODY, now=VECTOR_TS)


def test_it_accepts_if_any_listed_signature_matches_and_skips_unknown_versions() -> None:
    headers = _vector_headers(**{"webhook-signature": f"v2,abc v1,bm90LWl0 {VECTOR_SIG}"})
    verify(secret=VECTOR_SECRET, headers=headers, body=VECTOR_BODY, now=VECTOR_TS)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_it_rejects_missing_headers(missing: str) -> None:
    headers = _vector_headers()
    del headers[missing]
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret=VECTOR_SECRET, headers=headers, body=VECTOR_BODY, now=VECTOR_TS)


def test_it_rejects_a_non_integer_timestamp() -> None:
    with pytest.raises(InvalidSignature, match="integer"):
        verify(
            secret=VECTOR_SECRET,
            headers=_vector_headers(**{"webhook-timestamp": "1614265330.5"}),
            body=VECTOR_BODY,
            now=VECTOR_TS,
        )


def test_signing_refuses_a_bare_string_or_no_secrets() -> None:
    with pytest.raises(TypeError):
        signature_headers(secrets=VECTOR_SECRET, msg_id="m", timestamp=1, body=b"")
    with pytest.raises(ValueError):
        signature_headers(secrets=[], msg_id="m", timestamp=1, body=b"")


def test_a_malformed_secret_fails_loudly() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign(secret="whsec_not*base64!", msg_id="m", timestamp=1, body=b"")
