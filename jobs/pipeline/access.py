"""What a job's credentials give a browser, opened for one stage: the secrets its steps type, and the headers,
HTTP basic and saved session its credentials send to their origins (jobs.hooks.SecretSource)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jobs import hooks
from jobs.media.errors import MediaError
from jobs.media.secrets import Access, Secret, SecretRef
from jobs.models import Job


def secrets_opened(job: Job, refs: list[SecretRef]) -> Mapping[SecretRef, Secret]:
    """The secrets the job's steps name, opened for this stage (a credential deleted since the job was made is
    missing: its step fails with secret_unavailable)."""
    source = hooks.secret_source()
    return source.open(client=job.client, refs=refs) if refs and source is not None else {}


def access_opened(job: Job, ids: list[str]) -> Sequence[Access]:
    """What the job's credentials send to their origins. One deleted since the job was made fails the stage
    (permanent, the client's own fact): recording on without its headers or session would show another app."""
    source = hooks.secret_source()
    access = source.access(client=job.client, ids=ids) if ids and source is not None else []
    missing = [i for i in ids if i not in {a.credential for a in access}]
    if missing:
        raise MediaError(f"secret_unavailable: the credential {missing[0]} the job applies no longer exists",
                         permanent=True, public=True)
    return access


def credentials_used(job: Job, ids: set[str]) -> None:
    """Say when the credentials ``ids`` (and those the job applies) were last used."""
    source = hooks.secret_source()
    used = ids | set(job.parsed_spec.credentials)
    if used and source is not None:
        source.used(client=job.client, ids=sorted(used))
