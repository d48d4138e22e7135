from __future__ import annotations

from django.db import models

from jobs.models import Job, StoredObject


class Bundle(models.Model):
    """One version of a job's zip: version N is built when run N of the job settles.

    The zip itself is a stored object (its key, bytes, sha256 and retention state live there); this row
    adds what only a bundle has: its version and the manifest it was built with.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="bundles")
    version = models.PositiveIntegerField()
    stored = models.OneToOneField(StoredObject, on_delete=models.CASCADE, related_name="bundle")
    manifest = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "-version"]
        constraints = [models.UniqueConstraint(fields=["job", "version"], name="bundle_job_version_unique")]

    def __str__(self) -> str:
        return f"{self.job_id} v{self.version}"
