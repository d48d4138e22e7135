"""What every app's admin shares: an intermediate page for actions that need a confirmation or a value
(a reason, a number of days, a time), and the audit of each operator action in Django's admin log.

An action returns ``confirm_page(...)`` on its first call; the page posts back to the same action with
``confirm=yes`` and the operator's values, and the action then calls its service.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString

from jobs.links import link_sign
from jobs.models import ObjectKind, StoredObject

# The admin's previews are for the operator looking now; an hour is plenty and leaks little.
PREVIEW_TTL_S = 3600


@dataclass(frozen=True)
class Field:
    """One input on a confirmation page."""

    name: str
    label: str
    type: str = "text"  # an <input> type: text, number, datetime-local
    required: bool = True
    value: str = ""
    help: str = ""


def confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirm") == "yes"


def confirm_page(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any], *,
                 action: str, title: str, intro: str, items: Iterable[str] = (),
                 fields: Sequence[Field] = (), button: str = "Confirm", danger: bool = False,
                 errors: Sequence[str] = (), hidden: Sequence[tuple[str, str]] = ()) -> TemplateResponse:
    """The page that asks before ``action`` runs on ``queryset``, listing what it will touch."""
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title, "intro": intro, "items": list(items), "fields": fields, "button": button,
        "danger": danger, "errors": list(errors), "action": action, "opts": opts, "hidden": list(hidden),
        "queryset": queryset, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "select_across": request.POST.get("select_across", "0"),
    }
    return TemplateResponse(request, "admin/screenreel/confirm_action.html", context)


def audit(request: HttpRequest, obj: Model, message: str) -> None:
    """Record an operator's action on ``obj`` in the admin log (shown in the object's history)."""
    user_id = getattr(request.user, "pk", None)
    if user_id is None:
        return
    LogEntry.objects.log_actions(user_id=user_id, queryset=[obj], action_flag=CHANGE, change_message=message,
                                 single_object=True)


def media_preview(objects: Iterable[StoredObject]) -> SafeString:
    """Videos that play and stills that load, for the job page and the bundle page: signed links relative to
    the admin's own host, so they work wherever the operator opened the admin."""
    items = [(o.kind, link_sign(client_id=o.client_id, key=o.key, filename=o.name, ttl_s=PREVIEW_TTL_S,
                                base_url="").url, o.name)
             for o in objects if o.purged_at is None and o.kind in (ObjectKind.VIDEO, ObjectKind.STILL)]
    return SafeString(render_to_string("admin/jobs/job/preview.html", {"items": items}))


def operator_name(request: HttpRequest) -> str:
    user = request.user
    return str(getattr(user, "get_username", lambda: "")() or "operator")
