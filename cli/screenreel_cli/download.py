"""Downloading a bundle through its signed link (docs/api.md "Bundles, signed links and downloads"): no API
key (the link is the credential, so it is never printed either), streamed to disk, its SHA-256 checked."""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from screenreel_cli.api import USER_AGENT, error_from

CHUNK_BYTES = 1 << 20


class DownloadError(Exception):
    """The file could not be had whole, or it was not the file the API described."""


def download(url: str, dest: Path, *, sha256: str | None, timeout: float = 60.0, attempts: int = 3,
             sleep: Callable[[float], None] = time.sleep) -> str:
    """Writes the link's file to ``dest`` (whole or not at all) and returns its SHA-256; raises DownloadError."""
    if not url.startswith(("http://", "https://")):
        raise DownloadError("The bundle's link is not an http(s) URL.")
    partial = dest.with_name(dest.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            digest = _fetch(url, partial, timeout)
        except _Transient as exc:
            partial.unlink(missing_ok=True)
            if attempt == attempts:
                raise DownloadError(f"The bundle could not be downloaded: {exc}") from None
            sleep(2.0 * attempt)
            continue
        if sha256 and digest != sha256.lower():
            partial.unlink(missing_ok=True)
            raise DownloadError(f"The downloaded bundle's SHA-256 is {digest}, not {sha256} as the API says.")
        partial.replace(dest)
        return digest
    raise AssertionError("unreachable")


class _Transient(Exception):
    pass


def _fetch(url: str, into: Path, timeout: float) -> str:
    # Redirects are followed: on S3-compatible storage the link answers 302 to a short-lived storage URL.
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})  # noqa: S310 (download checks it)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, into.open("wb") as out:  # noqa: S310
            while block := response.read(CHUNK_BYTES):
                digest.update(block)
                out.write(block)
    except urllib.error.HTTPError as exc:
        error = error_from(exc.code, exc.read(), exc.reason)
        if error.transient:
            raise _Transient(str(error)) from None
        raise DownloadError(f"The bundle's link answered {error}.") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _Transient(str(getattr(exc, "reason", exc))) from None
    return digest.hexdigest()
