"""SoundFont files read as data: their preset names, and SF3 decoded into SF2.

A SoundFont (SF2, the SoundFont 2.04 specification) is a RIFF file: ``INFO`` (names, copyright),
``sdta`` (16-bit PCM samples in one ``smpl`` chunk) and ``pdta`` (presets, instruments, zones and
the ``shdr`` sample headers). SF3, MuseScore's compressed variant, is the same file with each
sample stored as an Ogg Vorbis stream in ``smpl``: its ``shdr`` start/end are byte offsets of
the stream, its loop points are relative to the decoded sample, and its sample type carries the
0x10 flag (FluidSynth's SoundFont3Format page). Decoding every stream once into an SF2 lets
FluidSynth load only the samples a render needs, in a tenth of a second instead of seconds.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SF3_COMPRESSED = 0x10          # sample type flag of a compressed (Ogg Vorbis) sample
SHDR_SIZE = 46                 # bytes per sample header (SoundFont 2.04, 7.10)
PHDR_SIZE = 38                 # bytes per preset header (7.2)
SAMPLE_PADDING = 46            # zero samples after each sample, as 7.10 asks of every SF2
_SHDR = struct.Struct("<20sIIIIIBbHH")
_PHDR = struct.Struct("<20sHHHIII")


class SoundFontError(ValueError):
    """The file is not a SoundFont this module can read."""


@dataclass(frozen=True)
class Preset:
    """One preset of a SoundFont, as General MIDI addresses it."""

    bank: int
    program: int
    name: str


def _chunks(data, start: int, end: int):
    """(id, payload offset, payload size) of the RIFF chunks between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        ident = bytes(data[pos:pos + 4])
        size = struct.unpack_from("<I", data, pos + 4)[0]
        if pos + 8 + size > end:
            raise SoundFontError(f"chunk {ident!r} at byte {pos} runs past its parent")
        yield ident, pos + 8, size
        pos += 8 + size + (size & 1)


def _lists(data) -> dict[bytes, tuple[int, int]]:
    if bytes(data[:4]) != b"RIFF" or bytes(data[8:12]) != b"sfbk":
        raise SoundFontError("not a SoundFont (no RIFF 'sfbk' header)")
    lists = {}
    for ident, offset, size in _chunks(data, 12, len(data)):
        if ident == b"LIST":
            lists[bytes(data[offset:offset + 4])] = (offset + 4, offset + size)
    missing = {b"INFO", b"sdta", b"pdta"} - set(lists)
    if missing:
        raise SoundFontError(f"missing the {b', '.join(sorted(missing)).decode()} list(s)")
    return lists


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _read_list(path: str | Path, kind: bytes) -> bytes:
    """The body of one top-level LIST (after its 4-byte type), found by seeking past the rest:
    the ``pdta`` of a 150 MB bank is read without reading its samples."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise SoundFontError(f"{path}: not a SoundFont (no RIFF 'sfbk' header)")
        while True:
            header = handle.read(12)
            if len(header) < 12:
                raise SoundFontError(f"{path}: no {kind.decode()} list")
            ident, size, list_kind = header[:4], struct.unpack("<I", header[4:8])[0], header[8:12]
            if ident == b"LIST" and list_kind == kind:
                return handle.read(size - 4)
            handle.seek(size - 4 + (size & 1), os.SEEK_CUR)


def read_presets(path: str | Path) -> list[Preset]:
    """Every preset in the file (bank, program, name), in file order, without the terminal one."""
    pdta = _read_list(path, b"pdta")
    phdr = next((pdta[o:o + s] for ident, o, s in _chunks(pdta, 0, len(pdta)) if ident == b"phdr"),
                None)
    if phdr is None:
        raise SoundFontError(f"{path}: no preset headers (phdr)")
    presets = []
    for i in range(len(phdr) // PHDR_SIZE - 1):  # the last record is the terminal "EOP"
        name, program, bank, *_ = _PHDR.unpack_from(phdr, i * PHDR_SIZE)
        presets.append(Preset(bank=bank, program=program, name=_text(name)))
    return presets


def version(path: str | Path) -> tuple[int, int]:
    """The file's ``ifil`` version: (2, x) for SF2, (3, x) for SF3."""
    info = _read_list(path, b"INFO")
    for ident, offset, size in _chunks(info, 0, len(info)):
        if ident == b"ifil" and size >= 4:
            return struct.unpack_from("<HH", info, offset)
    raise SoundFontError(f"{path}: no ifil version chunk")


def decode_sf3(source: str | Path, target: str | Path) -> None:
    """Write ``target``, an SF2 with every Ogg Vorbis sample of ``source`` decoded to 16-bit PCM.

    Presets, instruments and zones are copied unchanged; only the sample headers are rewritten
    (absolute sample offsets, absolute loop points, the compression flag cleared) and the
    version is set to 2.04. Uncompressed samples in a mixed file are copied as they are.
    """
    import soundfile

    with open(source, "rb") as handle:
        data = memoryview(handle.read())
    lists = _lists(data)
    info = [(ident, bytes(data[o:o + s])) for ident, o, s in _chunks(data, *lists[b"INFO"])]
    smpl = next(((o, s) for ident, o, s in _chunks(data, *lists[b"sdta"]) if ident == b"smpl"), None)
    if smpl is None:
        raise SoundFontError("no sample data (smpl)")
    pdta = [(ident, bytes(data[o:o + s])) for ident, o, s in _chunks(data, *lists[b"pdta"])]
    shdr = dict(pdta).get(b"shdr")
    if shdr is None:
        raise SoundFontError("no sample headers (shdr)")
    count = len(shdr) // SHDR_SIZE
    parts: list[np.ndarray] = []
    headers = bytearray()
    cursor = 0
    for i in range(count):
        record = shdr[i * SHDR_SIZE:(i + 1) * SHDR_SIZE]
        if i == count - 1:  # the terminal "EOS" record
            headers += record
            break
        name, start, end, loop_start, loop_end, rate, pitch, correction, link, kind = _SHDR.unpack(record)
        if kind & SF3_COMPRESSED:
            blob = bytes(data[smpl[0] + start: smpl[0] + end])
            pcm, _ = soundfile.read(io.BytesIO(blob), dtype="int16", always_2d=True)
            pcm = np.ascontiguousarray(pcm[:, 0])
            first = cursor
            loop_start, loop_end = first + loop_start, first + loop_end
            kind &= ~SF3_COMPRESSED
        else:  # plain 16-bit samples: offsets are in samples, loops absolute
            pcm = np.frombuffer(data[smpl[0] + 2 * start: smpl[0] + 2 * end], dtype="<i2").copy()
            first = cursor
            loop_start, loop_end = first + loop_start - start, first + loop_end - start
        parts += [pcm.astype("<i2", copy=False), np.zeros(SAMPLE_PADDING, dtype="<i2")]
        headers += _SHDR.pack(name, first, first + pcm.size, loop_start, loop_end, rate, pitch,
                              correction, link, kind)
        cursor = first + pcm.size + SAMPLE_PADDING
    info = [(ident, struct.pack("<HH", 2, 4) if ident == b"ifil" else body) for ident, body in info]
    samples = np.concatenate(parts).tobytes() if parts else b""
    body = (b"sfbk"
            + _list(b"INFO", b"".join(_chunk(i, b) for i, b in info))
            + _list(b"sdta", _chunk(b"smpl", samples))
            + _list(b"pdta", b"".join(_chunk(i, bytes(headers) if i == b"shdr" else b) for i, b in pdta)))
    Path(target).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _chunk(ident: bytes, payload: bytes) -> bytes:
    return ident + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def _list(kind: bytes, body: bytes) -> bytes:
    return _chunk(b"LIST", kind + body)
