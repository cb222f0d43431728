"""The sample library: soundscape's own CC0 samples, what each one is, and choosing among them.

The library is a folder (``samples/`` in the repository, :data:`soundscape.config.SAMPLES_DIR`)
holding FLAC files, one JSON sidecar per file in audiocraft's music-dataset convention
(``<name>.json`` beside ``<name>.flac``: title, description, moods, keywords, key, bpm,
instrument... plus kind, root note, loop, license, author, source and sha256), and
``manifest.jsonl``: one audiocraft ``AudioMeta`` line per file (``path`` relative to the folder)
extended with id, license, sha256, kind and title. The manifest is what the rights ledger
registers as a dataset (:func:`soundscape.rights.ingest.ensure_sample_library`).
``samples/make_samples.py`` makes it all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from soundscape.config import SAMPLES_DIR, require_data
from soundscape.errors import AudioError, ParameterError
from soundscape.render import SampleUse
from soundscape.spec import Key, parse_key

MANIFEST_NAME = "manifest.jsonl"
SAMPLE_RATE = 48_000
KINDS: tuple[str, ...] = ("pad", "drone", "bell", "texture", "phrase")
REGENERATE_HINT = "regenerate it with `python samples/make_samples.py`"
_MANIFEST_FIELDS = ("path", "duration", "sample_rate", "id", "sha256")

# Selection weights: a requested texture or instrument outweighs mood, which outweighs key fit; a
# second pick of a kind already chosen must bring something new or it loses a weight of 2.5.
_TEXTURE_WEIGHT = 4.0
_INSTRUMENT_WEIGHT = 3.0
_MOOD_WEIGHT = 3.0
_SAME_KIND_PENALTY = 2.5
# Key bonus of a sample that fits only once transposed (select(transpose=True)).
_TRANSPOSED_FIT = 0.5
# Random jitter added to each score: below 1, so it only reorders entries that score the same.
_JITTER = 0.9


@dataclass(frozen=True)
class SampleEntry:
    """One sample of the library, as its sidecar describes it.

    ``key`` is a key name ("D minor") for pads and phrases and None for the rest; ``root_note``
    (MIDI) is set for everything pitched (pads, drones, bells, plucks, phrases) and None for
    textures. ``path`` is absolute.
    """

    id: str
    path: Path
    title: str
    description: str
    moods: tuple[str, ...]
    keywords: tuple[str, ...]
    key: str | None
    root_note: int | None
    bpm: float | None
    instrument: str
    kind: str
    license: str
    sha256: str
    duration: float
    sample_rate: int
    channels: int
    loop: bool

    @property
    def pitched(self) -> bool:
        return self.key is not None or self.root_note is not None

    def as_use(self) -> SampleUse:
        """The lineage record of this sample, for :class:`soundscape.render.Lineage`."""
        return SampleUse(id=self.id, sha256=self.sha256, license=self.license,
                         path=f"samples/{self.path.name}")


class SampleLibrary:
    """The samples of one library folder, loaded from its manifest and sidecars."""

    def __init__(self, root: Path, entries: list[SampleEntry], manifest_sha256: str | None = None):
        self.root = Path(root)
        self.entries = list(entries)
        self.manifest_sha256 = manifest_sha256
        self._by_id = {e.id: e for e in self.entries}

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SampleLibrary":
        """Read a library folder (default :data:`soundscape.config.SAMPLES_DIR`).

        A missing folder, or one with no manifest, gives an empty library.

        Raises:
            AudioError: the manifest or a sidecar is not valid JSON, lacks a required field, or a
                sidecar is missing; the message names the file and line.
        """
        if path is None:  # the library soundscape ships: missing means a broken install
            path = require_data(SAMPLES_DIR, "sample library")
        root = Path(path)
        manifest = root / MANIFEST_NAME
        if not manifest.is_file():
            return cls(root, [])
        data = manifest.read_bytes()
        entries: list[SampleEntry] = []
        seen: set[str] = set()
        for number, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not raw.strip():
                continue
            where = f"{manifest}, line {number}"
            try:
                line = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise AudioError(f"{where}: not valid JSON ({exc.msg}); {REGENERATE_HINT}") from None
            if not isinstance(line, dict):
                raise AudioError(f"{where}: expected a JSON object; {REGENERATE_HINT}")
            missing = [f for f in _MANIFEST_FIELDS if f not in line]
            if missing:
                raise AudioError(f"{where}: missing {', '.join(missing)}; {REGENERATE_HINT}")
            if line["id"] in seen:
                raise AudioError(f"{where}: sample id {line['id']!r} listed twice")
            seen.add(line["id"])
            entries.append(_entry(root, line, where))
        return cls(root, entries, hashlib.sha256(data).hexdigest())

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[SampleEntry]:
        return iter(self.entries)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def get(self, id: str) -> SampleEntry:
        """The entry with this id.

        Raises:
            KeyError: no sample has that id (the message lists the known ids).
        """
        try:
            return self._by_id[id]
        except KeyError:
            raise KeyError(f"no sample {id!r} in {self.root}; known: {', '.join(self._by_id)}") from None

    def select(self, *, mood: str, key: Key | None, textures=(), instruments=(),
               rng: np.random.Generator, limit: int = 2,
               transpose: bool = False) -> list[SampleEntry]:
        """Choose up to ``limit`` samples that suit a cue, best first.

        A texture sample is eligible only when it matches a requested texture. Pitched samples
        must fit ``key``: pads and phrases share its tonic and mode, drones sit on its tonic,
        bells and plucks on a note of its scale (``key=None`` accepts them all). With
        ``transpose=True`` (a caller that repitches samples to the key), pads and phrases in the
        same mode on another tonic, and drones, bells and plucks on any root, are accepted too,
        with a smaller key bonus than exact fits. Eligible entries
        score for each requested texture or instrument they match and for the mood; entries that
        match none of these are left out. Ties are broken by ``rng`` (one draw per entry, so the
        result is deterministic for a given generator state), and a second sample of a kind
        already chosen has to bring a texture or instrument not yet covered to keep its score.

        Args:
            mood: a mood name from :data:`soundscape.spec.MOODS`.
            key: the cue's :class:`soundscape.spec.Key`, or None to ignore keys.
            textures: requested texture names (``spec.TEXTURES``: rain, wind, ocean...).
            instruments: requested instrument names (``spec.INSTRUMENTS``: pad, drone, bells...).
            rng: the generator that breaks ties.
            limit: the most samples to return.
            transpose: also accept pitched samples that fit once transposed to the key's tonic.

        Returns:
            The chosen entries, best first; empty when nothing fits.
        """
        candidates: list[tuple[float, SampleEntry, frozenset[str]]] = []
        jitter = rng.uniform(0.0, _JITTER, len(self.entries))
        for entry, noise in zip(self.entries, jitter):
            fit = _key_fit(entry, key, transpose=transpose)
            if fit is None:
                continue
            words = set(entry.keywords) | {entry.instrument}
            tex = {t for t in textures if t in words}
            if entry.kind == "texture" and not tex:
                continue
            ins = {i for i in instruments if i in words}
            relevance = (_TEXTURE_WEIGHT * len(tex) + _INSTRUMENT_WEIGHT * len(ins)
                         + (_MOOD_WEIGHT if mood in entry.moods else 0.0))
            if relevance <= 0:
                continue
            matched = frozenset({f"texture:{t}" for t in tex} | {f"instrument:{i}" for i in ins})
            candidates.append((relevance + fit + float(noise), entry, matched))
        chosen: list[SampleEntry] = []
        covered: set[str] = set()
        while candidates and len(chosen) < limit:
            kinds = {e.kind for e in chosen}

            def effective(item):
                score, entry, matched = item
                if entry.kind in kinds and not (matched - covered):
                    score -= _SAME_KIND_PENALTY
                return score

            best = max(candidates, key=effective)
            candidates.remove(best)
            chosen.append(best[1])
            covered |= best[2]
        return chosen

    def read(self, entry: SampleEntry) -> np.ndarray:
        """The sample's audio as float32 ``(channels, n)`` at 48 kHz.

        Raises:
            AudioError: the file is missing, cannot be decoded, or is not 48 kHz.
        """
        import soundfile as sf

        if not entry.path.is_file():
            raise AudioError(f"sample {entry.id}: file {entry.path} is missing; {REGENERATE_HINT}")
        try:
            data, rate = sf.read(str(entry.path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"sample {entry.id}: cannot decode {entry.path} ({exc}); "
                             f"{REGENERATE_HINT}") from None
        if rate != SAMPLE_RATE:
            raise AudioError(f"sample {entry.id}: {entry.path} is {rate} Hz, the library is "
                             f"{SAMPLE_RATE} Hz; {REGENERATE_HINT}")
        return np.ascontiguousarray(data.T)

    def verify(self) -> list[str]:
        """Check every file against its records.

        Returns:
            One line per problem (a missing file; a file whose sha256 differs from its sidecar;
            a manifest line whose sha256 or license differs from the sidecar); empty when fine.
        """
        problems: list[str] = []
        manifest = self._manifest_lines()
        for entry in self.entries:
            listed = manifest.get(entry.id, {})
            if listed.get("sha256") != entry.sha256:
                problems.append(f"{entry.id}: manifest sha256 {listed.get('sha256')} differs from "
                                f"the sidecar's {entry.sha256}")
            if listed.get("license", entry.license) != entry.license:
                problems.append(f"{entry.id}: manifest license {listed.get('license')} differs "
                                f"from the sidecar's {entry.license}")
            if not entry.path.is_file():
                problems.append(f"{entry.id}: file {entry.path} is missing")
                continue
            actual = _sha256_file(entry.path)
            if actual != entry.sha256:
                problems.append(f"{entry.id}: {entry.path.name} has sha256 {actual}, "
                                f"its sidecar says {entry.sha256}")
        return problems

    def write_audiocraft_manifest(self, dest: str | Path) -> Path:
        """Write the manifest as audiocraft's ``load_audio_meta`` reads it, with absolute paths.

        audiocraft resolves a relative ``path`` against the folder training was launched from
        (``dora.git_save.to_absolute_path``), not against the manifest's folder, so a manifest
        meant for training names each file absolutely. The sidecars stay where audiocraft looks
        for them: beside each file, same stem, ``.json``.
        """
        dest = Path(dest)
        lines = [json.dumps({"path": str(e.path.resolve()), "duration": e.duration,
                             "sample_rate": e.sample_rate, "amplitude": None, "weight": None,
                             "info_path": None}) for e in self.entries]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("".join(line + "\n" for line in lines))
        return dest

    def _manifest_lines(self) -> dict[str, dict]:
        lines: dict[str, dict] = {}
        if self.manifest_path.is_file():
            for raw in self.manifest_path.read_text().splitlines():
                if raw.strip():
                    line = json.loads(raw)
                    lines[line["id"]] = line
        return lines


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _words(value) -> tuple[str, ...]:
    """audiocraft keeps keywords as "a, b, c" (and moods as a list); accept either form."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(v).strip().lower() for v in items if str(v).strip())


def _entry(root: Path, line: dict, where: str) -> SampleEntry:
    """Build an entry from a manifest line and the sidecar beside its file."""
    path = root / line["path"]
    side_path = path.with_suffix(".json")
    try:
        side = json.loads(side_path.read_text())
    except FileNotFoundError:
        raise AudioError(f"{where}: sidecar {side_path} is missing; {REGENERATE_HINT}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AudioError(f"{side_path}: not valid JSON ({exc}); {REGENERATE_HINT}") from None
    try:
        bpm = side.get("bpm")
        root_note = side.get("root_note")
        return SampleEntry(
            id=str(line["id"]),
            path=path.resolve(),
            title=str(side.get("title") or line.get("title") or line["id"]),
            description=str(side.get("description") or ""),
            moods=_words(side.get("moods")),
            keywords=_words(side.get("keywords")),
            key=side.get("key") or None,
            root_note=int(root_note) if root_note is not None else None,
            bpm=float(bpm) if bpm not in (None, "") else None,
            instrument=str(side.get("instrument") or "").lower(),
            kind=str(side.get("kind") or line.get("kind") or ""),
            license=str(side.get("license") or line.get("license") or ""),
            sha256=str(side.get("sha256") or line["sha256"]),
            duration=float(side.get("duration", line["duration"])),
            sample_rate=int(side.get("sample_rate", line["sample_rate"])),
            channels=int(side.get("channels", 1)),
            loop=bool(side.get("loop", False)),
        )
    except (TypeError, ValueError) as exc:
        raise AudioError(f"{side_path}: malformed field ({exc}); {REGENERATE_HINT}") from None


def _key_fit(entry: SampleEntry, key: Key | None, *, transpose: bool = False) -> float | None:
    """How well a sample sits in ``key``: None when it clashes, else a bonus (0 unpitched).

    Exact fits score 2 (same tonic and mode; a drone or one-shot on the tonic), a one-shot on
    another scale note 1, and, with ``transpose``, anything that fits after repitching 0.5.
    """
    if not entry.pitched or key is None:
        return 0.0
    if entry.key is not None:
        try:
            own = parse_key(entry.key)
        except ParameterError:
            return None
        if own.mode != key.mode:
            return None
        return 2.0 if own.tonic == key.tonic else (_TRANSPOSED_FIT if transpose else None)
    pc = entry.root_note % 12
    if pc == key.tonic:
        return 2.0
    if entry.kind != "drone" and pc in key.scale:
        return 1.0
    return _TRANSPOSED_FIT if transpose else None
