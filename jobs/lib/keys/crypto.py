"""Secrets at rest: sealed with rotatable keys (``cryptography``'s MultiFernet), opened only where used.

What is sealed is stored as a Fernet token (AES-128-CBC with HMAC-SHA256, a version byte and a
timestamp; url-safe base64): a database row, a backup or a dump holds no secret in clear. The columns
that hold tokens are ``SealedField``s, so ``manage.py encryption_rotate`` finds every one of them.

Keys come from ``SCREENREEL_ENCRYPTION_KEYS`` (comma-separated Fernet keys): the first seals, every one
opens. The word ``derived`` in the list stands for a key derived from ``SECRET_KEY`` with HKDF-SHA256
(no salt, info ``DERIVED_KEY_INFO``); it is the whole list when nothing is set, so a fresh checkout
works with no configuration. Rotating (docs/operating.md): put a new key first, deploy everywhere, run
``manage.py encryption_rotate``, then drop the old key.

Why explicit calls and not a field that decrypts itself on load: with such a field every model
instance, ``values()``, ``dumpdata``, the admin's forms and a debug page's locals carry the clear value.
Here a row read from the database holds only the token; the clear value exists when code asks for it
(the models' ``secret`` properties unseal on each read), in the call that signs with it or shows it once.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

DERIVED = "derived"
# Fixed forever: changing it changes the derived key, and every value sealed with it would be lost.
DERIVED_KEY_INFO = b"screenreel/secrets-at-rest/fernet/v1"


class SealError(Exception):
    """A sealed value that no configured key opens. Never carries the value, sealed or not."""


class SealedField(models.TextField):
    """A column holding a Fernet token from ``seal`` (or "" for none). Nothing is converted on load or
    save: callers seal and unseal explicitly (see the module's docstring). A token differs every time
    the same secret is sealed, so a secret is never looked up by value."""


def derived_key(secret_key: str) -> bytes:
    """The Fernet key HKDF-SHA256 derives from ``secret_key`` with ``DERIVED_KEY_INFO``."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVED_KEY_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


@functools.lru_cache(maxsize=4)
def _fernets(keys: tuple[str, ...], secret_key: str) -> tuple[Fernet, MultiFernet]:
    listed = [Fernet(derived_key(secret_key) if key == DERIVED else key.encode()) for key in keys or (DERIVED,)]
    return listed[0], MultiFernet(listed)


def _keys() -> MultiFernet:
    return _current()[1]


def _current() -> tuple[Fernet, MultiFernet]:
    # Keyed by the settings themselves, so a test (or a reload) that changes them is obeyed at once.
    return _fernets(tuple(settings.SCREENREEL_ENCRYPTION_KEYS), settings.SECRET_KEY)


def seal(plaintext: str) -> str:
    """The token for ``plaintext``, sealed with the first key."""
    return _keys().encrypt(plaintext.encode()).decode("ascii")


def unseal(token: str) -> str:
    """The clear text of a token from ``seal``; raises SealError when no configured key opens it."""
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SealError("a sealed value could not be opened with any key in SCREENREEL_ENCRYPTION_KEYS") from None


def needs_rotation(token: str) -> bool:
    """Whether ``token`` was sealed with a key other than the first (so ``rotate`` would change it)."""
    first, _ = _current()
    try:
        first.decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeError):
        return True
    return False


def rotate(token: str) -> str:
    """``token`` sealed again with the first key (its original timestamp kept); raises SealError."""
    try:
        return _keys().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise SealError("a sealed value could not be opened with any key in SCREENREEL_ENCRYPTION_KEYS") from None
