from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from jobs import checks  # noqa: F401  (registers the system checks)
        from jobs.api import schema  # noqa: F401  (registers the API key scheme with drf-spectacular)
        from jobs.console.groups import on_post_migrate

        # The console's groups, after every migrate (jobs.console.groups says why not a data migration).
        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="jobs.console.groups")
