"""Every write of the jobs app (services for writes, named ``<noun>_<verb>``: docs/architecture.md)."""
