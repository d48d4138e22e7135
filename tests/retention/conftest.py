from __future__ import annotations

from tests.bundles.conftest import local_storage
from tests.s3 import moto_s3, s3_storage

__all__ = ["local_storage", "moto_s3", "s3_storage"]
