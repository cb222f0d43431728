"""Sound banks: the General MIDI SoundFonts the composer plays, where they are and what they owe.

The catalogue (``licenses/soundbanks.toml``) names each bank's files, Debian package, licence,
copyright notice and credit line. :func:`installed_banks` finds the ones on this machine; an SF3
bank is decoded once into an SF2 in the user's cache (see :mod:`.soundfont`), keyed by the
SF3's content hash, so every later load reads only the samples a render plays.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from soundscape.config import LICENSES_DIR
from soundscape.engines.composer import soundfont

log = logging.getLogger(__name__)

CATALOGUE_FILE = "soundbanks.toml"
# SOUNDSCAPE_SOUNDBANKS: "none" turns sampled instruments off; otherwise a comma-separated list
# of catalogue ids, in order of preference (default: every bank in the catalogue's order).
BANKS_ENV = "SOUNDSCAPE_SOUNDBANKS"
CACHE_ENV = "SOUNDSCAPE_CACHE"


@dataclass(frozen=True)
class BankInfo:
    """A catalogue entry: what a bank is and what using it obliges."""

    id: str
    title: str
    files: tuple[str, ...]
    package: str
    license: str
    copyright: str
    credit: str
    url: str = ""
    preset_credits: str | None = None
    notes: str = ""


@lru_cache(maxsize=1)
def catalogue() -> tuple[BankInfo, ...]:
    """Every bank the catalogue describes, in its order (the order of preference)."""
    path = LICENSES_DIR / CATALOGUE_FILE
    data = tomllib.loads(path.read_text())
    banks = []
    for bank_id, entry in data.items():
        banks.append(BankInfo(id=bank_id, title=entry["title"], files=tuple(entry["files"]),
                              package=entry["package"], license=entry["license"],
                              copyright=entry["copyright"], credit=entry["credit"],
                              url=entry.get("url", ""), preset_credits=entry.get("preset_credits"),
                              notes=entry.get("notes", "")))
    return tuple(banks)


@dataclass
class SoundBank:
    """An installed bank: its catalogue entry, its file and what that file holds."""

    info: BankInfo
    path: Path
    sha256: str
    presets: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def preset_name(self, bank: int, program: int) -> str | None:
        return self.presets.get((bank, program))

    def loadable_path(self) -> Path:
        """The file FluidSynth loads: the bank itself, or its decoded SF2 for an SF3."""
        if soundfont.version(self.path)[0] < 3:
            return self.path
        return decoded_copy(self.path, self.sha256)

    def preset_credit(self, bank: int, program: int) -> str | None:
        """The bank's own sample credit for a preset, where it publishes one."""
        if not self.info.preset_credits:
            return None
        return _preset_credits(self.info.preset_credits).get((bank, program))


def cache_dir() -> Path:
    """Where derived files (decoded banks, file hashes) are kept: ``$SOUNDSCAPE_CACHE`` or the
    per-user cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("soundscape", appauthor=False))


def file_sha256(path: Path) -> str:
    """SHA-256 of a (large) file, remembered in the cache by path, size and modification time."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:32]
    memo = cache_dir() / "hashes" / f"{key}.json"
    try:
        return json.loads(memo.read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"path": str(path), "sha256": value}))
    except OSError:
        pass  # an unwritable cache costs a re-hash next time, nothing more
    return value


def decoded_copy(path: Path, sha256: str) -> Path:
    """The decoded SF2 of an SF3 bank, made on first use (about 15 s for MuseScore_General)."""
    target = cache_dir() / "soundbanks" / f"{path.stem}-{sha256[:16]}.sf2"
    if target.exists():
        return target
    log.warning("decoding sound bank %s for fast loading (once, about 15 s) into %s",
                path.name, target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.part{os.getpid()}")
    try:
        soundfont.decode_sf3(path, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


@lru_cache(maxsize=4)
def _preset_credits(source: str) -> dict[tuple[int, int], str]:
    """(bank, program) -> sample credit, from a bank's published sample-sources table.

    Rows that say "same info as 000:048 ..." take the credit of the preset they name.
    """
    path = Path(source)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except OSError:
        return {}
    text = raw.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    if lines and lines[0].startswith("sep="):
        lines = lines[1:]
    credits: dict[tuple[int, int], str] = {}
    refs: dict[tuple[int, int], tuple[int, int]] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        try:
            key = (int(row["Bank #"]), int(row["Preset #"]))
        except (KeyError, ValueError):
            continue
        credit = " ".join((row.get("Sample Credit") or "").split())
        if credit:
            credits[key] = credit
        ref = re.search(r"same info as (\d{3}):(\d{3})", row.get("Details") or "")
        if ref:
            refs[key] = (int(ref.group(1)), int(ref.group(2)))
    for key, target in refs.items():
        if key not in credits and target in credits:
            credits[key] = credits[target]
    return credits


def _wanted_ids() -> list[str] | None:
    """Bank ids asked for by ``$SOUNDSCAPE_SOUNDBANKS`` ([] for "none"), or None for all."""
    env = os.environ.get(BANKS_ENV)
    if env is None:
        return None
    if env.strip().lower() in ("", "none", "off"):
        return []
    return [part.strip() for part in env.split(",") if part.strip()]


def installed_banks(ids: list[str] | None = None) -> tuple[list[SoundBank], list[BankInfo]]:
    """The catalogue's banks found on this machine, and the ones that are missing.

    Args:
        ids: catalogue ids in order of preference; None means ``$SOUNDSCAPE_SOUNDBANKS`` or,
            unset, the whole catalogue. An empty list turns banks off (nothing is missing).
    """
    wanted = _wanted_ids() if ids is None else list(ids)
    known = {b.id: b for b in catalogue()}
    if wanted is None:
        wanted = list(known)
    found, missing = [], []
    for bank_id in wanted:
        info = known.get(bank_id)
        if info is None:
            raise ValueError(f"unknown sound bank {bank_id!r}: the catalogue has {', '.join(known)}")
        path = next((Path(f) for f in info.files if Path(f).is_file()), None)
        if path is None:
            missing.append(info)
            continue
        found.append(_open_bank(info, path))
    return found, missing


@lru_cache(maxsize=8)
def _open_bank(info: BankInfo, path: Path) -> SoundBank:
    presets = {(p.bank, p.program): p.name for p in soundfont.read_presets(path)}
    return SoundBank(info=info, path=path, sha256=file_sha256(path), presets=presets)
