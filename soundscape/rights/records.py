"""The ledger's record types: what each kind of record holds, typed, with corrections applied.

A record is stored as a canonical JSON body (:mod:`soundscape.rights.store`); these dataclasses
are typed views of those bodies. Fields a body lacks take their defaults, so records written by
older versions read the same. Assets and models can be corrected by appending a correction
record; :func:`apply_corrections` gives the body as its corrections leave it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

from soundscape.errors import LedgerError
from soundscape.facts import OutputFacts
from soundscape.rights import merkle
from soundscape.rights.store import StoredRecord


# Names of models and datasets are a line: they are printed in every table, verdict and cue sheet.
MAX_NAME_CHARS = 100


def check_name(name: str, what: str) -> None:
    """Refuse a model or dataset name longer than :data:`MAX_NAME_CHARS`."""
    if len(name) > MAX_NAME_CHARS:
        raise LedgerError(f"the {what} is {len(name):,} characters long; the longest allowed is "
                          f"{MAX_NAME_CHARS}")


def from_body(cls, record: StoredRecord | dict):
    """The ``cls`` view of a stored record (or of a body): known fields set, the body kept."""
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


@dataclass(frozen=True, kw_only=True)
class OutputRecord(OutputFacts):
    """A recorded output: its facts, its record id, and the links the ledger resolved.

    ``model_record`` is the id of the model's record; ``training_data`` a one-line summary of
    what that model was trained on, as it stood when the output was recorded.
    """

    id: str
    seq: int
    model_record: str | None = None
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
    return from_body(cls, record) if cls else record
