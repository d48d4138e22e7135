"""The exit codes a CI branches on (cli/README.md and ``screenreel --help`` list them)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    SUCCEEDED = 0  # or, without --wait: the job or version was made
    FAILED = 1  # the job failed or was canceled; or anything unexpected (5xx after retries, the network, a timeout)
    PARTIAL = 2  # some features succeeded, some did not
    DRIFT = 3  # the version succeeded but drifted past the demo's threshold
    USAGE = 4  # bad arguments, no or a wrong key, 400/401/403/404, an unreadable spec


EPILOG = """exit codes:
  0  the job succeeded (without --wait: the job or version was made)
  1  the job failed or was canceled; or an unexpected failure (a 5xx after retries, the network, --timeout)
  2  the job partly succeeded (some features failed)
  3  the demo's version succeeded but drifted past its threshold
  4  bad usage or auth: bad arguments, a missing or wrong API key, 400/401/403/404, an unreadable spec file"""
