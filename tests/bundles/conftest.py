from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage, default_storage
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.s3 import moto_s3, s3_outage, s3_storage

__all__ = ["local_storage", "moto_s3", "s3_outage", "s3_storage"]


@pytest.fixture
def local_storage(tmp_path: Path, settings: SettingsWrapper) -> Iterator[Path]:
    """Django's default storage is a FileSystemStorage in this test's own directory."""
    root = tmp_path / "media"
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                     "OPTIONS": {"location": str(root)}}}
    assert isinstance(default_storage, FileSystemStorage) and Path(default_storage.location) == root
    yield root
