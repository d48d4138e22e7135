"""Credentials: what a client stores so its app can be recorded behind a sign-in (docs/credentials.md)."""
