"""Where each stored object lives: keys namespaced per retention class, client and job (docs/retention.md,
"Keys name their tenant and class"). A purge and a link both prove a key's tenant from the key alone.
"""

from __future__ import annotations

from jobs.models import KIND_CLASS, Job, ObjectKind, RetentionClass


def class_prefix(retention_class: str, client_id: str) -> str:
    """Where every object of one client and class lives: what a purge checks a key against."""
    return f"{retention_class}/clients/{client_id}/"


def legacy_prefix(client_id: str, job_id: str) -> str:
    """Keys written before keys named their class (migrated rows keep them): tenant and job, no class."""
    return f"clients/{client_id}/jobs/{job_id}/"


def object_key(job: Job, *, kind: str, name: str, chunk_index: int | None = None, attempt: str = "") -> str:
    """The key of a new object: its class, tenant and job, then the run (so a rerun never overwrites
    or reuses the key of an object that retention may be deleting) and the chunk. A bundle's key also
    names its build attempt: two settles racing on one run each write their own object."""
    base = f"{class_prefix(KIND_CLASS[kind], job.client_id)}jobs/{job.id}/"
    if kind == ObjectKind.BUNDLE:
        return f"{base}v{job.run}/{attempt + '/' if attempt else ''}{name}"
    assert chunk_index is not None, "a chunk's object names its chunk"
    return f"{base}runs/{job.run}/chunks/{chunk_index}/{name}"


def key_belongs(key: str, *, client_id: str, retention_class: str | None = None, job_id: str | None = None) -> bool:
    """Whether ``key`` lies in the client's namespace (for that class, when given), with no way out of it.

    Keys from before class prefixes prove the tenant and the job instead, and only when the job is named.
    """
    if ".." in key.split("/") or "//" in key or key.startswith("/"):
        return False
    classes = [retention_class] if retention_class else list(RetentionClass.values)
    if any(key.startswith(class_prefix(c, client_id)) for c in classes):
        return True
    if job_id is not None:
        return key.startswith(legacy_prefix(client_id, job_id))
    return key.startswith(f"clients/{client_id}/jobs/")
