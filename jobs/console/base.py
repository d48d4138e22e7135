"""What every app's admin shares: the base class that refuses actions an operator may not run, an
intermediate page for actions that need a confirmation or a value (a reason, a number of days, a time),
the audit of each operator action in Django's admin log, and the masking of typed text.

An action returns ``confirm_page(...)`` on its first call; the page posts back to the same action with
``confirm=yes`` and the operator's values, and the action then calls its service.

Every action declares the permission it needs (``@admin.action(permissions=[...])``): Django then
offers it only to operators who hold it, and ``ConsoleAdmin`` answers 403 to anyone else who posts it
(docs/operating.md, "Who may do what").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs.models import ObjectKind, StoredObject
from jobs.storage.links import link_sign

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


class ConsoleAdmin(admin.ModelAdmin):
    """The base of every page of the console.

    Django offers an action only to those who hold its declared permissions, but a direct POST of one it
    did not offer is quietly ignored ("No action selected"), or not even looked at when the user may run
    no action at all. Here it is refused with a 403 before anything is read, so a view-only operator's
    forged or replayed confirmation visibly changes nothing.
    """

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            allowed = self.get_actions(request)
            if any(name and name not in allowed for name in request.POST.getlist("action")):
                raise PermissionDenied
        return super().changelist_view(request, extra_context)


class ReadOnlyConsoleAdmin(ConsoleAdmin):
    """A page that shows rows and never adds, edits or deletes one by hand (audits, runs, credentials): what
    changes them is a service, through an action that declares its permission."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def action_allowed(modeladmin: admin.ModelAdmin, request: HttpRequest, action: str) -> bool:
    """Whether ``request.user`` holds every permission ``action`` declares on ``modeladmin``."""
    return action in modeladmin.get_actions(request)


def confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirm") == "yes"


def confirm_page(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any], *,
                 action: str, title: str, intro: str, items: Iterable[str] = (),
                 fields: Sequence[Field] = (), button: str = "Confirm", danger: bool = False,
                 errors: Sequence[str] = (), hidden: Sequence[tuple[str, str]] = ()) -> TemplateResponse:
    """The page that asks before ``action`` runs on ``queryset``, listing what it will touch."""
    if not action_allowed(modeladmin, request, action):  # it lists what only those allowed may touch
        raise PermissionDenied
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


def _masked(text: str) -> str:
    return f"•••••• ({len(text)} characters)"


def mask_typed(value: Any) -> Any:
    """``value`` (any JSON) with the text of every ``type`` step replaced by its length.

    Typed text is what a form asks for: often a password, a token or someone's e-mail address. It is
    masked always, not only when the job's redaction patterns match: an operator never needs the text
    to follow a job (the step, its selector and the length say enough), the patterns are the client's
    choice for the video and are often absent, and matching them here would run a client's regex in the
    web process.
    """
    if isinstance(value, list):
        return [mask_typed(v) for v in value]
    if not isinstance(value, dict):
        return value
    masked = {k: mask_typed(v) for k, v in value.items()}
    if value.get("action") == "type" and isinstance(value.get("text"), str):
        masked["text"] = _masked(value["text"])
    return masked


def pretty_json(value: Any) -> SafeString:
    """JSON as the console shows it: indented, escaped, typed text masked (``mask_typed``)."""
    text = json.dumps(mask_typed(value), indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return format_html('<pre class="sr-json">{}</pre>', text)


def with_extensions(page: type[ConsoleAdmin], extensions: tuple[type, ...]) -> type[ConsoleAdmin]:
    """``page`` with the actions and methods other apps add to it (jobs.hooks.admin_extensions): one class,
    registered once, whatever the order of INSTALLED_APPS. An extension names its actions in
    ``extra_actions``; they follow the page's own."""
    if not extensions:
        return page
    actions = [*(page.actions or ()), *(name for ext in extensions for name in getattr(ext, "extra_actions", ()))]
    return type(page.__name__, (*extensions, page), {"actions": actions, "__module__": page.__module__})
