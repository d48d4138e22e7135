"""The system checks that catch dangerous settings, each by its id (manage.py check shows them)."""

from __future__ import annotations

import os

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from pytest_django.fixtures import Settings

POSTGRES = {"ENGINE": "django.db.backends.postgresql", "NAME": "screenreel"}


def _ids() -> set[str]:
    return {message.id for message in run_checks() if message.id and message.id.startswith("screenreel.")}


@pytest.fixture
def clean(settings: Settings) -> Settings:
    settings.DEBUG = False
    settings.SCREENREEL_SECRET_KEY_EMBEDDED = False
    settings.SCREENREEL_EGRESS_ALLOW = []
    settings.SCREENREEL_PUBLIC_URL = "https://api.example.com"
    settings.ALLOWED_HOSTS = ["api.example.com"]
    settings.SCREENREEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    settings.DATABASES = {**settings.DATABASES, "default": {**settings.DATABASES["default"], **POSTGRES}}
    return settings


def test_sound_production_settings_raise_none_of_them(clean: Settings) -> None:
    assert _ids() <= {"screenreel.W001"}  # W001: static files, collected or not in this checkout


def test_a_shared_database_without_a_secret_key(clean: Settings) -> None:
    clean.SCREENREEL_SECRET_KEY_EMBEDDED = True
    assert "screenreel.W003" in _ids()


def test_the_embedded_database_may_use_the_embedded_key(clean: Settings) -> None:
    clean.SCREENREEL_SECRET_KEY_EMBEDDED = True
    clean.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    assert "screenreel.W003" not in _ids()


def test_a_visibility_timeout_not_above_the_longest_stage(clean: Settings) -> None:
    clean.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900}
    clean.SCREENREEL_STAGE_TIME_LIMIT_S = 900
    assert "screenreel.W004" in _ids()


def test_an_egress_allow_list_with_debug_off(clean: Settings) -> None:
    clean.SCREENREEL_EGRESS_ALLOW = ["10.0.0.0/8"]
    assert "screenreel.W005" in _ids()
    clean.DEBUG = True
    assert "screenreel.W005" not in _ids()


def test_a_public_url_whose_host_is_not_allowed(clean: Settings) -> None:
    clean.SCREENREEL_PUBLIC_URL = "https://links.example.com"
    assert "screenreel.W006" in _ids()
    clean.ALLOWED_HOSTS = [".example.com"]
    assert "screenreel.W006" not in _ids()


def test_secrets_at_rest_sealed_with_the_key_derived_from_secret_key(clean: Settings) -> None:
    clean.SCREENREEL_ENCRYPTION_KEYS = ["derived"]
    assert "screenreel.W007" in _ids()
    clean.SCREENREEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "derived"]  # mid-way off the derived key
    assert "screenreel.W007" not in _ids()
    clean.SCREENREEL_ENCRYPTION_KEYS = ["derived"]
    clean.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    assert "screenreel.W007" not in _ids()  # the embedded one-machine set-up: key and database share var/


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker needs the unprivileged browser user")
def test_a_root_worker_without_the_browser_user(clean: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs.media import sandbox

    assert "screenreel.W008" not in _ids()  # make sysdeps made it
    monkeypatch.setattr(sandbox, "BROWSER_USER", "screenreel-no-such-user")
    assert "screenreel.W008" in _ids()


def test_a_capture_on_the_videos_clock_without_the_headless_shell(clean: Settings) -> None:
    clean.SCREENREEL_CAPTURE = "virtual_time"
    clean.SCREENREEL_HEADLESS_SHELL = "/nonexistent/chromium-headless-shell"
    assert "screenreel.W009" in _ids()
    clean.SCREENREEL_CAPTURE = "screencast"  # the screencast needs no headless shell
    assert "screenreel.W009" not in _ids()
