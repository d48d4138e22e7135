"""The bundle sink: bytes stream into storage as they are written, in fixed-size parts on S3, atomically on
local disk, and a failure anywhere leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from jobs.storage.sinks import MIN_PART_BYTES, S3MultipartSink, bundle_sink, sink_open
from tests.bundles.support import MiB, SyntheticMedia
from tests.s3 import MotoS3


def _write_in_odd_blocks(sink: io.RawIOBase, source: SyntheticMedia, block: int = 777 * 1024 + 3) -> None:
    while data := source.read(block):
        sink.write(data)


def test_s3_parts_are_all_exactly_the_part_size_but_the_last(s3_storage: MotoS3) -> None:
    client = s3_storage.client()
    source = SyntheticMedia(3 * MIN_PART_BYTES + 12345)
    sink = sink_open(key="sink/parts.bin", part_bytes=MIN_PART_BYTES)
    assert isinstance(sink, S3MultipartSink)
    _write_in_odd_blocks(sink, source)

    # Before completing: the full parts are uploaded, each exactly the part size; the tail is buffered.
    listed = client.list_parts(Bucket=s3_storage.bucket, Key="sink/parts.bin", UploadId=sink.upload_id)
    assert [p["Size"] for p in listed["Parts"]] == [MIN_PART_BYTES] * 3

    sink.commit()
    head = client.head_object(Bucket=s3_storage.bucket, Key="sink/parts.bin")
    assert head["ContentLength"] == source.size == sink.size
    assert head["ETag"].strip('"').endswith("-4")  # 3 full parts and a last one of 12345 bytes
    body = client.get_object(Bucket=s3_storage.bucket, Key="sink/parts.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sink.sha256 == source.sha256()
    assert client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []


def test_a_failure_mid_stream_aborts_the_upload_and_leaves_no_object(s3_storage: MotoS3) -> None:
    client = s3_storage.client()
    with pytest.raises(RuntimeError, match="disk on fire"), \
            bundle_sink(key="sink/broken.bin", part_bytes=MIN_PART_BYTES) as sink:
        _write_in_odd_blocks(sink, SyntheticMedia(2 * MIN_PART_BYTES + 1))
        assert client.list_multipart_uploads(Bucket=s3_storage.bucket)["Uploads"]  # parts were uploaded
        raise RuntimeError("disk on fire")
    assert client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=s3_storage.bucket, Key="sink/broken.bin")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_an_empty_stream_still_makes_an_object(s3_storage: MotoS3) -> None:
    with bundle_sink(key="sink/empty.bin") as sink:
        pass
    head = s3_storage.client().head_object(Bucket=s3_storage.bucket, Key="sink/empty.bin")
    assert head["ContentLength"] == 0 == sink.size
    assert sink.sha256 == hashlib.sha256(b"").hexdigest()


def test_a_part_size_s3_would_refuse_is_refused_before_uploading(s3_storage: MotoS3) -> None:
    with pytest.raises(ValueError, match="part size"):
        sink_open(key="sink/tiny.bin", part_bytes=MIN_PART_BYTES - 1)
    assert s3_storage.client().list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []


def test_the_sink_cannot_seek_so_zipfile_streams_with_data_descriptors(s3_storage: MotoS3) -> None:
    with bundle_sink(key="sink/a.zip") as sink:
        assert not sink.seekable()
        with pytest.raises(io.UnsupportedOperation):
            sink.seek(0)
        with zipfile.ZipFile(sink, "w", allowZip64=True) as archive, \
                archive.open("hello.txt", "w", force_zip64=True) as member:
            member.write(b"hello " * 1000)
    data = s3_storage.client().get_object(Bucket=s3_storage.bucket, Key="sink/a.zip")["Body"].read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        info = archive.getinfo("hello.txt")
        assert info.flag_bits & 0x08  # sizes and CRC follow the data: nothing was seeked back to
        assert archive.read("hello.txt") == b"hello " * 1000


def test_local_sink_renames_into_place_only_when_complete(local_storage: Path) -> None:
    with bundle_sink(key="clients/c/out.bin") as sink:
        sink.write(b"x" * 1000)
        assert not (local_storage / "clients/c/out.bin").exists()  # readers never see half a file
    assert (local_storage / "clients/c/out.bin").read_bytes() == b"x" * 1000
    assert sink.size == 1000 and sink.sha256 == hashlib.sha256(b"x" * 1000).hexdigest()


def test_local_sink_failure_leaves_the_old_file_and_no_temporary(local_storage: Path) -> None:
    target = local_storage / "clients/c/out.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), bundle_sink(key="clients/c/out.bin") as sink:
        sink.write(b"new" * MiB)
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]
