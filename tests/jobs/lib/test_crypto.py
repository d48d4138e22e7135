"""jobs.lib.keys.crypto, the one module that seals secrets at rest: a unit test of that module alone."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from cryptography.fernet import Fernet

from jobs.lib.keys import crypto


@pytest.fixture
def two_keys(settings: Any) -> tuple[str, str]:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SCREENREEL_ENCRYPTION_KEYS = [old]
    return old, new


def test_a_sealed_value_opens_to_itself_and_never_seals_the_same_way_twice(two_keys: tuple[str, str]) -> None:
    first, second = crypto.seal("whsec_abc"), crypto.seal("whsec_abc")
    assert first != second and "whsec_abc" not in first and "abc" not in first
    assert crypto.unseal(first) == crypto.unseal(second) == "whsec_abc"


def test_the_first_key_seals_and_every_key_opens(two_keys: tuple[str, str], settings: Any) -> None:
    old, new = two_keys
    under_old = crypto.seal("s3cret")
    settings.SCREENREEL_ENCRYPTION_KEYS = [new, old]
    under_new = crypto.seal("s3cret")
    assert crypto.unseal(under_old) == crypto.unseal(under_new) == "s3cret"
    assert crypto.needs_rotation(under_old) and not crypto.needs_rotation(under_new)
    rotated = crypto.rotate(under_old)
    assert not crypto.needs_rotation(rotated)
    settings.SCREENREEL_ENCRYPTION_KEYS = [new]
    assert crypto.unseal(rotated) == "s3cret"
    with pytest.raises(crypto.SealError) as raised:
        crypto.unseal(under_old)
    assert under_old not in str(raised.value)


@pytest.mark.parametrize("garbage", ["", "whsec_plain", "gAAAAA-not-a-token", "é"])
def test_what_is_not_a_token_is_a_seal_error(two_keys: tuple[str, str], garbage: str) -> None:
    with pytest.raises(crypto.SealError):
        crypto.unseal(garbage)
    assert crypto.needs_rotation(garbage)


def test_without_keys_the_key_is_hkdf_of_secret_key_with_the_documented_info(settings: Any) -> None:
    settings.SCREENREEL_ENCRYPTION_KEYS = ["derived"]
    settings.SECRET_KEY = "a fixed secret key for this test"
    # RFC 5869 by hand: no salt (zeros), one block of output.
    prk = hmac.new(b"\0" * 32, settings.SECRET_KEY.encode(), hashlib.sha256).digest()
    okm = hmac.new(prk, b"screenreel/secrets-at-rest/fernet/v1" + b"\x01", hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(okm)
    assert crypto.derived_key(settings.SECRET_KEY) == expected
    assert Fernet(expected).decrypt(crypto.seal("x").encode()) == b"x"
    settings.SECRET_KEY = "another"
    with pytest.raises(crypto.SealError):
        crypto.unseal(Fernet(expected).encrypt(b"x").decode())  # a new SECRET_KEY derives another key
