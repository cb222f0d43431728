"""Delivery files: 24-bit Broadcast WAV (bext + iXML written by us) and FLAC, written atomically.

WAV: we write the RIFF file ourselves, because no maintained Python library writes a ``bext``
chunk. Chunk order: ``fmt `` (WAVE_FORMAT_PCM, as EBU Tech 3285 specifies for BWF; libsndfile
and wavinfo read it), ``bext`` (EBU Tech 3285 v2), ``iXML``, optional ``LIST``/``INFO`` tags,
then ``data``. Text in bext is ASCII: other characters are folded to their ASCII base letter
("é" -> "e") or replaced by "?", and fields are cut to their fixed sizes; the full prompt travels
in iXML (UTF-8) and the sidecar.

FLAC: written by libsndfile (via soundfile) with Vorbis comments (title, comment, software,
date). bext and iXML are RIFF chunks and do not exist in FLAC; the sidecar JSON carries
everything for FLAC deliveries.

Both formats get the same integer samples (our float-to-PCM rounding), so
:func:`audio_sha256` is the same for a WAV and a FLAC of the same master.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import unicodedata
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soundscape.errors import AudioError, OutputError, ParameterError
from soundscape.render import is_store

FORMATS = ("wav", "flac")
BIT_DEPTHS = (16, 24)
WAVE_FORMAT_PCM = 0x0001
# RIFF sizes are 32-bit: a plain WAV stops at 4 GiB (RF64 would lift it; FLAC has no limit).
RIFF_MAX_BYTES = 2 ** 32 - 1

# EBU Tech 3285 v2: the fixed part of the bext chunk, 602 bytes, little-endian:
# Description 256, Originator 32, OriginatorReference 32, OriginationDate 10, OriginationTime 8,
# TimeReference (low, high uint32), Version uint16, UMID 64, LoudnessValue, LoudnessRange,
# MaxTruePeakLevel, MaxMomentaryLoudness, MaxShortTermLoudness (int16, 1/100 LU/dB), Reserved 180;
# then CodingHistory (ASCII lines ending in CR LF).
BEXT_STRUCT = struct.Struct("<256s32s32s10s8sIIH64s5h180s")
assert BEXT_STRUCT.size == 602
# EBU Tech 3285 v2: a loudness field that is not used holds 0x7FFF.
BEXT_LOUDNESS_UNSET = 0x7FFF
# iXML specification version written in IXML_VERSION.
IXML_VERSION = "2.10"
# Vorbis comment / RIFF INFO tags we accept (soundfile's metadata names) and their INFO ids.
TAGS = {"title": b"INAM", "comment": b"ICMT", "software": b"ISFT", "date": b"ICRD",
        "artist": b"IART", "copyright": b"ICOP", "album": b"IPRD", "genre": b"IGNR"}

_FRAMES_PER_BLOCK = 1 << 18  # conversion block: 256k frames, ~1.5 MB of 24-bit stereo
_DATE_RE = re.compile(r"^\d{4}[-_:/. ]\d{2}[-_:/. ]\d{2}$")
_TIME_RE = re.compile(r"^\d{2}[-_:/. ]\d{2}[-_:/. ]\d{2}$")


@dataclass
class BextInfo:
    """The fields of a BWF ``bext`` chunk (EBU Tech 3285 v2). Loudness fields in LUFS/LU/dBTP."""

    description: str
    originator: str = "soundscape"
    originator_reference: str = ""
    origination_date: str = ""  # "YYYY-MM-DD"
    origination_time: str = ""  # "HH:MM:SS"
    time_reference: int = 0     # samples since midnight of the first sample
    version: int = 2
    umid: bytes = b""
    loudness_value: float | None = None
    loudness_range: float | None = None
    max_true_peak_level: float | None = None
    max_momentary_loudness: float | None = None
    max_short_term_loudness: float | None = None
    coding_history: str = ""


# --- checks ---------------------------------------------------------------------------------

def check_output_path(path, *, overwrite: bool, fmt: str | None = None) -> Path:
    """Check that ``path`` can be written, before any rendering is spent on it.

    Args:
        path: the output file; its suffix gives the format (.wav or .flac) unless ``fmt`` does.
        overwrite: whether an existing file may be replaced.
        fmt: "wav" or "flac"; must agree with the suffix when both are given.

    Returns:
        The path as a :class:`Path`.

    Raises:
        ParameterError: unknown format. OutputError: folder missing, not a folder, not
            writable; the path is a folder; the file exists and ``overwrite`` is False.
    """
    path = Path(os.path.expanduser(str(path)))
    _format_of(path, fmt)
    folder = path.parent if str(path.parent) else Path(".")
    _check_name_length(path, folder)
    if not folder.exists():
        raise OutputError(f"output folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or not can_create_in(folder):
        raise OutputError(f"output folder {folder} is not writable")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    # The sidecar <file>.json is written beside the audio: it is an output too.
    sidecar = path.with_name(path.name + ".json")
    if sidecar.is_dir():
        raise OutputError(f"{sidecar} is a folder where the sidecar must go; move it")
    if sidecar.exists() and not overwrite:
        raise OutputError(f"{sidecar} exists; pass --overwrite to replace it")
    return path


# The longest names written beside an output: its own temporary file ".<name>.<12 hex>.part"
# (write_audio) and its sidecar's ".<name>.json.tmp" plus eight random characters (atomic.py,
# tempfile.mkstemp).
NAME_HEADROOM = max(len(".") + len(".") + 12 + len(".part"), len(".") + len(".json") + len(".tmp") + 8)


def _check_name_length(path: Path, folder: Path) -> None:
    """Refuse a file name the file system cannot hold once the sidecar and temp suffixes are added."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        name_max = os.pathconf(probe, "PC_NAME_MAX")
        path_max = os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    longest = name_max - NAME_HEADROOM
    size = len(path.name.encode("utf-8", "surrogateescape"))
    if size > longest:
        raise OutputError(f"output file name is {size} bytes long; this folder takes names of at most "
                          f"{longest} bytes here (its sidecar and temporary files add {NAME_HEADROOM})")
    if len(str(path.absolute()).encode("utf-8", "surrogateescape")) + NAME_HEADROOM > path_max:
        raise OutputError(f"output path is longer than this system's limit of {path_max} bytes")


def can_create_in(folder: Path) -> bool:
    # os.access trusts permission bits; a read-only mount (or root on a locked folder) needs a probe.
    probe = folder / f".soundscape-probe-{uuid.uuid4().hex}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        return False
    try:
        os.unlink(probe)
    except OSError:
        pass
    return True


def _format_of(path: Path, fmt: str | None) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ParameterError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if suffix and suffix in FORMATS and suffix != fmt:
            raise ParameterError(f"{path.name} has the suffix .{suffix} but the format is {fmt}")
        return fmt
    if suffix not in FORMATS:
        raise ParameterError(f"unknown format for {path.name!r}: use a .wav or .flac file name")
    return suffix


# --- writing --------------------------------------------------------------------------------

def write_audio(path, audio: np.ndarray, sample_rate: int, *, fmt: str = "wav", bit_depth: int = 24,
                bext: BextInfo | None = None, ixml: str | None = None, tags: dict | None = None,
                comments: dict | None = None, overwrite: bool = False,
                hashes: dict | None = None) -> str:
    """Write ``audio`` (channels, n) float to ``path`` atomically; return its :func:`audio_sha256`.

    The file appears under its name only when complete: it is written to a hidden temporary
    file in the same folder, flushed and synced, then renamed (``overwrite``) or hard-linked
    (without ``overwrite``: this fails if the name appeared meanwhile). Any error removes the
    temporary file. Samples are rounded to ``bit_depth`` and clipped to full scale; 16-bit gets
    TPDF dither (seeded, so files are reproducible).

    Args:
        fmt: "wav" (BWF with bext/iXML) or "flac" (Vorbis comments; bext/iXML do not apply).
        bext: the bext chunk (WAV); for FLAC its description/originator/date fill the tags.
        ixml: an iXML document (:func:`make_ixml`) for WAV.
        tags: title/comment/software/date/artist/copyright/album/genre (FLAC Vorbis comments,
            WAV LIST-INFO).
        comments: further FLAC Vorbis comments (CUE_ID, EPISODE...); a FLAC also gets a seek
            table, 8 KiB of padding and ReplayGain/R128 gains from ``bext`` (:func:`flac_comments`).
        hashes: when given, receives ``file_sha256`` for a WAV, hashed as its bytes are
            written (what :func:`file_sha256` would read back, without reading the file again).

    Returns:
        The decoded-audio hash, computed from the samples as they are written (the same value
        :func:`audio_sha256` reads back from the file, without a second pass over it).
    """
    path = check_output_path(path, overwrite=overwrite, fmt=fmt)
    fmt = fmt.lower()
    if bit_depth not in BIT_DEPTHS:
        raise ParameterError(f"bit depth {bit_depth} is not supported: choose {' or '.join(map(str, BIT_DEPTHS))}")
    if not is_store(audio):  # a spilled render is read a block at a time, never whole
        audio = np.asarray(audio)
        if audio.ndim == 1:
            audio = audio[np.newaxis, :]
    if audio.ndim != 2 or audio.shape[0] < 1:
        raise AudioError(f"expected audio shaped (channels, samples), got {audio.shape}")
    tags = dict(tags or {})
    unknown = set(tags) - set(TAGS)
    if unknown:
        raise ParameterError(f"unknown tag(s) {', '.join(sorted(unknown))}: choose from {', '.join(TAGS)}")

    temp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.part"
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    digest = hashlib.sha256()
    blocks = _hashed(_pcm_blocks(audio, bit_depth), digest, shift=32 - bit_depth)
    try:
        with os.fdopen(fd, "wb") as handle:
            if fmt == "wav":
                sink = _HashingWriter(handle) if hashes is not None else handle
                _write_wav(sink, blocks, audio.shape, sample_rate, bit_depth, bext, ixml, tags)
                if hashes is not None:
                    hashes["file_sha256"] = sink.digest.hexdigest()
            else:
                _write_flac(handle, blocks, audio.shape[0], sample_rate, bit_depth, bext, tags,
                            comments, temp)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temp, path, overwrite=overwrite)
        return digest.hexdigest()
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


class _HashingWriter:
    """A file's ``write`` that also feeds every byte to a SHA-256 (WAV is written in order)."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self.handle.write(data)


def _publish(temp: Path, path: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
    else:
        try:
            os.link(temp, path)  # atomic "create if absent"
        except FileExistsError:
            raise OutputError(f"{path} exists; pass --overwrite to replace it") from None
        except OSError:
            # Filesystems without hard links: a small window between the check and the rename.
            if path.exists():
                raise OutputError(f"{path} exists; pass --overwrite to replace it") from None
            os.replace(temp, path)
            return
        os.unlink(temp)
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _pcm_blocks(audio: np.ndarray, bit_depth: int):
    """Yield interleaved int32 blocks (frames, channels), rounded and clipped to ``bit_depth``."""
    scale = np.float32(2 ** (bit_depth - 1))
    rng = np.random.default_rng(0) if bit_depth == 16 else None
    channels, frames = audio.shape
    work = np.empty(min(_FRAMES_PER_BLOCK, frames), dtype=np.float32)
    for start in range(0, frames, _FRAMES_PER_BLOCK):
        count = min(_FRAMES_PER_BLOCK, frames - start)
        block = np.empty((count, channels), dtype=np.int32)
        scratch = work[:count]
        # A spilled render is read once per block; an array is sliced where it lies.
        rows = audio[:, start:start + count] if is_store(audio) else None
        for ch in range(channels):  # one channel at a time: contiguous float work, then interleave
            source = rows[ch] if rows is not None else audio[ch, start:start + count]
            np.multiply(source, scale, out=scratch, casting="unsafe")
            if rng is not None:
                # TPDF dither, +-1 LSB: turns 16-bit rounding error into benign noise.
                scratch += rng.random(count, dtype=np.float32)
                scratch -= rng.random(count, dtype=np.float32)
            np.rint(scratch, out=scratch)
            np.clip(scratch, -scale, scale - 1, out=scratch)
            block[:, ch] = scratch
        yield block


def _hashed(blocks, digest, *, shift: int):
    """Pass PCM blocks through, feeding ``digest`` as :func:`audio_sha256` would read them back
    (interleaved little-endian int32 with the sample in the top bits)."""
    for block in blocks:
        digest.update(np.ascontiguousarray(block << shift, dtype="<i4").data)
        yield block


def _packed_24(block: np.ndarray) -> np.ndarray:
    """int32 samples -> packed little-endian 24-bit bytes (low 16 bits, then the high byte)."""
    flat = block.reshape(-1)
    packed = np.empty(flat.size * 3, dtype=np.uint8)
    # Two non-overlapping strided views into the 3-byte slots; the casts keep the low bits.
    low = np.ndarray(shape=flat.shape, dtype="<u2", buffer=packed, offset=0, strides=(3,))
    high = np.ndarray(shape=flat.shape, dtype="u1", buffer=packed, offset=2, strides=(3,))
    low[...] = flat
    high[...] = flat >> 16
    return packed


def _write_wav(handle, blocks, shape, sample_rate, bit_depth, bext, ixml, tags) -> None:
    channels, frames = shape
    width = bit_depth // 8
    fmt_chunk = struct.pack("<HHIIHH", WAVE_FORMAT_PCM, channels, sample_rate,
                            sample_rate * channels * width, channels * width, bit_depth)
    chunks = [_chunk(b"fmt ", fmt_chunk)]
    if bext is not None:
        chunks.append(_chunk(b"bext", pack_bext(bext)))
    if ixml is not None:
        chunks.append(_chunk(b"iXML", ixml.encode("utf-8")))
    if tags:
        info = b"".join(_chunk(TAGS[k], _ascii(str(v)).encode("ascii") + b"\0") for k, v in tags.items())
        chunks.append(_chunk(b"LIST", b"INFO" + info))
    data_bytes = frames * channels * width
    header = b"".join(chunks)
    riff_size = 4 + len(header) + 8 + data_bytes + (data_bytes & 1)
    if riff_size > RIFF_MAX_BYTES:
        raise OutputError(f"the audio is too long for a WAV file ({riff_size / 2**30:.1f} GiB > 4 GiB): "
                          f"use --format flac")
    handle.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + header)
    handle.write(b"data" + struct.pack("<I", data_bytes))
    for block in blocks:
        handle.write(_packed_24(block) if width == 3 else block.astype("<i2"))
    if data_bytes & 1:
        handle.write(b"\0")


def _chunk(ident: bytes, payload: bytes) -> bytes:
    """A RIFF chunk, padded to an even size (the pad byte is not counted in its size)."""
    return ident + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def _write_flac(handle, blocks, channels, sample_rate, bit_depth, bext, tags, comments, temp) -> None:
    import soundfile as sf

    from soundscape.audio.flacmeta import finish_flac

    # libsndfile encodes the frames; finish_flac writes them again behind our own metadata
    # blocks (Vorbis comments, a seek table, padding), which libsndfile cannot write.
    raw = temp.with_suffix(".raw")  # no longer than the temporary name itself
    try:
        with sf.SoundFile(raw, mode="w", samplerate=sample_rate, channels=channels,
                          subtype=f"PCM_{bit_depth}", format="FLAC") as out:
            shift = 32 - bit_depth  # soundfile takes int32 with the sample in the top bits
            for block in blocks:
                out.write(block << shift)
        with open(raw, "rb") as encoded:
            finish_flac(encoded, handle, comments=flac_comments(bext, tags, comments),
                        vendor=f"soundscape (libsndfile {sf.__libsndfile_version__})")
    finally:
        raw.unlink(missing_ok=True)


# Vorbis comment names for our tags (the names libsndfile reads back, upper-case as the
# Vorbis comment specification recommends); ENCODER is the name players show.
_VORBIS_NAMES = {"title": "TITLE", "comment": "COMMENT", "software": "SOFTWARE", "date": "DATE",
                 "artist": "ARTIST", "copyright": "COPYRIGHT", "album": "ALBUM", "genre": "GENRE"}
# ReplayGain 2.0 plays back at -18 LUFS; R128_TRACK_GAIN (RFC 7845, section 5.2.1) is relative
# to EBU R 128's -23 LUFS, in Q7.8 fixed point.
REPLAYGAIN_REFERENCE_LUFS = -18.0
R128_REFERENCE_LUFS = -23.0


def flac_comments(bext: BextInfo | None, tags: dict, extra: dict | None = None) -> dict[str, str]:
    """The Vorbis comments of a delivered FLAC: tags, the bext fields that apply, loudness gains.

    Args:
        bext: its description, originator, reference and date fill COMMENT, ORIGINATOR,
            ORIGINATOR_REFERENCE and DATE; its loudness and true peak give REPLAYGAIN_* and
            R128_TRACK_GAIN.
        tags: our tag names (:data:`TAGS`), which win over the bext fields.
        extra: further fields as given (CUE_ID, EPISODE...), written upper-case.
    """
    comments: dict[str, str] = {}
    if bext is not None:
        comments["COMMENT"] = bext.description
        comments["ORIGINATOR"] = comments["SOFTWARE"] = bext.originator
        if bext.originator_reference:
            comments["ORIGINATOR_REFERENCE"] = bext.originator_reference
        if bext.origination_date:
            comments["DATE"] = bext.origination_date
        if bext.loudness_value is not None:
            gain = REPLAYGAIN_REFERENCE_LUFS - bext.loudness_value
            comments["REPLAYGAIN_TRACK_GAIN"] = f"{gain:+.2f} dB"
            comments["REPLAYGAIN_REFERENCE_LOUDNESS"] = f"{REPLAYGAIN_REFERENCE_LUFS:.2f} LUFS"
            comments["R128_TRACK_GAIN"] = str(round((R128_REFERENCE_LUFS - bext.loudness_value) * 256))
        if bext.max_true_peak_level is not None:
            comments["REPLAYGAIN_TRACK_PEAK"] = f"{10 ** (bext.max_true_peak_level / 20):.6f}"
    for key, value in tags.items():
        comments[_VORBIS_NAMES[key]] = str(value)
    if "SOFTWARE" in comments:
        comments["ENCODER"] = comments["SOFTWARE"]
    for key, value in (extra or {}).items():
        if value not in (None, ""):
            comments[str(key).upper()] = str(value)
    return comments


# --- bext -----------------------------------------------------------------------------------

_TYPOGRAPHY = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'",
                            "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u00a0": " "})


def _ascii(text: str) -> str:
    """ASCII-fold: accents dropped ("é" -> "e"), dashes and quotes made plain, the rest "?"."""
    folded = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY))
    out = []
    for ch in folded:
        if ord(ch) < 128:
            out.append(ch)
        elif unicodedata.combining(ch):
            continue
        else:
            out.append("?")
    return "".join(out)


def _field(text: str, size: int) -> bytes:
    return _ascii(text).encode("ascii")[:size]


def _loudness_field(value: float | None) -> int:
    if value is None or not np.isfinite(value):
        return BEXT_LOUDNESS_UNSET
    return int(max(-32768, min(32766, round(value * 100.0))))


def pack_bext(info: BextInfo) -> bytes:
    """The bext chunk payload for ``info`` (EBU Tech 3285 v2 layout)."""
    for name, value, pattern in (("origination_date", info.origination_date, _DATE_RE),
                                 ("origination_time", info.origination_time, _TIME_RE)):
        if value and not pattern.match(value):
            raise ParameterError(f"bext {name} {value!r} must look like "
                                 f"{'YYYY-MM-DD' if 'date' in name else 'HH:MM:SS'}")
    if len(info.umid) > 64:
        raise ParameterError("bext UMID is at most 64 bytes")
    if not 0 <= info.time_reference < 2 ** 64:
        raise ParameterError("bext time reference must fit 64 bits")
    history = _ascii(info.coding_history).replace("\r\n", "\n").replace("\r", "\n")
    history = "".join(line + "\r\n" for line in history.split("\n") if line)
    fixed = BEXT_STRUCT.pack(
        _field(info.description, 256), _field(info.originator, 32), _field(info.originator_reference, 32),
        _field(info.origination_date, 10), _field(info.origination_time, 8),
        info.time_reference & 0xFFFFFFFF, info.time_reference >> 32, info.version,
        info.umid.ljust(64, b"\0"),
        _loudness_field(info.loudness_value), _loudness_field(info.loudness_range),
        _loudness_field(info.max_true_peak_level), _loudness_field(info.max_momentary_loudness),
        _loudness_field(info.max_short_term_loudness), b"\0" * 180,
    )
    return fixed + history.encode("ascii")


def unpack_bext(payload: bytes) -> BextInfo:
    """Parse a bext chunk payload (the inverse of :func:`pack_bext`)."""
    if len(payload) < BEXT_STRUCT.size:
        raise AudioError(f"bext chunk too short ({len(payload)} bytes, need {BEXT_STRUCT.size})")
    (desc, orig, ref, date, time_, low, high, version, umid,
     lv, lr, tp, mm, ms, _reserved) = BEXT_STRUCT.unpack_from(payload)

    def text(raw: bytes) -> str:
        return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")

    def level(raw: int) -> float | None:
        return None if raw == BEXT_LOUDNESS_UNSET or version < 2 else raw / 100.0

    return BextInfo(
        description=text(desc), originator=text(orig), originator_reference=text(ref),
        origination_date=text(date), origination_time=text(time_), time_reference=low | (high << 32),
        version=version, umid=umid.rstrip(b"\0") if version >= 1 else b"",
        loudness_value=level(lv), loudness_range=level(lr), max_true_peak_level=level(tp),
        max_momentary_loudness=level(mm), max_short_term_loudness=level(ms),
        coding_history=text(payload[BEXT_STRUCT.size:]),
    )


# --- reading --------------------------------------------------------------------------------

RIFF_FORMS = (b"RIFF", b"RF64", b"BW64")  # WAVE, and its 64-bit forms (EBU Tech 3306, ITU BS.2088)
UNSET_SIZE = 0xFFFFFFFF                   # a 32-bit size that says "see the ds64 chunk"


def riff_chunks(path) -> dict[bytes, tuple[int, int]]:
    """{chunk id: (offset of its payload, size)} of a RIFF/RF64/BW64 WAVE file; {} for other files.

    Our own small reader (used by ``soundscape verify`` and ingest's truncation check): it walks
    the chunk list and honours pad bytes; the first chunk of each id wins. In an RF64 or BW64
    file the data chunk's true size is the 64-bit one its ds64 chunk declares.
    """
    chunks: dict[bytes, tuple[int, int]] = {}
    data_size64 = None
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] not in RIFF_FORMS or head[8:12] != b"WAVE":
                return {}
            end = os.fstat(handle.fileno()).st_size
            offset = 12
            while offset + 8 <= end:
                handle.seek(offset)
                ident, size = struct.unpack("<4sI", handle.read(8))
                if ident == b"ds64" and size >= 16:
                    _riff_size, data_size64 = struct.unpack("<QQ", handle.read(16))
                if ident == b"data" and size == UNSET_SIZE and data_size64 is not None:
                    size = data_size64
                chunks.setdefault(ident, (offset + 8, size))
                offset += 8 + size + (size & 1)
    except (OSError, struct.error) as exc:
        raise AudioError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return chunks


def _read_chunk(path, ident: bytes) -> bytes | None:
    where = riff_chunks(path).get(ident)
    if where is None:
        return None
    with open(path, "rb") as handle:
        handle.seek(where[0])
        payload = handle.read(where[1])
    if len(payload) != where[1]:
        raise AudioError(f"{path}: the {ident.decode(errors='replace')} chunk is truncated")
    return payload


def read_bext(path) -> BextInfo | None:
    """The bext chunk of a WAV file, or None (no bext chunk, or not a WAV file)."""
    payload = _read_chunk(path, b"bext")
    return None if payload is None else unpack_bext(payload)


def read_ixml(path) -> str | None:
    """The iXML document of a WAV file, or None."""
    payload = _read_chunk(path, b"iXML")
    return None if payload is None else payload.rstrip(b"\0").decode("utf-8", errors="replace")


def read_audio(path) -> tuple[np.ndarray, int]:
    """Decode a WAV or FLAC file to float32 (channels, n) and its sample rate."""
    import soundfile as sf

    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"cannot read audio from {path}: {exc}") from None
    return np.ascontiguousarray(data.T), int(sample_rate)


# --- hashes ---------------------------------------------------------------------------------

def audio_sha256(path) -> str:
    """SHA-256 of the decoded PCM as interleaved little-endian int32 (24-bit values shifted left
    by 8), read in blocks: the same for WAV and FLAC, and untouched by metadata."""
    import soundfile as sf

    digest = hashlib.sha256()
    try:
        with sf.SoundFile(str(path)) as handle:
            for block in handle.blocks(blocksize=_FRAMES_PER_BLOCK, dtype="int32", always_2d=True):
                # Hash the buffer itself (no bytes copy); "<i4" is a no-op view on little-endian.
                digest.update(np.ascontiguousarray(block, dtype="<i4").data)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"cannot read audio from {path}: {exc}") from None
    return digest.hexdigest()


def file_sha256(path) -> str:
    """SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


# --- iXML -----------------------------------------------------------------------------------

_IXML_TEXT_FIELDS = ("project", "scene", "take", "tape", "note", "file_uid")


def make_ixml(fields: dict) -> str:
    """An iXML document (iXML 2.10) for a delivery.

    Args:
        fields: ``project``, ``scene``, ``take``, ``tape``, ``note``, ``file_uid`` (text, each
            optional); ``sample_rate``, ``bit_depth``, ``channels`` (optional numbers: the SPEED
            block and a TRACK_LIST); ``timecode_rate`` ("25/1", "30000/1001"),
            ``timecode_flag`` ("NDF"/"DF") and ``time_reference`` (samples since midnight) for
            SPEED; ``parameters`` (dict: the generation parameters). Other keys join the
            parameters.

    Returns:
        The XML text: the standard elements, a ``SOUNDSCAPE`` block listing every parameter as
        ``ATTR_LIST/ATTR`` (``NAME``, ``TYPE``, ``VALUE``; nested keys joined with dots), and all
        fields as JSON in ``USER``.
    """
    root = ET.Element("BWFXML")
    ET.SubElement(root, "IXML_VERSION").text = IXML_VERSION
    for key in _IXML_TEXT_FIELDS:
        if fields.get(key) not in (None, ""):
            ET.SubElement(root, key.upper()).text = _xml_text(str(fields[key]))
    if fields.get("sample_rate") or fields.get("bit_depth"):
        # iXML 2.10 SPEED: the timecode rate and flag and the file's start in samples since
        # midnight (the same value as bext TimeReference), as location recorders write it.
        speed = ET.SubElement(root, "SPEED")
        if fields.get("timecode_rate"):
            ET.SubElement(speed, "MASTER_SPEED").text = str(fields["timecode_rate"])
            ET.SubElement(speed, "CURRENT_SPEED").text = str(fields["timecode_rate"])
            ET.SubElement(speed, "TIMECODE_RATE").text = str(fields["timecode_rate"])
            ET.SubElement(speed, "TIMECODE_FLAG").text = str(fields.get("timecode_flag") or "NDF")
        if fields.get("sample_rate"):
            ET.SubElement(speed, "FILE_SAMPLE_RATE").text = str(int(fields["sample_rate"]))
        if fields.get("bit_depth"):
            ET.SubElement(speed, "AUDIO_BIT_DEPTH").text = str(int(fields["bit_depth"]))
        if fields.get("sample_rate"):
            ET.SubElement(speed, "DIGITIZER_SAMPLE_RATE").text = str(int(fields["sample_rate"]))
            stamp = int(fields.get("time_reference") or 0)
            ET.SubElement(speed, "TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI").text = str(stamp >> 32)
            ET.SubElement(speed, "TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO").text = str(stamp & 0xFFFFFFFF)
            ET.SubElement(speed, "TIMESTAMP_SAMPLE_RATE").text = str(int(fields["sample_rate"]))
    if fields.get("channels"):
        count = int(fields["channels"])
        names = ("L", "R") if count == 2 else ("M",) if count == 1 else tuple(f"CH{i + 1}" for i in range(count))
        tracks = ET.SubElement(root, "TRACK_LIST")
        ET.SubElement(tracks, "TRACK_COUNT").text = str(count)
        for i, name in enumerate(names, start=1):
            track = ET.SubElement(tracks, "TRACK")
            ET.SubElement(track, "CHANNEL_INDEX").text = str(i)
            ET.SubElement(track, "INTERLEAVE_INDEX").text = str(i)
            ET.SubElement(track, "NAME").text = name
    parameters = dict(fields.get("parameters") or {})
    known = set(_IXML_TEXT_FIELDS) | {"sample_rate", "bit_depth", "channels", "parameters",
                                      "timecode_rate", "timecode_flag", "time_reference"}
    parameters.update({k: v for k, v in fields.items() if k not in known})
    block = ET.SubElement(root, "SOUNDSCAPE")
    attrs = ET.SubElement(block, "ATTR_LIST")
    for name, value in _flatten(parameters):
        attr = ET.SubElement(attrs, "ATTR")
        ET.SubElement(attr, "NAME").text = _xml_text(name)
        ET.SubElement(attr, "TYPE").text = _json_type(value)
        ET.SubElement(attr, "VALUE").text = _xml_text(value if isinstance(value, str) else json.dumps(value))
    ET.SubElement(root, "USER").text = _xml_text(json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False))
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _flatten(data, prefix: str = ""):
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, name + ".")
        else:
            yield name, value if isinstance(value, (str, int, float, bool, type(None), list)) else str(value)


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "list"
    return "string"


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    # ElementTree escapes <, > and &; characters XML 1.0 forbids outright are dropped.
    return _XML_BAD.sub("", text)
