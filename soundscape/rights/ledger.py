"""The rights ledger: every license, asset, dataset, model and output, append-only and signed.

:class:`Ledger` is the one writer of rights facts. Each fact is a record whose canonical JSON
body is a leaf of an RFC 6962 Merkle tree (see :mod:`soundscape.rights.store` for storage and
verification, :mod:`soundscape.rights.merkle` for the tree). Lineage runs output -> model ->
datasets -> assets -> licenses, and output -> samples -> licenses; :meth:`Ledger.clear` judges
that lineage against a clearance policy.

Crash safety for outputs: the pipeline journals a pending entry (:meth:`Ledger.pending_begin`)
before writing a file, records it once the file is in place, then ends the entry. A crash in
between leaves a pending entry that :meth:`Ledger.reconcile` resolves: a complete file is
recorded, an incomplete one has its temp files removed. A record never points to a file that
was never completed.
"""

from __future__ import annotations

import json
import os
import socket
import time as _time
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Iterator, Sequence

from soundscape.errors import LedgerError, LicenseError, ParameterError, SoundscapeError
from soundscape.rights import merkle
from soundscape.canonical import canonical_json, jsonable
from soundscape.rights.store import Checkpoint, Store, StoredRecord, VerifyReport

SAMPLE_DATASET = "soundscape-samples"
PENDING_DIR = "pending"


# ---- records ------------------------------------------------------------------------------

def _from_body(cls, record: StoredRecord | dict):
    body = record.body if isinstance(record, StoredRecord) else record
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in body.items() if k in names}, body=body)


@dataclass(frozen=True)
class LicenseRecord:
    """A snapshot of a license's terms as they were when first used."""

    id: str
    seq: int
    license_id: str = ""
    terms: dict = field(default_factory=dict)
    recorded: str = ""
    body: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class AssetRecord:
    """One licensed audio file. ``audio_sha256`` (decoded PCM) identifies it across copies."""

    id: str
    seq: int
    audio_sha256: str = ""
    file_sha256: str = ""
    path: str = ""
    license: str = ""
    author: str | None = None
    source: str | None = None
    attribution: str | None = None
    title: str | None = None
    description: str | None = None
    source_id: str | None = None
    duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    added: str = ""
    recorded: str = ""
    corrections: list = field(default_factory=list)
    body: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.title or Path(self.path).name


@dataclass(frozen=True)
class DatasetRecord:
    """A named, versioned, immutable set of assets; ``manifest_sha256`` fixes its content."""

    id: str
    seq: int
    name: str = ""
    version: str = ""
    manifest_sha256: str = ""
    assets: list = field(default_factory=list)
    description: str | None = None
    source_manifest: str | None = None
    manifest_file_sha256: str | None = None
    recorded: str = ""
    body: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ModelEntry:
    """What the model registrar knows about a model (input to :meth:`Ledger.register_model`).

    ``datasets`` are dataset names (latest version) or ``name@version``. ``license`` is the
    model's own license expression; ``base_model_license`` is filled from the base-model
    registry when left None and the base model is a known published one.
    """

    name: str
    engine: str = "musicgen"
    lm_sha256: str | None = None
    compression_sha256: str | None = None
    path: str | None = None
    architecture: dict | str | None = None
    base_model: str | None = None
    base_model_license: str | None = None
    datasets: Sequence[str] = ()
    license: str | None = None
    lineage_unknown: bool = False
    training: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRecord:
    """A registered model. ``datasets`` are ``{"name", "version", "id", "assets"}`` dicts."""

    id: str
    seq: int
    name: str = ""
    engine: str = ""
    lm_sha256: str | None = None
    compression_sha256: str | None = None
    path: str | None = None
    architecture: dict | str | None = None
    base_model: str | None = None
    base_model_license: str | None = None
    base_model_source: str | None = None
    datasets: list = field(default_factory=list)
    license: str | None = None
    lineage_unknown: bool = False
    training: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    recorded: str = ""
    corrections: list = field(default_factory=list)
    body: dict = field(default_factory=dict, repr=False, compare=False)


_OUTPUT_FIELDS = (
    "audio_sha256", "file_sha256", "path", "engine", "engine_version", "model", "model_sha256",
    "prompt", "cue_kind", "parameters", "intent", "seed", "samples", "ingredients", "created",
    "duration", "format", "sample_rate", "bit_depth", "channels", "mastering", "production",
    "episode", "cue_id", "air_date", "territories", "content_key", "soundscape_version")


@dataclass(frozen=True)
class OutputEntry:
    """A delivered output to record (input to :meth:`Ledger.record_output`).

    ``samples`` and ``ingredients`` are ``{"id", "sha256", "license", "path"}`` dicts as the
    sidecar lists them; the ledger links each to its registered asset.
    """

    audio_sha256: str
    file_sha256: str
    path: str
    engine: str
    engine_version: str = ""
    model: str | None = None
    model_sha256: str | None = None
    prompt: str = ""
    cue_kind: str = ""  # bed | jingle | sting ("kind" is the record's own kind)
    parameters: dict = field(default_factory=dict)
    intent: dict = field(default_factory=dict)
    seed: int | None = None
    samples: Sequence[dict] = ()
    ingredients: Sequence[dict] = ()
    created: str = ""
    duration: float | None = None
    format: str | None = None
    sample_rate: int | None = None
    bit_depth: int | None = None
    channels: int | None = None
    mastering: dict = field(default_factory=dict)
    production: str | dict | None = None
    episode: str | None = None
    cue_id: str | None = None
    air_date: str | None = None
    territories: Sequence[str] = ()
    content_key: str | None = None
    soundscape_version: str | None = None

    @classmethod
    def from_sidecar(cls, sidecar: dict, audio_path: str | Path) -> "OutputEntry":
        """The entry for a delivered file from its sidecar (docs/sidecar.md)."""
        try:
            engine = sidecar.get("engine") or {}
            production = sidecar.get("production")
            air_date = sidecar.get("air_date")
            territories = sidecar.get("territories") or ()
            if isinstance(production, dict):
                air_date = air_date or production.get("air_date")
                territories = territories or production.get("territory") or production.get(
                    "territories") or ()
            if isinstance(territories, str):
                territories = [territories]
            return cls(
                audio_sha256=sidecar["audio_sha256"], file_sha256=sidecar.get("file_sha256", ""),
                path=str(Path(audio_path).resolve()),
                engine=engine.get("name", "") if isinstance(engine, dict) else str(engine),
                engine_version=engine.get("version", "") if isinstance(engine, dict) else "",
                model=engine.get("model") if isinstance(engine, dict) else None,
                model_sha256=engine.get("model_sha256") if isinstance(engine, dict) else None,
                prompt=sidecar.get("prompt") or "", cue_kind=sidecar.get("kind") or "",
                parameters=sidecar.get("parameters") or {}, intent=sidecar.get("intent") or {},
                seed=sidecar.get("seed"), samples=list(sidecar.get("samples") or ()),
                ingredients=list(sidecar.get("ingredients") or ()),
                created=sidecar.get("created") or "", duration=sidecar.get("duration"),
                format=sidecar.get("format"), sample_rate=sidecar.get("sample_rate"),
                bit_depth=sidecar.get("bit_depth"), channels=sidecar.get("channels"),
                mastering=sidecar.get("mastering") or {}, production=production,
                episode=sidecar.get("episode"), cue_id=sidecar.get("cue_id"),
                air_date=str(air_date) if air_date else None,
                territories=[str(t) for t in territories],
                content_key=sidecar.get("content_key"),
                soundscape_version=sidecar.get("soundscape_version"),
            )
        except (KeyError, AttributeError, TypeError) as exc:
            raise LedgerError(f"the sidecar of {audio_path} is not a soundscape sidecar "
                              f"(missing {exc})") from None


@dataclass(frozen=True)
class OutputRecord:
    """A recorded output: the entry's fields plus its record id and resolved lineage links."""

    id: str
    seq: int
    audio_sha256: str = ""
    file_sha256: str = ""
    path: str = ""
    engine: str = ""
    engine_version: str = ""
    model: str | None = None
    model_sha256: str | None = None
    model_record: str | None = None
    prompt: str = ""
    cue_kind: str = ""  # bed | jingle | sting ("kind" is the record's own kind)
    parameters: dict = field(default_factory=dict)
    intent: dict = field(default_factory=dict)
    seed: int | None = None
    samples: list = field(default_factory=list)
    ingredients: list = field(default_factory=list)
    created: str = ""
    duration: float | None = None
    format: str | None = None
    sample_rate: int | None = None
    bit_depth: int | None = None
    channels: int | None = None
    mastering: dict = field(default_factory=dict)
    production: str | dict | None = None
    episode: str | None = None
    cue_id: str | None = None
    air_date: str | None = None
    territories: list = field(default_factory=list)
    content_key: str | None = None
    soundscape_version: str | None = None
    training_data: str = ""
    recorded: str = ""
    body: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class InclusionProof:
    """An inclusion proof for one record against the latest signed checkpoint."""

    record_id: str
    leaf_index: int
    tree_size: int
    body: str
    leaf_hash: str
    audit_path: list
    checkpoint: dict

    def to_dict(self) -> dict:
        """The JSON-ready proof that :func:`soundscape.rights.merkle.verify_inclusion` checks."""
        return {"format": merkle.PROOF_FORMAT, "record_id": self.record_id,
                "leaf_index": self.leaf_index, "tree_size": self.tree_size, "body": self.body,
                "leaf_hash": self.leaf_hash, "audit_path": list(self.audit_path),
                "checkpoint": dict(self.checkpoint)}


@dataclass
class ReconcileReport:
    """What reconcile did with each pending entry: ``(audio path, record id or reason)``."""

    recorded: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    in_progress: list = field(default_factory=list)
    removed_temp_files: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.recorded or self.dropped or self.in_progress)


# What a correction record may change, per kind of record it corrects.
CORRECTABLE = {"asset": ("license", "author", "attribution", "source", "title", "description"),
               "model": ("license", "base_model_license", "lineage_unknown")}


def apply_corrections(body: dict, fixes: Sequence[dict]) -> dict:
    """A record body as its corrections (oldest first) leave it; ``corrections`` lists them."""
    if not fixes:
        return body
    view = dict(body)
    for fix in fixes:
        view.update(fix.get("changes") or {})
    view["corrections"] = [fix["id"] for fix in fixes]
    return view


KIND_TYPES = {"license": LicenseRecord, "asset": AssetRecord, "dataset": DatasetRecord,
              "model": ModelRecord, "output": OutputRecord}


def typed(record: StoredRecord):
    """The typed dataclass for a stored record (the raw StoredRecord for other kinds)."""
    cls = KIND_TYPES.get(record.kind)
    return _from_body(cls, record) if cls else record


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a live
    writer from an unrelated process that later got the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, started: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is not None:
        now = _process_start(pid)
        return now is None or now == started
    return True


# ---- the ledger ---------------------------------------------------------------------------

class Ledger:
    """The rights ledger of one workspace. Open with :meth:`open`; use as a context manager.

    Args:
        store: the storage.
        home: the workspace folder (pending entries, studio agreements and policies live there).
    """

    def __init__(self, store: Store, *, home: Path | None = None):
        self.store = store
        self.home = Path(home) if home else None
        self._registry = None
        self._samples_checked: set[str] = set()

    @classmethod
    def open(cls, workspace) -> "Ledger":
        """The ledger of ``workspace`` (a :class:`soundscape.config.Workspace`), made on first use."""
        return cls(Store(workspace.ledger_url, workspace.keys_dir), home=workspace.home)

    @classmethod
    def open_url(cls, url: str, keys_dir: str | Path, *, home: str | Path | None = None) -> "Ledger":
        """A ledger at a SQLAlchemy URL with its keys in ``keys_dir`` (home: keys_dir's parent)."""
        keys_dir = Path(keys_dir)
        return cls(Store(url, keys_dir), home=Path(home) if home else keys_dir.parent)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def registry(self):
        """The license registry (the repository's terms plus the workspace's agreements)."""
        if self._registry is None:
            from soundscape.rights.licenses import LicenseRegistry

            self._registry = LicenseRegistry.load(workspace_home=self.home)
        return self._registry

    # -- generic reading --------------------------------------------------------------------

    def get(self, record_id: str):
        """The typed record ``record_id``.

        Raises:
            LedgerError: no such record.
        """
        stored = self.store.get(record_id)
        if stored is None:
            raise LedgerError(f"no record {record_id} in the ledger (see `soundscape ledger list`)")
        return self._typed([stored])[0]

    def _typed(self, records: Sequence[StoredRecord]) -> list:
        """Typed records, assets and models with their corrections applied."""
        ids = [r.id for r in records if r.kind in CORRECTABLE]
        fixes = self._corrections_of(ids) if ids else {}
        return [typed(StoredRecord(r.seq, r.id, r.kind,
                                   apply_corrections(r.body, fixes.get(r.id, [])), r.text))
                for r in records]

    def _corrections_of(self, ids: Sequence[str], conn=None) -> dict[str, list[dict]]:
        """Correction bodies per target record id, oldest first."""
        from sqlalchemy import select

        from soundscape.rights.store import records_table as t

        found: dict[str, list[dict]] = {}
        ids = list(dict.fromkeys(ids))

        def run(c):
            for i in range(0, len(ids), 500):
                rows = c.execute(select(t.c.body).where(t.c.kind == "correction")
                                 .where(t.c.lookup.in_(ids[i:i + 500])).order_by(t.c.seq)).all()
                for (text,) in rows:
                    body = json.loads(text)
                    found.setdefault(body["target"], []).append(body)
        if conn is not None:
            run(conn)
        else:
            with self.store.read() as c:
                run(c)
        return found

    def correct(self, record_id: str, *, reason: str, **changes):
        """Append a correction to an asset or model (the original record stays as it was).

        Args:
            record_id: the asset or model to correct.
            reason: why (kept in the ledger; required).
            **changes: new values; assets: license, author, attribution, source, title,
                description; models: license, base_model_license, lineage_unknown.

        Returns:
            The corrected record.

        Raises:
            LedgerError: not a correctable record, or nothing to change.
            LicenseError: a bad license expression.
        """
        stored = self.raw(record_id)
        allowed = CORRECTABLE.get(stored.kind)
        if allowed is None:
            article = "an" if stored.kind[:1] in "aeiou" else "a"
            raise LedgerError(f"{record_id} is {article} {stored.kind} record; only assets and models "
                              "can be corrected")
        if not reason or not reason.strip():
            raise LedgerError("a correction needs a reason (--reason TEXT)")
        changes = {k: v for k, v in changes.items() if v is not None}
        for key in ("license", "author", "title"):
            if key in changes and not str(changes[key]).strip():
                raise ParameterError(f"--{key} cannot be empty: a correction replaces the "
                                     f"{key} of {record_id}, it never blanks it")
        unknown = sorted(set(changes) - set(allowed))
        if unknown:
            raise LedgerError(f"cannot correct {', '.join(unknown)} of a {stored.kind}: "
                              f"{', '.join(allowed)} can be corrected")
        for key in ("license", "base_model_license"):
            if key in changes:
                changes[key] = self.normalize_license(changes[key], what=record_id)
        with self.store.batch() as batch:
            current = apply_corrections(stored.body,
                                        batch.find("correction", lookup=record_id))
            changes = {k: v for k, v in changes.items() if current.get(k) != v}
            if not changes:
                raise LedgerError(f"{record_id} already has those values; nothing to correct")
            for key in ("license", "base_model_license"):
                if changes.get(key):
                    self._ensure_license_records(batch, changes[key])
            batch.add("correction", jsonable({
                "target": record_id, "target_kind": stored.kind, "changes": changes,
                "previous": {k: current.get(k) for k in changes}, "reason": reason.strip()}),
                lookup=record_id)
        return self.get(record_id)

    def raw(self, record_id: str) -> StoredRecord:
        """The stored record (body text exactly as hashed)."""
        stored = self.store.get(record_id)
        if stored is None:
            raise LedgerError(f"no record {record_id} in the ledger (see `soundscape ledger list`)")
        return stored

    def records(self, kind: str | None = None) -> Iterator[StoredRecord]:
        """Every record, oldest first (of one kind when given)."""
        return self.store.iter_records(kind)

    def latest_checkpoint(self) -> Checkpoint | None:
        return self.store.latest_checkpoint()

    def latest_checkpoint_dict(self) -> dict | None:
        """The latest signed checkpoint as JSON-ready data (what sidecars carry)."""
        cp = self.store.latest_checkpoint()
        return cp.to_dict() if cp else None

    def public_key_pem(self) -> str:
        """The ledger's public key (PEM): give it to whoever checks proofs."""
        return self.store.public_key_pem()

    # -- integrity --------------------------------------------------------------------------

    def verify(self, *, all_signatures: bool = True,
               against: Sequence[tuple[str, dict]] = ()) -> VerifyReport:
        """Recompute the whole tree and check every checkpoint (see :meth:`Store.verify`).

        Args:
            all_signatures: check every checkpoint's signature, not only the latest.
            against: ``(label, checkpoint)`` pairs kept elsewhere (sidecars, proofs) that the
                ledger must still agree with.

        Raises:
            TamperError: one line naming the first bad record.
        """
        return self.store.verify(all_signatures=all_signatures, against=against)

    def prove(self, record_id: str) -> InclusionProof:
        """An inclusion proof for ``record_id`` against the latest signed checkpoint."""
        p = self.store.prove(record_id)
        return InclusionProof(record_id=p["record_id"], leaf_index=p["leaf_index"],
                              tree_size=p["tree_size"], body=p["body"], leaf_hash=p["leaf_hash"],
                              audit_path=p["audit_path"], checkpoint=p["checkpoint"])

    def consistency(self, old_size: int, new_size: int | None = None) -> dict:
        """A consistency proof (RFC 6962 §2.1.2) between two tree sizes."""
        return self.store.consistency(old_size, new_size)

    # -- licenses and assets ----------------------------------------------------------------

    def normalize_license(self, expression: str | None, *, what: str = "") -> str:
        """``expression`` checked against the registry and written canonically.

        Raises:
            LicenseError: missing, malformed or unknown.
        """
        if expression is None or not str(expression).strip():
            raise LicenseError(f"{what + ': ' if what else ''}no license given: every asset "
                               "needs one (an SPDX id or expression such as CC0-1.0)")
        try:
            return self.registry.normalize(str(expression))
        except LicenseError as exc:
            raise LicenseError(f"{what + ': ' if what else ''}{exc}") from None

    def _ensure_license_records(self, batch, expression: str) -> list[str]:
        """License records (terms snapshots) for every id in ``expression``; new when changed."""
        ids = []
        for license_id in self.registry.ids_in(expression):
            terms = jsonable(asdict(self.registry.get(license_id)))
            known = batch.find("license", lookup=license_id)
            if known and canonical_json(known[-1].get("terms")) == canonical_json(terms):
                ids.append(known[-1]["id"])
                continue
            ids.append(batch.add("license", {"license_id": license_id, "terms": terms},
                                 lookup=license_id).id)
        return ids

    def assets_by_sha(self, audio_sha256: str) -> list[AssetRecord]:
        return self._typed(self.store.find("asset", lookup=audio_sha256))

    def list_assets(self) -> list[AssetRecord]:
        return self._typed(list(self.store.iter_records("asset")))

    # -- datasets ---------------------------------------------------------------------------

    def get_dataset(self, name: str, version: str | None = None) -> DatasetRecord | None:
        """The dataset ``name`` (its latest version unless ``version`` is given), or None."""
        if "@" in name and version is None:
            name, version = name.rsplit("@", 1)
        found = self.store.find("dataset", lookup=name, lookup2=version)
        return typed(found[-1]) if found else None

    def list_datasets(self) -> list[DatasetRecord]:
        """The latest version of every dataset, by name."""
        latest: dict[str, DatasetRecord] = {}
        for r in self.store.iter_records("dataset"):
            latest[r.body["name"]] = typed(r)
        return [latest[k] for k in sorted(latest)]

    def dataset_versions(self, name: str) -> list[DatasetRecord]:
        return [typed(r) for r in self.store.find("dataset", lookup=name)]

    def dataset_assets(self, name: str, version: str | None = None) -> list[AssetRecord]:
        """The assets of a dataset (path, audio_sha256, license, attribution ...), in order.

        Raises:
            LedgerError: no such dataset.
        """
        ds = self.get_dataset(name, version)
        if ds is None:
            raise LedgerError(f"no dataset {name!r}{' version ' + version if version else ''} "
                              "in the ledger (see `soundscape dataset list`)")
        return self._assets(ds.assets)

    def assets(self, ids: Sequence[str]) -> list[AssetRecord]:
        """Assets by record id, in the order given (unknown ids are skipped); few queries."""
        return self._assets(ids)

    def _assets(self, ids: Sequence[str]) -> list[AssetRecord]:
        from sqlalchemy import select

        from soundscape.rights.store import _stored, records_table as t

        out: dict[str, StoredRecord] = {}
        ids = list(ids)
        with self.store.read() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for row in conn.execute(select(t.c.seq, t.c.id, t.c.kind, t.c.body)
                                        .where(t.c.id.in_(chunk))).all():
                    out[row.id] = _stored(row)
        return self._typed([out[i] for i in ids if i in out])

    def ensure_sample_library(self, samples_dir: str | Path | None = None) -> DatasetRecord | None:
        """Register samples/ as dataset ``soundscape-samples`` (a new version when it changed).

        Returns:
            The dataset, or None when the folder has no manifest.jsonl.
        """
        from soundscape.rights.ingest import ensure_sample_library

        return ensure_sample_library(self, samples_dir)

    # -- models -----------------------------------------------------------------------------

    def register_model(self, entry: ModelEntry) -> ModelRecord:
        """Record a model. The same name with the same hashes again is a no-op.

        Raises:
            LedgerError: the name is taken by a model with other hashes, or a dataset is unknown.
            LicenseError: a bad license expression.
        """
        if not entry.name or not entry.name.strip():
            raise LedgerError("a model needs a name")
        license_expr = self.normalize_license(entry.license, what=f"model {entry.name}") \
            if entry.license else None
        base_license, base_source = entry.base_model_license, None
        if entry.base_model and not base_license:
            from soundscape.rights.licenses import base_model_license

            info = base_model_license(entry.base_model)
            if info is not None:
                base_license, base_source = info.license, info.source
        if base_license:
            base_license = self.normalize_license(base_license, what=f"base model {entry.base_model}")
        datasets = []
        for ref in entry.datasets:
            ds = self.get_dataset(str(ref))
            if ds is None:
                raise LedgerError(f"model {entry.name}: no dataset {ref!r} in the ledger "
                                  "(register it with `soundscape dataset add`)")
            datasets.append({"name": ds.name, "version": ds.version, "id": ds.id,
                             "assets": len(ds.assets), "manifest_sha256": ds.manifest_sha256})
        with self.store.batch() as batch:
            existing = batch.find("model", lookup=entry.name)
            if existing:
                old = existing[-1]
                if (old.get("lm_sha256"), old.get("compression_sha256")) == (
                        entry.lm_sha256, entry.compression_sha256):
                    return _from_body(ModelRecord, old)
                raise LedgerError(f"model name {entry.name!r} is already registered "
                                  f"({old['id']}) with other checkpoint hashes; choose another "
                                  "name")
            if license_expr:
                self._ensure_license_records(batch, license_expr)
            if base_license:
                self._ensure_license_records(batch, base_license)
            item = batch.add("model", jsonable({
                "name": entry.name, "engine": entry.engine, "lm_sha256": entry.lm_sha256,
                "compression_sha256": entry.compression_sha256,
                "path": str(Path(entry.path).resolve()) if entry.path else None,
                "architecture": entry.architecture, "base_model": entry.base_model,
                "base_model_license": base_license, "base_model_source": base_source,
                "datasets": datasets, "license": license_expr,
                "lineage_unknown": bool(entry.lineage_unknown), "training": entry.training,
                "details": entry.details}), lookup=entry.name, lookup2=entry.lm_sha256)
        return _from_body(ModelRecord, item.body)

    def get_model(self, name: str) -> ModelRecord | None:
        """The model registered as ``name`` (or by record id), or None."""
        if name.startswith("model-"):
            r = self.store.get(name)
            return self._typed([r])[0] if r and r.kind == "model" else None
        found = self.store.find("model", lookup=name)
        return self._typed([found[-1]])[0] if found else None

    def list_models(self) -> list[ModelRecord]:
        return self._typed(list(self.store.iter_records("model")))

    # -- outputs ----------------------------------------------------------------------------

    def record_output(self, entry: OutputEntry) -> OutputRecord:
        """Record a delivered output; idempotent on (audio_sha256, path).

        Samples and ingredients are linked to their registered assets (the sample library is
        registered first when needed); the model to its record.
        """
        if not entry.audio_sha256 or not _is_sha256(entry.audio_sha256):
            raise LedgerError(f"output {entry.path}: no valid audio_sha256")
        path = str(Path(entry.path).resolve())
        existing = self._find_output(entry.audio_sha256, path)
        if existing:
            return existing
        if entry.samples:
            try:
                self.ensure_sample_library()
            except SoundscapeError:
                # A damaged sample library must not leave a delivered file unrecorded: the
                # samples keep the license their sidecar names, unlinked to an asset.
                pass
        samples = [self._link_asset(s) for s in entry.samples]
        ingredients = [self._link_asset(s) for s in entry.ingredients]
        model = self.get_model(entry.model) if entry.model else None
        body = {name: getattr(entry, name) for name in _OUTPUT_FIELDS}
        body.update(path=path, samples=samples, ingredients=ingredients,
                    territories=list(entry.territories),
                    model_record=model.id if model else None,
                    training_data=_training_summary(model, entry.model))
        body = jsonable(body)
        with self.store.batch() as batch:
            for old in batch.find("output", lookup=entry.audio_sha256):
                if old.get("path") == path:  # recorded by another process meanwhile
                    return _from_body(OutputRecord, old)
            item = batch.add("output", body, lookup=entry.audio_sha256,
                             lookup2=entry.content_key)
        return _from_body(OutputRecord, item.body)

    def _find_output(self, audio_sha256: str, path: str) -> OutputRecord | None:
        for r in self.store.find("output", lookup=audio_sha256):
            if r.body.get("path") == path:
                return typed(r)
        return None

    def _link_asset(self, use: dict) -> dict:
        """A sample/ingredient use with ``asset`` set to its registered asset id (or None)."""
        use = dict(use)
        sha = str(use.get("sha256") or "")
        asset = None
        if use.get("asset"):
            r = self.store.get(use["asset"])
            asset = r.body if r and r.kind == "asset" else None
        if asset is None and sha:
            found = self.store.find("asset", lookup=sha) or self.store.find("asset", lookup2=sha)
            asset = found[0].body if found else None
        if asset is None and use.get("id"):
            ds = self.get_dataset(SAMPLE_DATASET)
            if ds is not None:
                for a in self._assets(ds.assets):
                    if a.source_id == use["id"]:
                        asset = a.body
                        break
        use["asset"] = asset["id"] if asset else None
        if asset:
            use.setdefault("license", asset.get("license"))
        return use

    def find_outputs(self, *, audio_sha256: str | None = None,
                     content_key: str | None = None) -> list[OutputRecord]:
        """Outputs by decoded-audio hash and/or content key, oldest first."""
        if audio_sha256 is None and content_key is None:
            return [typed(r) for r in self.store.iter_records("output")]
        return [typed(r) for r in self.store.find("output", lookup=audio_sha256,
                                                  lookup2=content_key)]

    def get_output(self, output_or_sha: str) -> OutputRecord:
        """An output by record id or decoded-audio sha256.

        Raises:
            LedgerError: nothing matches.
        """
        if output_or_sha.startswith("out-"):
            rec = self.get(output_or_sha)
            if not isinstance(rec, OutputRecord):
                raise LedgerError(f"{output_or_sha} is not an output record")
            return rec
        if _is_sha256(output_or_sha):
            found = self.find_outputs(audio_sha256=output_or_sha.lower())
            if found:
                return found[0]
            raise LedgerError(f"no output with audio sha256 {output_or_sha} in the ledger")
        raise LedgerError(f"{output_or_sha!r} is neither an output record id (out-...) nor an "
                          "audio sha256")

    # -- pending outputs and reconcile -------------------------------------------------------

    @property
    def pending_dir(self) -> Path:
        if self.home is None:
            raise LedgerError("this ledger was opened without a workspace folder")
        return self.home / PENDING_DIR

    def pending_begin(self, audio_path: str | Path, sidecar_path: str | Path) -> str:
        """Journal an output about to be written; returns the token for :meth:`pending_end`."""
        from soundscape.atomic import write_json_atomic

        try:
            self.pending_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the workspace's pending folder {self.pending_dir}: "
                              f"{exc.strerror or exc}") from None
        token = f"{_time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        write_json_atomic(self.pending_dir / f"{token}.json", {
            "token": token, "audio": str(Path(audio_path).resolve()),
            "sidecar": str(Path(sidecar_path).resolve()), "pid": os.getpid(),
            "pid_start": _process_start(os.getpid()), "host": socket.gethostname(),
            "started": _now()})
        return token

    def pending_end(self, token: str | None) -> None:
        """Close a pending entry once its output is recorded (or abandoned)."""
        if token:
            (self.pending_dir / f"{token}.json").unlink(missing_ok=True)

    def pending_entries(self) -> list[dict]:
        if self.home is None or not self.pending_dir.is_dir():
            return []
        entries = []
        for p in sorted(self.pending_dir.glob("*.json")):
            try:
                entry = json.loads(p.read_text())
                entry["_file"] = str(p)
                entries.append(entry)
            except (OSError, ValueError):
                entries.append({"_file": str(p), "token": p.stem, "broken": True})
        return entries

    def reconcile(self) -> ReconcileReport:
        """Resolve pending entries a crash left: record complete outputs, clean incomplete ones.

        An entry whose process is still running (same host) is left alone.
        """
        report = ReconcileReport()
        host = socket.gethostname()
        for entry in self.pending_entries():
            token = entry.get("token")
            if entry.get("broken"):
                Path(entry["_file"]).unlink(missing_ok=True)
                report.dropped.append((entry["_file"], "unreadable pending entry"))
                continue
            audio, sidecar_path = Path(entry["audio"]), Path(entry["sidecar"])
            pid = int(entry.get("pid") or 0)
            if entry.get("host") == host and pid and _pid_alive(pid, entry.get("pid_start")):
                report.in_progress.append((str(audio), f"process {pid} is still writing it"))
                continue
            reason = self._complete(audio, sidecar_path)
            if reason is None:
                sidecar = json.loads(sidecar_path.read_text())
                record = self.record_output(OutputEntry.from_sidecar(sidecar, audio))
                self.stamp_sidecar(sidecar_path, sidecar, record)
                report.recorded.append((str(audio), record.id))
            else:
                for folder, name in {(audio.parent, audio.name),
                                     (sidecar_path.parent, sidecar_path.name)}:
                    if folder.is_dir():
                        # Hidden temp files of atomic writes: ".<name>.tmp*" (sidecars) and
                        # ".<name>.<random>.part" (audio, soundscape.audio.io).
                        for tmp in folder.glob(f".{_glob_escape(name)}.*"):
                            tmp.unlink(missing_ok=True)
                            report.removed_temp_files.append(str(tmp))
                report.dropped.append((str(audio), reason))
            self.pending_end(token)
        return report

    @staticmethod
    def _complete(audio: Path, sidecar_path: Path) -> str | None:
        """None when the output is complete; else why not."""
        from soundscape.audio.io import audio_sha256

        if not audio.is_file():
            return "the audio file was never completed"
        if not sidecar_path.is_file():
            return "the sidecar was never written"
        try:
            sidecar = json.loads(sidecar_path.read_text())
            expected = sidecar["audio_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return "the sidecar is unreadable"
        try:
            actual = audio_sha256(audio)
        except Exception as exc:  # noqa: BLE001 - any decode failure means incomplete audio
            return f"the audio does not decode ({exc})"
        if actual != expected:
            return "the audio does not match its sidecar's audio_sha256"
        return None

    def stamp_sidecar(self, sidecar_path: Path, sidecar: dict, record: OutputRecord) -> None:
        """Write the record id and latest checkpoint into a sidecar's ``ledger`` field."""
        from soundscape.atomic import write_json_atomic

        stamped = (sidecar.get("ledger") or {}).get("record_id")
        if stamped == record.id:
            return
        sidecar["ledger"] = {"record_id": record.id, "checkpoint": self.latest_checkpoint_dict()}
        write_json_atomic(sidecar_path, sidecar)

    # -- lineage and clearance --------------------------------------------------------------

    def lineage(self, output_id: str) -> list:
        """Everything licensed behind an output, as :class:`~soundscape.rights.policy.LicensedItem`.

        Samples used, ingredients, the model (its own license), its base model, and every asset
        of every dataset it was trained on (role ``training-data``).
        """
        return self._output_lineage(self.get_output(output_id))[0]

    def _output_lineage(self, out: OutputRecord) -> tuple[list, bool]:
        from soundscape.rights.policy import LicensedItem

        items = []
        for role, uses in (("sample", out.samples), ("ingredient", out.ingredients)):
            linked = self._assets([u["asset"] for u in uses if u.get("asset")])
            by_id = {a.id: a for a in linked}
            for use in uses:
                asset = by_id.get(use.get("asset"))
                if asset is not None:
                    items.append(_asset_item(role, asset))
                else:
                    items.append(LicensedItem(role=role, name=str(use.get("id") or use.get("path")),
                                              license=use.get("license")))
        unknown = False
        if out.model:
            model = self.get_model(out.model_record or out.model)
            if model is None:
                unknown = True
            else:
                model_items, unknown = self._model_lineage(model)
                items.extend(model_items)
        return items, unknown

    def _model_lineage(self, model: ModelRecord) -> tuple[list, bool]:
        from soundscape.rights.policy import LicensedItem

        items = [LicensedItem(role="model", name=model.name, license=model.license)]
        if model.base_model:
            items.append(LicensedItem(role="base-model", name=model.base_model,
                                      license=model.base_model_license,
                                      source=model.base_model_source))
        for ds in model.datasets:
            for asset in self._assets(self._dataset_asset_ids(ds)):
                items.append(_asset_item("training-data", asset))
        return items, bool(model.lineage_unknown)

    def _dataset_asset_ids(self, ds: dict) -> list[str]:
        r = self.store.get(ds["id"]) if ds.get("id") else None
        if r is None:
            found = self.get_dataset(ds["name"], ds.get("version"))
            if found is None:
                raise LedgerError(f"dataset {ds['name']} is missing from the ledger")
            return found.assets
        return r.body.get("assets", [])

    def model_lineage(self, name: str) -> list:
        """Everything licensed behind a model (its license, base model, training assets)."""
        model = self.get_model(name)
        if model is None:
            raise LedgerError(f"no model {name!r} in the ledger (see `soundscape model list`)")
        return self._model_lineage(model)[0]

    def clear(self, output_or_sha: str, policy_name: str, *, air_date: date | str | None = None,
              territories: Sequence[str] | None = None, media: str | None = None):
        """The clearance :class:`~soundscape.rights.policy.Verdict` of an output under a policy.

        Args:
            output_or_sha: an output record id or the decoded-audio sha256 of the file.
            policy_name: a policy in licenses/policies/ or the workspace's policies/.
            air_date: first transmission date; default the output's recorded air date.
            territories: where it airs; default the output's recorded territories.
            media: the medium it airs on, when agreements restrict media.
        """
        out = self.get_output(output_or_sha)
        items, unknown = self._output_lineage(out)
        return self._evaluate(policy_name, items, unknown,
                              air_date=air_date if air_date else out.air_date,
                              territories=territories if territories else out.territories,
                              media=media)

    def clear_model(self, name: str, policy_name: str, *, air_date: date | str | None = None,
                    territories: Sequence[str] | None = None, media: str | None = None):
        """The verdict for anything a model makes, under a policy (``model show``)."""
        model = self.get_model(name)
        if model is None:
            raise LedgerError(f"no model {name!r} in the ledger (see `soundscape model list`)")
        items, unknown = self._model_lineage(model)
        return self._evaluate(policy_name, items, unknown, air_date=air_date,
                              territories=territories or (), media=media)

    def _evaluate(self, policy_name, items, unknown, *, air_date, territories, media):
        from soundscape.errors import ParameterError
        from soundscape.rights.policy import evaluate, load_policy

        if isinstance(air_date, str):
            try:
                air_date = date.fromisoformat(air_date[:10])
            except ValueError:
                raise ParameterError(f"air date {air_date!r} is not a date (YYYY-MM-DD)") from None
        policy = load_policy(policy_name, workspace_home=self.home, registry=self.registry)
        return evaluate(policy, items, registry=self.registry, air_date=air_date,
                        territories=list(territories or ()), media=media,
                        lineage_unknown=unknown)


def asset_item(role: str, asset: AssetRecord):
    """The :class:`~soundscape.rights.policy.LicensedItem` for an asset in a lineage role."""
    from soundscape.rights.policy import LicensedItem

    return LicensedItem(role=role, name=asset.name, license=asset.license or None,
                        attribution=asset.attribution, author=asset.author, source=asset.source)


_asset_item = asset_item  # the name reports used first


def _training_summary(model: ModelRecord | None, name: str | None) -> str:
    if name is None:
        return "none: no trained model was used"
    if model is None:
        return f"unknown: model {name} is not registered"
    if model.lineage_unknown:
        return "unknown: the model was registered with unknown lineage"
    if not model.datasets:
        return "none recorded"
    return ", ".join(f"{d['name']}@{d['version']} ({d.get('assets', '?')} assets)"
                     for d in model.datasets)


def _glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def _now() -> str:
    from soundscape.rights.store import utc_now

    return utc_now()

