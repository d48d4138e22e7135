"""Retention policies, holds and purge audits arrive with the retention issue; the app owns that room."""
