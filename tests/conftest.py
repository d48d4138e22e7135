from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs.models import Client
from jobs.services.clients import client_create
from tests.embedded import Embedded

VALID_SPEC: dict[str, Any] = {
    "target_url": "http://127.0.0.1:8765/",
    "viewport": {"width": 1280, "height": 720},
    "features": [
        {"title": "Create a project",
         "script": "Start a project in two clicks.",
         "steps": [
             {"action": "goto", "url": "/projects.html"},
             {"action": "click", "selector": "text=New project"},
             {"action": "type", "selector": "#name", "text": "Launch plan"},
             {"action": "press", "key": "Enter"},
             {"action": "wait_for", "selector": ".project-card"},
             {"action": "scroll", "y": 600},
             {"action": "hover", "selector": ".project-card"},
             {"action": "wait", "ms": 800},
         ]},
    ],
    "branding": {"intro_title": "Acme 2.4", "outro_title": "acme.com", "background": "#101828",
                 "accent": "#7F56D9"},
    "voice": {"provider": "auto", "voice_id": None},
    "webhook_url": "https://hooks.example.com/screenreel",
    "metadata": {"release": "2.4"},
}


@pytest.fixture(scope="session", autouse=True)
def static_collected(django_db_blocker: Any) -> None:
    """The admin's static files in STATIC_ROOT, as set-up leaves them, so every server under test (the ASGI
    one included) serves the styled admin through WhiteNoise."""
    from django.core.management import call_command

    call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture
def spec() -> dict[str, Any]:
    return copy.deepcopy(VALID_SPEC)


class Tenant:
    def __init__(self, name: str) -> None:
        self.client_row, new_key = client_create(name=name)
        self.key = new_key.key
        self.api = APIClient()
        self.api.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")

    @property
    def client(self) -> Client:
        return self.client_row


@pytest.fixture
def tenant(db: None) -> Tenant:
    return Tenant("Acme")


@pytest.fixture
def other_tenant(db: None) -> Tenant:
    return Tenant("Globex")


@pytest.fixture(scope="session")
def embedded_template(tmp_path_factory: pytest.TempPathFactory) -> Embedded:
    """The embedded default migrated, with one client, once per run (it takes seconds); tests serve copies."""
    return Embedded.create(tmp_path_factory.mktemp("embedded-template"))


@pytest.fixture
def embedded(embedded_template: Embedded, tmp_path: Path) -> Embedded:
    """A fresh copy of the embedded default's database and key for this test alone."""
    return embedded_template.copy_to(tmp_path / "var")
