"""The rights ledger: every license, asset, dataset, model and output, append-only and signed.

:class:`Ledger` is the one writer of rights facts. Each fact is a record whose canonical JSON
body is a leaf of an RFC 6962 Merkle tree (see :mod:`soundscape.rights.store` for storage and
verification, :mod:`soundscape.rights.merkle` for the tree, :mod:`soundscape.rights.records` for
the record types). The ledger appends, reads, finds, proves and verifies; lineage and clearance
read it (:mod:`soundscape.rights.clearance`), and so do the reports.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence

from soundscape.canonical import canonical_json, jsonable
from soundscape.config import Workspace
from soundscape.errors import LedgerError, LicenseError, ParameterError
from soundscape.facts import USES, OutputFacts
from soundscape.rights.licenses import LicenseRegistry, base_model_license
from soundscape.rights.records import (CORRECTABLE, AssetRecord, DatasetRecord, InclusionProof,
                                       ModelEntry, ModelRecord, OutputRecord, apply_corrections,
                                       check_name, from_body, typed)
from soundscape.rights.store import Batch, Checkpoint, Store, StoredRecord, VerifyReport


class Ledger:
    """The rights ledger of one workspace. Open with :meth:`open`; use as a context manager.

    Args:
        store: the storage.
        home: the workspace folder (studio agreements and policies live there).
    """

    def __init__(self, store: Store, *, home: Path | None = None):
        self.store = store
        self.home = Path(home) if home else None
        self._registry: LicenseRegistry | None = None

    @classmethod
    def open(cls, workspace: Workspace) -> "Ledger":
        """The ledger of ``workspace``, made on first use."""
        return cls(Store(workspace.ledger_url, workspace.keys_dir,
                         witness_dirs=workspace.witness_dirs), home=workspace.home)

    @classmethod
    def open_url(cls, url: str, keys_dir: str | Path, *, home: str | Path | None = None,
                 witness_dirs: Sequence[str | Path] = ()) -> "Ledger":
        """A ledger at a SQLAlchemy URL with its keys in ``keys_dir`` (home: keys_dir's parent)."""
        keys_dir = Path(keys_dir)
        return cls(Store(url, keys_dir, witness_dirs=[Path(d) for d in witness_dirs]),
                   home=Path(home) if home else keys_dir.parent)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def registry(self) -> LicenseRegistry:
        """The license registry (the repository's terms plus the workspace's agreements)."""
        if self._registry is None:
            self._registry = LicenseRegistry.load(workspace_home=self.home)
        return self._registry

    # -- reading ----------------------------------------------------------------------------

    def get(self, record_id: str):
        """The typed record ``record_id``, corrections applied.

        Raises:
            LedgerError: no such record.
        """
        return self.typed([self.raw(record_id)])[0]

    def raw(self, record_id: str) -> StoredRecord:
        """The stored record (body text exactly as hashed).

        Raises:
            LedgerError: no such record.
        """
        stored = self.store.get(record_id)
        if stored is None:
            raise LedgerError(f"no record {record_id} in the ledger (see `soundscape ledger list`)")
        return stored

    def typed(self, records: Sequence[StoredRecord]) -> list:
        """Typed records; assets and models with their corrections applied (one query)."""
        ids = list(dict.fromkeys(r.id for r in records if r.kind in CORRECTABLE))
        fixes: dict[str, list[dict]] = {}
        for fix in self.store.find_many("correction", ids) if ids else ():
            fixes.setdefault(fix.body["target"], []).append(fix.body)
        return [typed(StoredRecord(r.seq, r.id, r.kind,
                                   apply_corrections(r.body, fixes.get(r.id, [])), r.text))
                for r in records]

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

    def verify(self, *, all_signatures: bool = True, against: Sequence[tuple[str, dict]] = (),
               since_witness: bool = False) -> VerifyReport:
        """Recompute the tree and check every checkpoint and the witness (see :meth:`Store.verify`).

        Args:
            all_signatures: check every checkpoint's signature, not only the latest.
            against: ``(label, checkpoint)`` pairs kept elsewhere (sidecars, proofs) that the
                ledger must still agree with.
            since_witness: check only what was added since the latest witnessed checkpoint.

        Raises:
            TamperError: one line naming the first bad record.
        """
        return self.store.verify(all_signatures=all_signatures, against=against,
                                 since_witness=since_witness)

    def prove(self, record_id: str) -> InclusionProof:
        """An inclusion proof for ``record_id`` against the latest signed checkpoint."""
        p = self.store.prove(record_id)
        return InclusionProof(record_id=p["record_id"], leaf_index=p["leaf_index"],
                              tree_size=p["tree_size"], body=p["body"], leaf_hash=p["leaf_hash"],
                              audit_path=p["audit_path"], checkpoint=p["checkpoint"])

    def consistency(self, old_size: int, new_size: int | None = None) -> dict:
        """A consistency proof (RFC 6962 §2.1.2) between two tree sizes."""
        return self.store.consistency(old_size, new_size)

    # -- corrections ------------------------------------------------------------------------

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
                    self.ensure_license_records(batch, changes[key])
            batch.add("correction", jsonable({
                "target": record_id, "target_kind": stored.kind, "changes": changes,
                "previous": {k: current.get(k) for k in changes}, "reason": reason.strip()}),
                lookup=record_id)
        return self.get(record_id)

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

    def ensure_license_records(self, batch: Batch, expression: str) -> list[str]:
        """License records (terms snapshots) for every id in ``expression``; new when changed."""
        ids = []
        for license_id in self.registry.ids_in(expression):
            terms = self._terms_snapshot(license_id)
            known = batch.find("license", lookup=license_id)
            if known and canonical_json(known[-1].get("terms")) == canonical_json(terms):
                ids.append(known[-1]["id"])
                continue
            ids.append(batch.add("license", {"license_id": license_id, "terms": terms},
                                 lookup=license_id).id)
        return ids

    def _terms_snapshot(self, license_id: str) -> dict:
        """What the registry says of ``license_id`` now, as kept in its license record."""
        known = self.registry.known(license_id)
        if known is not None:
            return {"id": known.id, "assessed": False, "category": known.category}
        terms = jsonable(asdict(self.registry.get(license_id)))
        # Fields added after records were first written stay out at their defaults, so a
        # licence whose terms did not change keeps its record (no new snapshot).
        for key, default in (("revenue_limit_usd", None), ("software", False),
                             ("retired", False), ("aliases", [])):
            if terms.get(key) == default:
                terms.pop(key, None)
        return terms

    def assets_by_sha(self, audio_sha256: str) -> list[AssetRecord]:
        return self.typed(self.store.find("asset", lookup=audio_sha256))

    def list_assets(self) -> list[AssetRecord]:
        return self.typed(list(self.store.iter_records("asset")))

    def assets(self, ids: Sequence[str]) -> list[AssetRecord]:
        """Assets by record id, in the order given (unknown ids are skipped); few queries."""
        found = self.store.get_many(ids)
        return self.typed([found[i] for i in ids if i in found])

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
        return self.assets(ds.assets)

    def dataset_asset_ids(self, ds: dict) -> list[str]:
        """The asset ids of a dataset as a model record names it (``{"name", "version", "id"}``).

        Raises:
            LedgerError: the dataset is missing.
        """
        r = self.store.get(ds["id"]) if ds.get("id") else None
        if r is None:
            found = self.get_dataset(ds["name"], ds.get("version"))
            if found is None:
                raise LedgerError(f"dataset {ds['name']} is missing from the ledger")
            return found.assets
        return r.body.get("assets", [])

    # -- models -----------------------------------------------------------------------------

    def register_model(self, entry: ModelEntry) -> ModelRecord:
        """Record a model. The same name with the same hashes again is a no-op.

        Raises:
            LedgerError: the name is taken by a model with other hashes, or a dataset is unknown.
            LicenseError: a bad license expression.
        """
        if not entry.name or not entry.name.strip():
            raise LedgerError("a model needs a name")
        check_name(entry.name, "model name")
        license_expr = self.normalize_license(entry.license, what=f"model {entry.name}") \
            if entry.license else None
        base_license, base_source = entry.base_model_license, None
        if entry.base_model and not base_license:
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
                    return from_body(ModelRecord, old)
                raise LedgerError(f"model name {entry.name!r} is already registered "
                                  f"({old['id']}) with other checkpoint hashes; choose another "
                                  "name")
            if license_expr:
                self.ensure_license_records(batch, license_expr)
            if base_license:
                self.ensure_license_records(batch, base_license)
            item = batch.add("model", jsonable({
                "name": entry.name, "engine": entry.engine, "lm_sha256": entry.lm_sha256,
                "compression_sha256": entry.compression_sha256,
                "path": str(Path(entry.path).resolve()) if entry.path else None,
                "architecture": entry.architecture, "base_model": entry.base_model,
                "base_model_license": base_license, "base_model_source": base_source,
                "datasets": datasets, "license": license_expr,
                "lineage_unknown": bool(entry.lineage_unknown), "training": entry.training,
                "details": entry.details}), lookup=entry.name, lookup2=entry.lm_sha256)
        return from_body(ModelRecord, item.body)

    def get_model(self, name: str) -> ModelRecord | None:
        """The model registered as ``name`` (or by record id), or None."""
        if name.startswith("model-"):
            r = self.store.get(name)
            return self.typed([r])[0] if r and r.kind == "model" else None
        found = self.store.find("model", lookup=name)
        return self.typed([found[-1]])[0] if found else None

    def list_models(self) -> list[ModelRecord]:
        return self.typed(list(self.store.iter_records("model")))

    # -- outputs ----------------------------------------------------------------------------

    def record_output(self, facts: OutputFacts, *,
                      source_ids_from: str | None = None) -> OutputRecord:
        """Record a delivered output; idempotent on (audio_sha256, path).

        Each sample and ingredient is linked to its registered asset (by asset id, decoded-audio
        hash or file hash); the model to its record.

        Args:
            facts: the output's facts (from its sidecar).
            source_ids_from: a dataset whose assets' source ids name the uses that no hash finds
                (a library whose files are known by id).
        """
        if not facts.audio_sha256 or not _is_sha256(facts.audio_sha256):
            raise LedgerError(f"output {facts.path}: no valid audio_sha256")
        path = str(Path(facts.path).resolve())
        existing = self._find_output(facts.audio_sha256, path)
        if existing:
            return existing
        model = self.get_model(facts.model) if facts.model else None
        body = facts.entry()
        for name in USES:
            body[name] = [self._link_asset(use, source_ids_from) for use in body[name]]
        body.update(path=path, territories=list(facts.territories),
                    model_record=model.id if model else None,
                    training_data=_training_summary(model, facts.model))
        body = jsonable(body)
        with self.store.batch() as batch:
            for old in batch.find("output", lookup=facts.audio_sha256):
                if old.get("path") == path:  # recorded by another process meanwhile
                    return from_body(OutputRecord, old)
            item = batch.add("output", body, lookup=facts.audio_sha256,
                             lookup2=facts.content_key)
        return from_body(OutputRecord, item.body)

    def _find_output(self, audio_sha256: str, path: str) -> OutputRecord | None:
        for r in self.store.find("output", lookup=audio_sha256):
            if r.body.get("path") == path:
                return typed(r)
        return None

    def _link_asset(self, use: dict, source_ids_from: str | None) -> dict:
        """A use (a sample, an ingredient) with ``asset`` set to its registered asset id, or None."""
        use = dict(use)
        sha = str(use.get("sha256") or "")
        asset = None
        if use.get("asset"):
            r = self.store.get(use["asset"])
            asset = r.body if r and r.kind == "asset" else None
        if asset is None and sha:
            found = self.store.find("asset", lookup=sha) or self.store.find("asset", lookup2=sha)
            asset = found[0].body if found else None
        if asset is None and use.get("id") and source_ids_from:
            ds = self.get_dataset(source_ids_from)
            if ds is not None:
                for a in self.assets(ds.assets):
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


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


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
