"""What drf-spectacular needs to describe the API that it cannot infer (the API key scheme)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <api key>``, as jobs.auth.ApiKeyAuthentication reads it."""

    target_class = "jobs.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A client API key: `Authorization: Bearer sr_...`."}
