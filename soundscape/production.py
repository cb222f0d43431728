"""Cue-sheet vocabulary: usage codes, frame rates and timecodes, safe file names, the cue facts.

What broadcasters and performing-rights societies print on a music cue sheet, in one place:
cue lists (:mod:`soundscape.batch.cuelist`) validate against it and the reports
(:mod:`soundscape.reports`) print with it, so the two never disagree.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, fields
from fractions import Fraction

from soundscape.errors import ParameterError

DEFAULT_POLICY = "broadcast-commercial"
DEFAULT_PRESET = "ebu-r128"
DEFAULT_FRAME_RATE = 25.0

# The usage (a.k.a. "use") column of a music cue sheet, as the performing-rights societies
# (ASCAP, BMI, PRS, SACEM) and cue-sheet services read it. One table, so help text, validation
# and docs never disagree.
USAGE_CODES: dict[str, str] = {
    "BI": "Background instrumental: underscore, not the focus of attention",
    "BV": "Background vocal: vocal underscore, not the focus of attention",
    "BG": "Background: not the focus of the scene (societies that do not split BI/BV)",
    "VI": "Visual instrumental: the performer is seen playing on screen",
    "VV": "Visual vocal: the singer is seen on screen",
    "VS": "Visual source: music from a source seen on screen (a radio, a band)",
    "FI": "Featured instrumental: the focus of the scene, e.g. over a montage",
    "FV": "Featured vocal: a vocal that is the focus of the scene",
    "MT": "Main title: the programme's title theme",
    "ET": "End title: music over the end credits",
    "OT": "Opening theme: music over the opening credits roll",
    "CT": "Closing theme: music over the closing credits roll",
    "EE": "Logo: ident of the production company or distributor",
}

# Frame rates in use for broadcast and cinema (SMPTE ST 12-1). Drop-frame timecode
# (HH:MM:SS;FF) exists only at 29.97 and 59.94.
FRAME_RATES: tuple[float, ...] = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0)
DROP_FRAME_RATES: tuple[float, ...] = (29.97, 59.94)
# Exact rates behind the broadcast labels (SMPTE ST 12-1): 29.97 is 30000/1001 and so on.
_EXACT_RATES = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001),
                59.94: Fraction(60000, 1001)}
# HH:MM:SS:FF; ';' before FF is drop-frame. Cue lists take ':' and ';', cue sheets read '.' too
# (some editing systems print it).
_TIMECODE_RE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})([:;.])(\d{2})$")

# Names Windows reserves in any folder, with or without an extension.
RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
    + ["COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"]
)
# Part of a name kept to stay far below every file system's 255-byte limit, room left for
# the variant suffix, the extension and the ".json" sidecar.
MAX_NAME_PART = 80

# Longest texts a cue may carry: they travel into iXML, bext, sidecars, the ledger and cue sheets,
# so a pasted novel would bloat every one of them. A prompt is a sentence or a paragraph;
# titles and names are a line.
MAX_PROMPT_CHARS = 1000
MAX_TITLE_CHARS = 200
MAX_NAME_CHARS = 100


def check_length(value: str | None, what: str, limit: int) -> None:
    """Refuse a text longer than ``limit`` characters, saying which and how long."""
    if value is not None and len(str(value)) > limit:
        raise ParameterError(f"{what} is {len(str(value)):,} characters long; the longest "
                             f"allowed is {limit:,}")


# Production types as society cue-sheet forms list them.
PRODUCTION_TYPES = ("series", "film", "documentary", "special", "short", "commercial", "trailer",
                    "promo", "podcast", "other")
# CISAC role codes for the parties of a work (CWR's "writer designation" and publisher types).
CONTRIBUTOR_ROLES = {
    "C": "composer", "A": "author (lyricist)", "CA": "composer and author", "AR": "arranger",
    "AD": "adaptor", "TR": "translator", "E": "original publisher", "SE": "sub-publisher",
    "AM": "administrator",
}
PUBLISHER_ROLES = ("E", "SE", "AM")

# Where a cue's facts travel in its recorded parameters (``parameters.params.cue``).
CUE_PARAMS_KEY = "cue"


@dataclass(frozen=True, kw_only=True)
class CueFacts:
    """What a cue sheet prints about one cue beyond the output record's own fields.

    Production title, episode, air date and territories are fields of the output record; these
    travel with the cue's parameters (docs/reports.md). Engines ignore them. Values are kept as
    given, so what is recorded is what was written in the cue list.
    """

    title: str | None = None
    usage: str | None = None
    timecode_in: str | None = None
    episode_title: str | None = None
    company: str | None = None
    publisher: str | None = None
    frame_rate: float | None = None
    policy: str | None = None
    filing: dict | None = None                 # production facts for a society filing
    contributors: tuple[dict, ...] | None = None  # human contributors: name, role, society, ipi, share

    def __post_init__(self) -> None:
        for name in ("title", "episode_title", "company", "publisher"):
            check_length(getattr(self, name), name.replace("_", " "), MAX_TITLE_CHARS)

    def to_params(self) -> dict:
        """The facts as recorded: set fields only, in this order."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if "contributors" in out:
            out["contributors"] = [dict(c) for c in out["contributors"]]
        return out


def usage_table() -> str:
    """The usage codes as a Markdown table (for docs and ``--help``)."""
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| {code} | {meaning} |" for code, meaning in USAGE_CODES.items()]
    return "\n".join(rows)


def usage_meaning(code: str) -> str:
    """The short meaning of a usage code ("Main title"), or "" for an unknown one."""
    return USAGE_CODES.get(code.upper(), "").split(":")[0]


# ---- timecodes --------------------------------------------------------------------------------

def parse_timecode(text: str, frame_rate: float) -> tuple[int, int, int, int]:
    """Check an SMPTE timecode ``HH:MM:SS:FF`` (``;`` before FF for drop-frame) at ``frame_rate``.

    Returns:
        (hours, minutes, seconds, frames).

    Raises:
        ParameterError: malformed, out of range, or a frame number drop-frame skips.
    """
    m = _TIMECODE_RE.match(str(text).strip())
    if not m or m.group(4) == ".":
        raise ParameterError(f"{text!r} is not a timecode")
    hours, minutes, seconds, sep, frames = (int(m.group(1)), int(m.group(2)), int(m.group(3)),
                                            m.group(4), int(m.group(5)))
    nominal = round(frame_rate)
    if minutes > 59 or seconds > 59:
        raise ParameterError(f"{text!r}: minutes and seconds run 00-59")
    if frames >= nominal:
        raise ParameterError(f"{text!r}: frame {frames:02d} does not exist at {frame_rate:g} fps "
                             f"(frames run 00-{nominal - 1:02d})")
    if sep == ";":
        if frame_rate not in DROP_FRAME_RATES:
            raise ParameterError(f"{text!r}: drop-frame timecode (;) exists only at 29.97 and 59.94 fps")
        dropped = 2 if nominal == 30 else 4
        if seconds == 0 and minutes % 10 != 0 and frames < dropped:
            raise ParameterError(f"{text!r}: drop-frame timecode skips frames 00-{dropped - 1:02d} "
                                 f"at the start of every minute not divisible by 10")
    return hours, minutes, seconds, frames


def timecode_to_frames(text: str, frame_rate: float) -> int:
    """Frame count of an SMPTE timecode ``HH:MM:SS:FF`` (``;`` before FF: drop-frame).

    Raises:
        ParameterError: the text is not a timecode.
    """
    m = _TIMECODE_RE.match(str(text).strip())
    if not m:
        raise ParameterError(f"{text!r} is not a timecode (HH:MM:SS:FF)")
    h, mi, s, sep, f = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
    nominal = round(frame_rate)
    frames = (h * 3600 + mi * 60 + s) * nominal + f
    if sep == ";" and round(frame_rate, 2) in DROP_FRAME_RATES:
        minutes = 60 * h + mi
        frames -= (2 if nominal == 30 else 4) * (minutes - minutes // 10)
    return frames


def frames_to_timecode(frames: int, frame_rate: float, *, drop: bool = False) -> str:
    """SMPTE timecode of a frame count; drop-frame (``;``) only at 29.97 and 59.94 fps."""
    nominal = round(frame_rate)
    drop = drop and round(frame_rate, 2) in DROP_FRAME_RATES
    if drop:
        # Drop-frame skips the first 2 (4 at 59.94) frame numbers of every minute not divisible
        # by ten, so the labels keep pace with the clock (SMPTE ST 12-1 §5.2.2).
        d = 2 if nominal == 30 else 4
        per_ten = nominal * 600 - 9 * d
        per_minute = nominal * 60 - d
        tens, rest = divmod(frames, per_ten)
        frames += 9 * d * tens + (d * ((rest - d) // per_minute) if rest > d else 0)
    f = frames % nominal
    total_seconds = frames // nominal
    h, rem = divmod(total_seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}{';' if drop else ':'}{f:02d}"


def exact_rate(frame_rate: float) -> Fraction:
    """The exact frame rate a nominal one stands for (29.97 is 30000/1001 frames a second)."""
    return _EXACT_RATES.get(round(frame_rate, 3), Fraction(frame_rate).limit_denominator(1001))


def timecode_to_samples(text: str, frame_rate: float, sample_rate: int) -> int:
    """Samples since midnight at ``sample_rate`` of a timecode: a BWF ``TimeReference``.

    A DAW's "spot to original time" places the file there (EBU Tech 3285, TimeReference).
    """
    frames = timecode_to_frames(text, frame_rate)
    return round(frames * Fraction(sample_rate) / exact_rate(frame_rate))


def seconds_to_frames(seconds: float, frame_rate: float) -> int:
    """Frames spanned by ``seconds`` of real time at ``frame_rate`` (nearest frame)."""
    return round(Fraction(seconds).limit_denominator(10**6) * exact_rate(frame_rate))


def clock(seconds: float) -> str:
    """``MM:SS`` (``H:MM:SS`` from an hour), rounded to the nearest second, as cue sheets print."""
    total = int(round(seconds))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


# ---- file names -------------------------------------------------------------------------------

def safe_name_part(text: str) -> str:
    """``text`` as a file-name fragment valid on every common file system.

    Accents are folded to ASCII; anything but letters, digits, ``-``, ``_`` and ``.`` becomes
    ``_`` (so no path separator, control character or Windows-forbidden character survives);
    runs of dots collapse (no ``..``); leading and trailing dots, spaces and underscores go (a
    leading dot would hide the file, a trailing one is dropped by Windows); a reserved device
    name (CON, NUL, COM1...) gets a ``_`` appended; very long text is cut and keeps a short
    hash so distinct inputs stay distinct.
    """
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", folded)
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    cleaned = re.sub(r"_{2,}", "_", cleaned).strip("._ -")
    if not cleaned:
        cleaned = "x" + hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:8]
    if len(cleaned) > MAX_NAME_PART:
        digest = hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:8]
        cleaned = cleaned[:MAX_NAME_PART - 9].rstrip("._-") + "-" + digest
    if cleaned.split(".")[0].upper() in RESERVED_NAMES:
        cleaned = cleaned.split(".")[0] + "_" + cleaned[len(cleaned.split(".")[0]):]
    return cleaned
