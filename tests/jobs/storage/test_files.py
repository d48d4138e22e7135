"""The storage seam: every way storage fails leaves it as one classified ``StorageError``, on moto's S3 server
and on a local folder, and says nothing of the bucket or its host."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.lib.failures import is_permanent
from jobs.storage.files import StorageError, bucket, deleter_for, fetch_file, open_local, stored, upload_file
from tests.s3 import MotoS3, S3Outage


def _file(tmp_path: Path, body: bytes = b"frames") -> Path:
    path = tmp_path / "in.bin"
    path.write_bytes(body)
    return path


def test_s3_round_trip_through_the_seam(s3_storage: MotoS3, tmp_path: Path) -> None:
    upload_file(key="raw/clients/c/jobs/j/a.bin", path=_file(tmp_path))
    assert stored("raw/clients/c/jobs/j/a.bin")
    assert fetch_file(key="raw/clients/c/jobs/j/a.bin", dest=tmp_path / "out.bin").read_bytes() == b"frames"
    assert deleter_for().delete(["raw/clients/c/jobs/j/a.bin", "raw/clients/c/jobs/j/never.bin"]) == {}
    assert not stored("raw/clients/c/jobs/j/a.bin")


def test_a_missing_object_is_a_storage_error_that_says_missing(s3_storage: MotoS3, tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        fetch_file(key="raw/clients/c/jobs/j/none.bin", dest=tmp_path / "out.bin")
    assert caught.value.missing and caught.value.code == "NoSuchKey" and caught.value.status_code == 404


def test_unreachable_s3_is_a_transient_storage_error_naming_neither_bucket_nor_host(
        s3_outage: S3Outage, moto_s3: MotoS3, tmp_path: Path) -> None:
    s3_outage.down()
    for attempt in (lambda: upload_file(key="raw/clients/c/jobs/j/a.bin", path=_file(tmp_path)),
                    lambda: fetch_file(key="raw/clients/c/jobs/j/a.bin", dest=tmp_path / "out.bin"),
                    lambda: stored("raw/clients/c/jobs/j/a.bin")):
        with pytest.raises(StorageError) as caught:
            attempt()
        error = caught.value
        assert error.status_code is None and error.code == "" and not error.missing
        assert not is_permanent(error)
        assert moto_s3.bucket not in str(error) and s3_outage.endpoint not in str(error)
        assert caught.value.__cause__ is not None  # botocore's own error, for the logs
    failed = deleter_for().delete(["raw/clients/c/jobs/j/a.bin"])
    assert list(failed) == ["raw/clients/c/jobs/j/a.bin"]
    assert failed["raw/clients/c/jobs/j/a.bin"].startswith("storage failed deleting: no answer")


def test_a_bucket_with_no_lifecycle_rules_has_none(s3_storage: MotoS3) -> None:
    s3 = bucket()
    assert s3 is not None and s3.lifecycle_rules() == []
    rule = {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": "raw/"}, "Expiration": {"Days": 3}}
    s3.put_lifecycle_rules([rule])
    assert [r["ID"] for r in s3.lifecycle_rules()] == ["r"]


def test_local_storage_fails_the_same_way(local_storage: Path, tmp_path: Path) -> None:
    assert bucket() is None
    with pytest.raises(StorageError) as caught:
        open_local("raw/clients/c/jobs/j/none.bin")
    assert caught.value.missing
    upload_file(key="raw/clients/c/jobs/j/a.bin", path=_file(tmp_path))
    with open_local("raw/clients/c/jobs/j/a.bin") as fh:
        assert fh.read() == b"frames"
    with pytest.raises(StorageError) as refused:  # a file stands where the folder would go
        upload_file(key="raw/clients/c/jobs/j/a.bin/b.bin", path=_file(tmp_path))
    assert not refused.value.missing and str(local_storage) not in str(refused.value)
