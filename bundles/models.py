from __future__ import annotations

from django.db import models

from jobs.models import Client, Job


class Bundle(models.Model):
    """One version of a job's zip: version N is built when run N of the job settles."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="bundles")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="bundles")
    version = models.PositiveIntegerField()
    key = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    manifest = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "-version"]
        constraints = [models.UniqueConstraint(fields=["job", "version"], name="bundle_job_version_unique")]

    def __str__(self) -> str:
        return f"{self.job_id} v{self.version}"
