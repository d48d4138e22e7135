"""The console's two ready-made groups (docs/operating.md, "Who may do what"): ``operators`` hold every
permission of the project's models, "purge now" included; ``viewers`` hold only their view permissions.

They are built after every ``migrate`` by a ``post_migrate`` handler, not by a data migration:
- permissions themselves are made by ``post_migrate`` (django.contrib.auth), after all migrations, so
  a data migration would have to run ``create_permissions`` itself and depend on every app's latest
  migration; this handler makes them first (idempotent) for each app it covers, whatever the order of
  INSTALLED_APPS;
- a model added later joins both groups at the next ``migrate``, with no migration to remember;
- ``flush`` (transactional tests) sends ``post_migrate`` again, so the groups come back with it.

Both groups are kept exactly as defined here: ``migrate`` resets their permissions. For another mix, make a
group of your own.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS

OPERATORS = "operators"
VIEWERS = "viewers"


def console_groups_sync(*, apps: Apps = global_apps, using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    """Create or reset ``operators`` and ``viewers``; returns how many permissions each holds."""
    labels = list(settings.SCREENREEL_CONSOLE_APPS)
    for label in labels:
        # Django's own handler may not have reached this app yet (it runs app by app, in INSTALLED_APPS
        # order): make its permissions now. Existing rows are left as they are.
        create_permissions(global_apps.get_app_config(label), verbosity=0, using=using, apps=apps)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    every = permission_model.objects.using(using).filter(content_type__app_label__in=labels)
    wanted = {OPERATORS: list(every), VIEWERS: list(every.filter(codename__startswith="view_"))}
    for name, permissions in wanted.items():
        group, _ = group_model.objects.using(using).get_or_create(name=name)
        group.permissions.set(permissions)
    return {name: len(permissions) for name, permissions in wanted.items()}


def on_post_migrate(sender: AppConfig, *, apps: Apps = global_apps, using: str = DEFAULT_DB_ALIAS,
                    **kwargs: Any) -> None:
    """The ``post_migrate`` receiver (connected for the jobs app alone, so it runs once per migrate)."""
    try:
        apps.get_model("auth", "Group")
        apps.get_model("contenttypes", "ContentType")
    except LookupError:  # auth or contenttypes migrated back to zero: nothing to build on
        return
    console_groups_sync(apps=apps, using=using)
