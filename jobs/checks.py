"""System checks with ids for settings that would hurt at run time (CONVENTIONS.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


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
