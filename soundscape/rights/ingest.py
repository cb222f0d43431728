"""Dataset ingest: licensed audio into the ledger as assets and versioned datasets.

Every add is one transaction: all files are hashed and decoded before the ledger is touched,
and any bad file, missing license or license conflict leaves the ledger as it was. The same
audio (same decoded-PCM sha256) under the same license is the same asset; under a different
license it is a conflict to resolve, never merged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from soundscape.canonical import canonical_json, jsonable
from soundscape.config import SAMPLES_DIR, require_data
from soundscape.errors import AudioError, LedgerError, LicenseError, ParameterError
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import DatasetRecord, apply_corrections, check_name, from_body
from soundscape.rights.store import utc_now

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3")
# The dataset soundscape's own sample library (samples/) is registered as.
SAMPLE_DATASET = "soundscape-samples"
# Per open ledger: sample-library manifests already found registered, so a batch of outputs
# reads the manifest once, not once per output.
_SAMPLES_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class AssetEntry:
    """One file to register, with its rights facts (input to :func:`add_entries`)."""

    path: Path
    license: str | None
    author: str | None = None
    source: str | None = None
    attribution: str | None = None
    title: str | None = None
    description: str | None = None
    source_id: str | None = None
    where: str = ""  # "manifest.jsonl line 3", for messages


@dataclass
class AddReport:
    """The outcome of one add: the dataset version made and what happened to each file."""

    dataset: DatasetRecord
    added: list = field(default_factory=list)     # new asset ids
    reused: list = field(default_factory=list)    # asset ids already in the ledger
    license_counts: dict = field(default_factory=dict)


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, and audio files found under folders (sorted), without duplicates.

    Raises:
        AudioError: a path that does not exist, or a folder with no audio.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise AudioError(f"{p} does not exist")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file()
                           and f.suffix.lower() in AUDIO_EXTENSIONS and not f.name.startswith("."))
            if not found:
                raise AudioError(f"{p} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        else:
            found = [p]
        for f in found:
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                out.append(f)
    if not out:
        raise AudioError("no audio files given")
    return out


def _probe(path: Path, where: str = "") -> dict:
    """Hash and decode-check one file; raise AudioError with one line when it is not audio."""
    # Decoding pulls in numpy and libsndfile; the ledger's other users (recording an output,
    # registering the sample library while nothing changed) never pay for them.
    import soundfile as sf

    from soundscape.audio.io import UNSET_SIZE, audio_sha256, file_sha256, riff_chunks

    label = f"{where}: " if where else ""
    if not path.is_file():
        raise AudioError(f"{label}{path} does not exist or is not a file")
    try:
        info = sf.info(str(path))
        audio_hash = audio_sha256(path)
        frames = info.frames
    except AudioError as exc:
        raise AudioError(f"{label}{exc}") from None
    except (RuntimeError, OSError, ValueError, TypeError, EOFError) as exc:
        raise AudioError(f"{label}{path} is not readable audio ({exc})") from None
    if frames <= 0:
        raise AudioError(f"{label}{path} holds no audio frames")
    # libsndfile reads a cut-short WAV without complaint (it shortens the frame count), so a
    # truncated copy would be registered as if whole: compare the data chunk (its ds64 size in an
    # RF64 file) with what the file holds.
    data = riff_chunks(path).get(b"data")
    if data is not None and 0 < data[1] != UNSET_SIZE:
        held = path.stat().st_size - data[0]
        if held < data[1]:
            raise AudioError(f"{label}{path} is truncated: its data chunk declares {data[1]} "
                             f"bytes of audio, the file holds {held}")
    return {"audio_sha256": audio_hash, "file_sha256": file_sha256(path),
            "duration": round(frames / info.samplerate, 6), "sample_rate": info.samplerate,
            "channels": info.channels}


def add_entries(ledger: Ledger, entries: Sequence[AssetEntry], *, dataset: str,
                version: str | None = None, description: str | None = None,
                source_manifest: str | None = None,
                manifest_file_sha256: str | None = None, base_on_latest: bool = True,
                 only_if_changed: bool = False) -> AddReport:
    """Register ``entries`` as assets and make a new version of ``dataset`` that holds them.

    The new version holds the previous version's assets too when ``base_on_latest``.

    Raises:
        LicenseError: a missing, malformed or unknown license, or a license conflict.
        AudioError: a missing or undecodable file.
        LedgerError: the dataset version exists already.
    """
    if not dataset or not dataset.strip():
        raise ParameterError("a dataset name is required (--dataset NAME)")
    check_name(dataset, "dataset name")
    if version is not None and not version.strip():
        raise ParameterError("--version is empty: give a version such as 2, or leave it out "
                             "for the next number")
    if not entries:
        raise AudioError("no audio files given")
    licenses = []
    for e in entries:
        where = e.where or str(e.path)
        licenses.append(ledger.normalize_license(e.license, what=where))
    probes = [_probe(Path(e.path), e.where) for e in entries]
    added_time = utc_now()
    report_added, report_reused = [], []
    with ledger.store.batch() as batch:
        versions = batch.find("dataset", lookup=dataset)
        latest = versions[-1] if versions else None
        if (only_if_changed and latest is not None
                and latest.get("manifest_file_sha256") == manifest_file_sha256):
            # Another process registered this very manifest a moment ago.
            return AddReport(dataset=from_body(DatasetRecord, latest))
        if version is None:
            version = _next_version(latest["version"]) if latest else "1"
        elif any(v["version"] == version for v in versions):
            raise LedgerError(f"dataset {dataset} version {version} already exists; datasets "
                              "are immutable: give a new --version")
        asset_ids: list[str] = list(latest["assets"]) if latest and base_on_latest else []
        in_set = set(asset_ids)
        for e, lic, probe in zip(entries, licenses, probes):
            same = batch.find("asset", lookup=probe["audio_sha256"])
            if same:
                old = apply_corrections(same[0], batch.find("correction", lookup=same[0]["id"]))
                if old["license"] != lic:
                    raise LicenseError(
                        f"{e.where or e.path}: the same audio is already registered as "
                        f"{old['id']} ({old['path']}) under {old['license']}, not {lic}; "
                        f"resolve it first (`soundscape ledger correct {old['id']} --license ... "
                        "--reason ...`); a license is never merged")
                asset_id = old["id"]
                report_reused.append(asset_id)
            else:
                ledger.ensure_license_records(batch, lic)
                item = batch.add("asset", jsonable({
                    **probe, "path": str(Path(e.path).resolve()), "license": lic,
                    "author": e.author, "source": e.source, "attribution": e.attribution,
                    "title": e.title or Path(e.path).stem, "description": e.description,
                    "source_id": e.source_id, "added": added_time}),
                    lookup=probe["audio_sha256"], lookup2=probe["file_sha256"])
                asset_id = item.id
                report_added.append(asset_id)
            if asset_id not in in_set:
                in_set.add(asset_id)
                asset_ids.append(asset_id)
        shas = sorted(_asset_sha(batch, a) for a in asset_ids)
        item = batch.add("dataset", jsonable({
            "name": dataset, "version": version, "assets": asset_ids, "count": len(asset_ids),
            "manifest_sha256": hashlib.sha256(canonical_json(shas).encode()).hexdigest(),
            "description": description, "source_manifest": source_manifest,
            "manifest_file_sha256": manifest_file_sha256}), lookup=dataset, lookup2=version)
    ds = from_body(DatasetRecord, item.body)
    counts: dict[str, int] = {}
    for a in ledger.assets(ds.assets):
        counts[a.license] = counts.get(a.license, 0) + 1
    return AddReport(dataset=ds, added=report_added, reused=report_reused, license_counts=counts)


def _asset_sha(batch, asset_id: str) -> str:
    for p in batch.pending:
        if p.id == asset_id:
            return p.body["audio_sha256"]
    r = batch.store.get(asset_id)
    if r is None:
        raise LedgerError(f"dataset refers to missing asset {asset_id}")
    return r.body["audio_sha256"]


def _next_version(version: str) -> str:
    if version.isdigit():
        return str(int(version) + 1)
    raise LedgerError(f"the latest version is {version!r}: give the next one with --version")


def add_paths(ledger: Ledger, paths: Sequence[str | Path], *, license: str | None,
              author: str | None, dataset: str, version: str | None = None,
              source: str | None = None, attribution: str | None = None) -> AddReport:
    """``soundscape dataset add``: files and folders under one license and author."""
    if license is None or not license.strip():
        raise LicenseError("no license given: pass --license with an SPDX id or expression "
                           "(e.g. CC0-1.0 or CC-BY-4.0)")
    if not author or not author.strip():
        raise ParameterError("no author given: pass --author NAME (the credit line needs it)")
    files = expand_paths(paths)
    entries = [AssetEntry(path=f, license=license, author=author, source=source,
                          attribution=attribution) for f in files]
    return add_entries(ledger, entries, dataset=dataset, version=version)


_TEXT_FIELDS = ("path", "license", "author", "artist", "source", "url", "source_url",
                "attribution", "title", "description")


def read_manifest(manifest: str | Path) -> list[AssetEntry]:
    """Entries from a JSONL manifest (audiocraft's convention plus license fields) or a CSV.

    JSONL lines carry ``path`` (relative to the manifest's folder) and ``license``, and may
    carry ``author``/``artist``, ``source``/``url``, ``attribution``, ``title``, ``description``
    and ``id``; a JSON sidecar beside the audio (``<stem>.json`` or ``<name>.json``) fills what
    the line leaves out. A CSV has a header row with the same column names.

    Raises:
        ParameterError: a line that cannot be read, or a missing path column.
    """
    path = Path(manifest)
    if path.is_dir():
        raise ParameterError(f"manifest {path} is a folder: give a JSONL or CSV manifest file "
                             "(or register a folder with `soundscape dataset add`)")
    if not path.is_file():
        raise ParameterError(f"manifest {path} does not exist")
    rows: list[tuple[str, dict]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ParameterError(f"manifest {path} is not a text manifest: expected JSONL or CSV "
                             "in UTF-8") from None
    except OSError as exc:
        raise ParameterError(f"manifest {path} cannot be read ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
            raise ParameterError(f"{path}: the CSV needs a header row with a 'path' column")
        for n, row in enumerate(reader, start=2):
            rows.append((f"{path.name} line {n}",
                         {k.strip(): (v.strip() if isinstance(v, str) else v)
                          for k, v in row.items() if k}))
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise ParameterError(f"{path.name} line {n}: not JSON ({exc})") from None
            if not isinstance(data, dict):
                raise ParameterError(f"{path.name} line {n}: not a JSON object")
            rows.append((f"{path.name} line {n}", data))
    entries = []
    for where, row in rows:
        if not row.get("path"):
            raise ParameterError(f"{where}: no path")
        for field in _TEXT_FIELDS:
            if row.get(field) not in (None, "") and not isinstance(row[field], str):
                raise ParameterError(f"{where}: {field!r} must be text, not "
                                     f"{json.dumps(row[field])}")
        audio = Path(row["path"])
        if not audio.is_absolute():
            audio = path.parent / audio
        side = _sidecar_of(audio)
        merged = {**side, **{k: v for k, v in row.items() if v not in (None, "")}}
        entries.append(AssetEntry(
            path=audio, license=merged.get("license"),
            author=merged.get("author") or merged.get("artist"),
            source=merged.get("source") or merged.get("url") or merged.get("source_url"),
            attribution=merged.get("attribution"), title=merged.get("title"),
            description=merged.get("description"),
            source_id=str(merged["id"]) if merged.get("id") not in (None, "") else None,
            where=where))
    if not entries:
        raise ParameterError(f"{path}: the manifest lists no files")
    return entries


def _sidecar_of(audio: Path) -> dict:
    for candidate in (audio.with_suffix(".json"), audio.with_name(audio.name + ".json")):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
                return data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                return {}
    return {}


def import_manifest(ledger: Ledger, manifest: str | Path, *, dataset: str | None = None,
                    version: str | None = None) -> AddReport:
    """``soundscape dataset import``: every file a manifest lists, in one transaction."""
    entries = read_manifest(manifest)
    data = Path(manifest).read_bytes()
    return add_entries(ledger, entries, dataset=dataset or Path(manifest).stem, version=version,
                       source_manifest=str(Path(manifest).resolve()),
                       manifest_file_sha256=hashlib.sha256(data).hexdigest())


def ensure_sample_library(ledger: Ledger, samples_dir: str | Path | None = None):
    """Register samples/ as dataset ``soundscape-samples``; a no-op while its manifest is unchanged.

    Returns:
        The dataset record, or None when there is no ``manifest.jsonl``.
    """
    folder = Path(samples_dir) if samples_dir else require_data(SAMPLES_DIR, "sample library")
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        return None
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    checked = _SAMPLES_CHECKED.setdefault(ledger, set())
    if digest in checked:
        return ledger.get_dataset(SAMPLE_DATASET)
    latest = ledger.get_dataset(SAMPLE_DATASET)
    if latest is not None and latest.manifest_file_sha256 == digest:
        checked.add(digest)
        return latest
    entries = read_manifest(manifest)
    report = add_entries(ledger, entries, dataset=SAMPLE_DATASET,
                         description="soundscape's own sample library (samples/)",
                         source_manifest=str(manifest.resolve()),
                         manifest_file_sha256=digest, base_on_latest=False, only_if_changed=True)
    checked.add(digest)
    return report.dataset


# The dataset the sound banks that outputs were played on are registered in.
SOUNDBANK_DATASET = "soundscape-soundbanks"


def ensure_sound_banks(ledger: Ledger, presets: Sequence[dict]) -> None:
    """Register every sound bank the preset uses name, once, as an asset of the dataset
    ``soundscape-soundbanks`` (the bank file is the asset; its sha256 identifies it).

    The asset carries what the bank's licence asks to keep: its title, licence, copyright
    notice (as the author) and credit line (as the attribution). A bank already registered is
    left as it is; a later version of the dataset holds every bank seen so far.
    """
    banks = {}
    for use in presets:
        sha = str(use.get("sha256") or "")
        if sha and sha not in banks:
            banks[sha] = use
    missing = {sha: use for sha, use in banks.items() if not ledger.store.find("asset", lookup=sha)}
    if not missing:
        return
    licenses = {sha: ledger.normalize_license(use.get("license"), what=f"sound bank {use.get('bank')}")
                for sha, use in missing.items()}
    added = utc_now()
    with ledger.store.batch() as batch:
        new_ids = []
        for sha, use in missing.items():
            if batch.find("asset", lookup=sha):  # registered by another process meanwhile
                continue
            ledger.ensure_license_records(batch, licenses[sha])
            item = batch.add("asset", jsonable({
                "audio_sha256": sha, "file_sha256": sha, "path": str(use.get("bank_file") or ""),
                "license": licenses[sha], "author": use.get("copyright") or None,
                "source": use.get("source") or None, "attribution": use.get("credit") or None,
                "title": use.get("bank_title") or use.get("bank"), "source_id": use.get("bank"),
                "description": "a General MIDI sound bank the composer plays", "added": added}),
                lookup=sha, lookup2=sha)
            new_ids.append(item.id)
        if not new_ids:
            return
        versions = batch.find("dataset", lookup=SOUNDBANK_DATASET)
        latest = versions[-1] if versions else None
        asset_ids = (list(latest["assets"]) if latest else []) + new_ids
        shas = sorted(_asset_sha(batch, a) for a in asset_ids)
        batch.add("dataset", jsonable({
            "name": SOUNDBANK_DATASET, "version": _next_version(latest["version"]) if latest else "1",
            "assets": asset_ids, "count": len(asset_ids),
            "manifest_sha256": hashlib.sha256(canonical_json(shas).encode()).hexdigest(),
            "description": "the sound banks soundscape's composer has played outputs on",
            "source_manifest": None, "manifest_file_sha256": None}),
            lookup=SOUNDBANK_DATASET, lookup2=_next_version(latest["version"]) if latest else "1")
