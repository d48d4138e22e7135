"""What demos do when a job's event is recorded (``SCREENREEL_EVENT_HANDLERS``): a version's job ended."""

from __future__ import annotations

from demos.models import DemoVersion
from demos.services import version_ended
from jobs.models import JOB_STATUS_EVENT, Event, JobStatus

# The events a job ends with, and the status each says.
_ENDED = {str(JOB_STATUS_EVENT[status]): status for status in
          (JobStatus.SUCCEEDED, JobStatus.PARTIAL_SUCCESS, JobStatus.FAILED, JobStatus.CANCELED)}


def demo_versions_on_event(*, event: Event) -> None:
    """In the job's own transition: its version (if it is one) is ready. One indexed read for any other job."""
    status = _ENDED.get(event.type)
    if status is None or event.job_id is None:
        return
    version = DemoVersion.objects.select_related("job", "demo").filter(job_id=event.job_id).first()
    if version is not None:
        version_ended(version=version, status=status)
