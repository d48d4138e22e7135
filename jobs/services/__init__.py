"""Every write of the jobs app (CONVENTIONS.md: services for writes, named ``<noun>_<verb>``)."""
