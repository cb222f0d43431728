"""FLAC metadata blocks libsndfile does not write: our Vorbis comments, a seek table, padding.

libsndfile encodes the audio well but writes only its own handful of lower-case comments, no
SEEKTABLE (players and DAWs then seek by bisection over the whole file) and no PADDING (so a
tagger must rewrite the whole file to add a tag). :func:`finish_flac` takes the stream
libsndfile wrote and writes it again with STREAMINFO, a SEEKTABLE with a point every
``SEEK_INTERVAL_SECONDS``, our VORBIS_COMMENT and a PADDING block, then the audio frames
byte for byte. Block layouts are from the FLAC format specification (RFC 9639, section 8).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

FLAC_MAGIC = b"fLaC"
STREAMINFO, PADDING, SEEKTABLE, VORBIS_COMMENT = 0, 1, 3, 4
# One seek point every 10 s, as the reference encoder does by default (`flac -S 10s`).
SEEK_INTERVAL_SECONDS = 10.0
# Room for a tagger (or a later soundscape step) to add comments without rewriting the file;
# the reference encoder leaves 8 KiB.
PADDING_BYTES = 8192
SEEK_POINT = struct.Struct(">QQH")  # first sample, byte offset from the first frame, samples
_COPY_CHUNK = 1 << 20


class FlacFormatError(ValueError):
    """The stream is not the fixed-blocksize FLAC this module rewrites."""


def _crc8(data: bytes) -> int:
    # CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), initial value 0: the frame-header check.
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _read_blocks(data: BinaryIO) -> tuple[bytes, int]:
    """STREAMINFO's payload and the offset of the first audio frame."""
    if data.read(4) != FLAC_MAGIC:
        raise FlacFormatError("not a FLAC stream")
    streaminfo = None
    while True:
        header = data.read(4)
        if len(header) < 4:
            raise FlacFormatError("metadata blocks end early")
        last, kind, size = header[0] >> 7, header[0] & 0x7F, int.from_bytes(header[1:], "big")
        payload = data.read(size)
        if kind == STREAMINFO:
            streaminfo = payload
        if last:
            break
    if streaminfo is None or len(streaminfo) != 34:
        raise FlacFormatError("no STREAMINFO block")
    return streaminfo, data.tell()


def _frame_number(header: bytes) -> int | None:
    """The frame number of a fixed-blocksize frame header at ``header[0]``, if it checks out."""
    if len(header) < 6 or header[0] != 0xFF or header[1] != 0xF8:
        return None
    first = header[4]
    if first < 0x80:
        number, extra = first, 0
    else:  # UTF-8-style coding, up to 6 bytes for a 31-bit frame number
        lead = 8 - (first ^ 0xFF).bit_length()  # count of leading one bits
        if not 2 <= lead <= 6:
            return None
        extra = lead - 1
        number = first & (0x7F >> lead)
        for byte in header[5:5 + extra]:
            if byte >> 6 != 0b10:
                return None
            number = (number << 6) | (byte & 0x3F)
    pos = 5 + extra
    block_code, rate_code = header[2] >> 4, header[2] & 0x0F
    pos += {6: 1, 7: 2}.get(block_code, 0)
    pos += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if block_code == 0 or rate_code == 15 or len(header) <= pos:
        return None
    return number if _crc8(header[:pos]) == header[pos] else None


def _seek_points(data: BinaryIO, first_frame: int, blocksize: int, total: int,
                 interval: int) -> list[tuple[int, int, int]]:
    """(sample, offset from the first frame, frame samples) at the frame starting each interval.

    Frames are found in order: a sync code whose header CRC checks and whose frame number is
    the one expected next, so a sync-like pattern inside compressed audio is never taken.
    """
    points: list[tuple[int, int, int]] = []
    wanted_sample, expected = 0, 0
    data.seek(first_frame)
    buffer, base = b"", first_frame  # base: file offset of buffer[0]
    search = 0
    while expected * blocksize < total and wanted_sample < total:
        found = buffer.find(b"\xff\xf8", search)
        if found < 0 or len(buffer) - found < 16:
            more = data.read(_COPY_CHUNK)
            if not more:
                break
            keep = max(0, (found if found >= 0 else len(buffer)) - 1)
            base += keep
            buffer, search = buffer[keep:] + more, 0
            continue
        number = _frame_number(buffer[found:found + 16])
        if number != expected:
            search = found + 1
            continue
        sample = expected * blocksize
        if sample >= wanted_sample:
            points.append((sample, base + found - first_frame, min(blocksize, total - sample)))
            wanted_sample += interval
        expected += 1
        # A frame is at least a few bytes long: the next sync cannot start at the next byte.
        search = found + 2
    return points


def _vorbis_comment(vendor: str, comments: dict[str, str]) -> bytes:
    entries = [f"{key.upper()}={value}".encode("utf-8") for key, value in comments.items()]
    body = struct.pack("<I", len(vendor.encode())) + vendor.encode()
    body += struct.pack("<I", len(entries))
    body += b"".join(struct.pack("<I", len(e)) + e for e in entries)
    return body


def _block(kind: int, payload: bytes, *, last: bool = False) -> bytes:
    if len(payload) >= 1 << 24:
        raise FlacFormatError("a metadata block over 16 MiB")
    return bytes([(0x80 if last else 0) | kind]) + len(payload).to_bytes(3, "big") + payload


def finish_flac(raw: BinaryIO, out: BinaryIO, *, comments: dict[str, str], vendor: str,
                padding: int = PADDING_BYTES, seek_interval: float = SEEK_INTERVAL_SECONDS) -> None:
    """Write the FLAC stream ``raw`` (as libsndfile wrote it) to ``out`` with our metadata.

    Args:
        raw: a readable, seekable binary FLAC stream with fixed-size blocks.
        out: where the finished stream goes.
        comments: Vorbis comments, field name to text (names are written upper-case).
        vendor: the Vorbis comment vendor string.
        padding: bytes of PADDING to leave for later tags.
        seek_interval: seconds between seek points.
    """
    streaminfo, first_frame = _read_blocks(raw)
    min_block, max_block = struct.unpack(">HH", streaminfo[:4])
    if min_block != max_block:
        raise FlacFormatError("variable block sizes")
    packed = int.from_bytes(streaminfo[10:18], "big")
    sample_rate = packed >> 44
    total = packed & ((1 << 36) - 1)
    interval = max(1, round(seek_interval * sample_rate))
    points = _seek_points(raw, first_frame, max_block, total, interval)
    out.write(FLAC_MAGIC)
    out.write(_block(STREAMINFO, streaminfo))
    out.write(_block(SEEKTABLE, b"".join(SEEK_POINT.pack(*p) for p in points)))
    out.write(_block(VORBIS_COMMENT, _vorbis_comment(vendor, comments)))
    out.write(_block(PADDING, bytes(padding), last=True))
    raw.seek(first_frame)
    while chunk := raw.read(_COPY_CHUNK):
        out.write(chunk)


def read_metadata(path) -> dict:
    """The metadata blocks of a FLAC file: ``seektable`` (list of points), ``comments``
    (upper-case name to list of values), ``vendor``, ``padding`` (bytes), ``first_frame``.

    A file with an ID3v2 tag ahead of ``fLaC`` (where C2PA puts its manifest) is read past it.
    """
    with open(path, "rb") as handle:
        head = handle.read(10)
        start = 0
        if head[:3] == b"ID3":  # ID3v2: 10-byte header, syncsafe size
            size = 0
            for byte in head[6:10]:
                size = (size << 7) | (byte & 0x7F)
            start = 10 + size + (10 if head[5] & 0x10 else 0)
        handle.seek(start)
        if handle.read(4) != FLAC_MAGIC:
            raise FlacFormatError(f"{path}: not a FLAC file")
        found: dict = {"seektable": [], "comments": {}, "vendor": None, "padding": 0}
        while True:
            header = handle.read(4)
            if len(header) < 4:
                raise FlacFormatError(f"{path}: metadata blocks end early")
            last, kind, size = header[0] >> 7, header[0] & 0x7F, int.from_bytes(header[1:], "big")
            payload = handle.read(size)
            if kind == SEEKTABLE:
                found["seektable"] = [SEEK_POINT.unpack_from(payload, i)
                                      for i in range(0, len(payload), SEEK_POINT.size)]
            elif kind == PADDING:
                found["padding"] += size
            elif kind == VORBIS_COMMENT:
                n = struct.unpack_from("<I", payload)[0]
                found["vendor"] = payload[4:4 + n].decode("utf-8", "replace")
                pos = 4 + n
                count = struct.unpack_from("<I", payload, pos)[0]
                pos += 4
                for _ in range(count):
                    length = struct.unpack_from("<I", payload, pos)[0]
                    entry = payload[pos + 4:pos + 4 + length].decode("utf-8", "replace")
                    pos += 4 + length
                    name, _, value = entry.partition("=")
                    found["comments"].setdefault(name.upper(), []).append(value)
            if last:
                break
        found["first_frame"] = handle.tell()
        return found
