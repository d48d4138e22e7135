"""Plumbing that knows no job: errors and failures, ids, logs, metrics, the task queue, worker heartbeats,
the REST toolkit, keys/ and net/. Imports nothing of jobs above it (pyproject.toml, the import contracts)."""
