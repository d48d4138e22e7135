"""JPEG pictures with their times, as a Matroska stream for ffmpeg's stdin.

The frame grid sends ffmpeg each distinct picture once, at the frame it first shows on, and ffmpeg's constant
frame rate output repeats it until the next: a repeated frame is neither decoded nor colour-converted again
(docs/benchmarks.md, "Distinct pictures only"). ``image2pipe``, which the grid used before, has no timestamps,
so every frame of a still page had to be sent, decoded and converted again.

Only what ffmpeg's demuxer needs is written: the EBML header, a Segment of unknown size (a live stream), the
track (``V_MJPEG``, one frame's default duration, so the last picture lasts one frame), then one Cluster per
picture with its time in milliseconds and a single key-frame SimpleBlock. Element IDs and layout: RFC 9559.
"""

from __future__ import annotations

import struct

_EBML = b"\x1a\x45\xdf\xa3"
_SEGMENT = b"\x18\x53\x80\x67"
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
_INFO, _TIMESTAMP_SCALE, _MUXING_APP, _WRITING_APP = b"\x15\x49\xa9\x66", b"\x2a\xd7\xb1", b"\x4d\x80", b"\x57\x41"
_TRACKS, _TRACK_ENTRY, _TRACK_NUMBER, _TRACK_UID, _TRACK_TYPE = (
    b"\x16\x54\xae\x6b", b"\xae", b"\xd7", b"\x73\xc5", b"\x83")
_CODEC_ID, _DEFAULT_DURATION = b"\x86", b"\x23\xe3\x83"
_CLUSTER, _CLUSTER_TIMESTAMP, _SIMPLE_BLOCK = b"\x1f\x43\xb6\x75", b"\xe7", b"\xa3"
_VIDEO_TRACK = 1
_KEYFRAME = 0x80
MS_NS = 1_000_000  # the TimestampScale: times are in milliseconds


def _size(n: int) -> bytes:
    """An EBML variable-length size: the shortest form, never the all-ones one (that means unknown)."""
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | n).to_bytes(length, "big")
    raise ValueError(f"an EBML element of {n} bytes is too large")


def _element(element_id: bytes, payload: bytes) -> bytes:
    return element_id + _size(len(payload)) + payload


def _uint(element_id: bytes, value: int) -> bytes:
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def header(*, fps: int) -> bytes:
    """The stream's start: one MJPEG video track whose pictures last one frame at ``fps`` unless a later one
    comes sooner. The track has no Video element (the picture's size): ffmpeg reads each picture's size from the
    JPEG itself, and a size declared larger than the first picture makes its decoder refuse every picture
    ("No JPEG data found in image", ffmpeg 5.1)."""
    ebml = _element(_EBML, b"".join((
        _uint(b"\x42\x86", 1), _uint(b"\x42\xf7", 1),  # EBMLVersion, EBMLReadVersion
        _uint(b"\x42\xf2", 4), _uint(b"\x42\xf3", 8),  # EBMLMaxIDLength, EBMLMaxSizeLength
        _element(b"\x42\x82", b"matroska"), _uint(b"\x42\x87", 4), _uint(b"\x42\x85", 2))))  # DocType, versions
    info = _element(_INFO, _uint(_TIMESTAMP_SCALE, MS_NS) + _element(_MUXING_APP, b"screenreel")
                    + _element(_WRITING_APP, b"screenreel"))
    track = _element(_TRACK_ENTRY, b"".join((
        _uint(_TRACK_NUMBER, _VIDEO_TRACK), _uint(_TRACK_UID, 1), _uint(_TRACK_TYPE, 1),  # 1: video
        _element(_CODEC_ID, b"V_MJPEG"), _uint(_DEFAULT_DURATION, round(1e9 / fps)))))
    return ebml + _SEGMENT + _UNKNOWN_SIZE + info + _element(_TRACKS, track)


def picture(jpeg: bytes, *, ms: int) -> list[bytes]:
    """One picture shown from ``ms`` on: a Cluster holding it, as pieces to write one after the other (the JPEG
    is not copied)."""
    block_head = bytes([0x80 | _VIDEO_TRACK]) + struct.pack(">hB", 0, _KEYFRAME)  # track, relative time, flags
    timestamp = _uint(_CLUSTER_TIMESTAMP, ms)
    block_size = len(block_head) + len(jpeg)
    cluster_size = len(timestamp) + len(_SIMPLE_BLOCK) + len(_size(block_size)) + block_size
    return [_CLUSTER + _size(cluster_size) + timestamp + _SIMPLE_BLOCK + _size(block_size) + block_head, jpeg]
