"""System checks with ids for settings that would hurt at run time (docs/architecture.md)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Warning, register
from django.http.request import validate_host


@register("staticfiles")
def static_collected(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W001: without collected static files the admin renders as bare HTML under the servers."""
    if settings.DEBUG or (Path(settings.STATIC_ROOT) / "admin" / "css" / "base.css").is_file():
        return []
    return [Warning("The admin's static files are not collected: it will render unstyled.",
                    hint="Run `manage.py collectstatic --noinput` (make serve and make demo do).",
                    id="screenreel.W001")]


@register()
def grip_key_set(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W002: publishing to Pushpin without its key means no request is ever trusted as Pushpin's,
    so every stream is still held by the web processes."""
    if not settings.SCREENREEL_GRIP_PUBLISH_URL or settings.SCREENREEL_GRIP_KEY:
        return []
    return [Warning("SCREENREEL_GRIP_PUBLISH_URL is set but SCREENREEL_GRIP_KEY is not: streams will not be "
                    "handed to Pushpin.", hint="Set SCREENREEL_GRIP_KEY to Pushpin's [proxy] sig_key.",
                    id="screenreel.W002")]


@register()
def secret_key_shared(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W003: machines sharing a database must share SECRET_KEY, or each signs links, stream tokens
    and GRIP links with a key of its own that the others reject."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if not settings.SCREENREEL_SECRET_KEY_EMBEDDED or engine.endswith("sqlite3"):
        return []
    return [Warning("SECRET_KEY is not set while the database is shared (not the embedded SQLite): every "
                    "machine signs links with a key of its own, which the others reject.",
                    hint="Set SECRET_KEY to one secret value on every web and worker machine.", id="screenreel.W003")]


@register()
def visibility_timeout_covers_stages(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W004: Redis hands an unacknowledged message out again after the visibility timeout; a stage
    that may run longer would be redelivered to a second worker while the first still runs it."""
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    if timeout > settings.SCREENREEL_STAGE_TIME_LIMIT_S:
        return []
    return [Warning(f"CELERY_VISIBILITY_TIMEOUT ({timeout} s) is not above SCREENREEL_STAGE_TIME_LIMIT_S "
                    f"({settings.SCREENREEL_STAGE_TIME_LIMIT_S} s): long stages are handed to a second worker.",
                    hint="Raise CELERY_VISIBILITY_TIMEOUT above the stage time limit.", id="screenreel.W004")]


@register()
def egress_allow_in_production(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W005: the allow-list opens private networks to clients' URLs (recorded pages, webhooks).
    Not for the embedded one-machine set-up (SQLite, as ``make demo`` runs it against its local sample app)."""
    embedded = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    if settings.DEBUG or embedded or not settings.SCREENREEL_EGRESS_ALLOW:
        return []
    return [Warning(f"SCREENREEL_EGRESS_ALLOW ({', '.join(settings.SCREENREEL_EGRESS_ALLOW)}) lets clients' "
                    "pages and webhooks reach private networks with DEBUG off.",
                    hint="Leave it empty in production unless every client may reach those networks.",
                    id="screenreel.W005")]


@register()
def public_url_host_allowed(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W006: signed links point at SCREENREEL_PUBLIC_URL; a host Django refuses makes every link a 400."""
    host = urlsplit(settings.SCREENREEL_PUBLIC_URL).hostname or ""
    if validate_host(host, settings.ALLOWED_HOSTS):
        return []
    return [Warning(f"The host of SCREENREEL_PUBLIC_URL ({host!r}) is not in ALLOWED_HOSTS: every signed link "
                    "and stream URL handed out would be refused.",
                    hint=f"Add {host!r} to ALLOWED_HOSTS, or correct SCREENREEL_PUBLIC_URL.", id="screenreel.W006")]


@register()
def encryption_keys_explicit(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W007: secrets at rest sealed with the key derived from SECRET_KEY are lost when SECRET_KEY
    changes, and SECRET_KEY alone then opens them. Not for the embedded one-machine set-up (SQLite), where
    the key and the database sit in the same var/ directory anyway."""
    embedded = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    if settings.DEBUG or embedded or settings.SCREENREEL_ENCRYPTION_KEYS[0] != "derived":
        return []
    return [Warning("Secrets at rest are sealed with the key derived from SECRET_KEY (SCREENREEL_ENCRYPTION_KEYS "
                    "is not set): changing SECRET_KEY would make every webhook secret unreadable.",
                    hint="Set SCREENREEL_ENCRYPTION_KEYS to '<new Fernet key>,derived', deploy, run `manage.py "
                         "encryption_rotate`, then drop ',derived' (docs/operating.md).", id="screenreel.W007")]


@register()
def browser_user_exists(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W008: Chromium refuses its sandbox as root, so a root worker runs it as an unprivileged user
    (jobs/media/chromium-sandboxed); without that user no recording and no card can be made."""
    from jobs.media import sandbox

    if os.geteuid() != 0:
        return []
    user = sandbox.BROWSER_USER
    try:
        pwd.getpwnam(user)
    except KeyError:
        return [Warning(f"This process runs as root and the user {user!r} does not exist: Chromium cannot start "
                        "with its sandbox, so every recording and card will fail.",
                        hint=f"Run `make sysdeps`, or `useradd --system {user}`; or run the workers as an "
                             "unprivileged user.", id="screenreel.W008")]
    return []


@register()
def headless_shell_present(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """screenreel.W009: a capture on the video's clock runs in the headless shell; without it every feature is
    recorded by the screencast instead (slower, frames lost under load), and its notes say so."""
    if settings.SCREENREEL_CAPTURE != "virtual_time" or os.access(settings.SCREENREEL_HEADLESS_SHELL, os.X_OK):
        return []
    return [Warning(f"SCREENREEL_CAPTURE is virtual_time and {settings.SCREENREEL_HEADLESS_SHELL} is not an "
                    "executable: every feature will be recorded by the screencast instead.",
                    hint="Run `make sysdeps` (apt-get install chromium-headless-shell), set SCREENREEL_HEADLESS_SHELL, "
                         "or set SCREENREEL_CAPTURE=screencast.", id="screenreel.W009")]
