"""The deployment's egress rule (docs/events.md, "Delivery"), shared by webhook delivery and the recording browser."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from jobs.lib.net.egress import EgressBlocked, EgressPolicy, InvalidURL, ResolutionError, check_url


@cache
def egress_policy() -> EgressPolicy:
    return EgressPolicy.from_setting(settings.SCREENREEL_EGRESS_ALLOW)


def browser_url_guard(url: str) -> str | None:
    """Why the recording browser may not load ``url``, or None when it may.

    A name that does not resolve is let through: the browser then fails with its own clear error.
    """
    try:
        check_url(url, egress_policy())
    except (EgressBlocked, InvalidURL) as exc:
        return str(exc)
    except ResolutionError:
        return None
    return None
