"""Lineage and clearance: everything licensed behind an output or a model, judged under a policy.

Lineage runs output -> model -> datasets -> assets -> licenses, and output -> samples and
ingredients -> assets -> licenses. :class:`LineageReader` reads what many outputs share once
(their assets in one batched read, each model once), so ``soundscape clear``, a batch's
verdicts and a 200-cue season's cue sheets all walk the same lineage the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterable, Sequence

from soundscape.errors import LedgerError, ParameterError, SoundscapeError
from soundscape.facts import USES
from soundscape.rights.ledger import Ledger
from soundscape.rights.policy import LicensedItem, Verdict, evaluate, load_policy
from soundscape.rights.records import AssetRecord, ModelRecord, OutputRecord


def asset_item(role: str, asset: AssetRecord) -> LicensedItem:
    """The licensed item for an asset in a lineage role (sample, training-data ...), named in
    reasons by title, asset id and path."""
    return LicensedItem(role=role, name=asset.name, license=asset.license or None,
                        attribution=asset.attribution, author=asset.author, source=asset.source,
                        record=asset.id, path=asset.path or None)


def preset_item(use: dict, bank: AssetRecord | None) -> LicensedItem:
    """The licensed item for a sound-bank preset played in an output: named by preset and
    bank, under the bank's licence as its asset record now says (a correction shows here),
    credited with the bank's credit line and, where the bank gives one, the preset's own
    sample credit."""
    title = (bank.title if bank is not None else None) or use.get("bank_title") or use.get("bank")
    credit = (bank.attribution if bank is not None else None) or use.get("credit")
    if use.get("sample_credit"):
        credit = f"{use.get('preset')}: {use['sample_credit']}; {credit}" if credit else use["sample_credit"]
    return LicensedItem(role="sound-bank", name=f"{use.get('preset')} ({title})",
                        license=(bank.license if bank is not None else None) or use.get("license"),
                        attribution=credit, author=bank.author if bank is not None else None,
                        source=bank.source if bank is not None else use.get("source"),
                        record=bank.id if bank is not None else None,
                        path=(bank.path if bank is not None else None) or use.get("bank_file"))


class LineageReader:
    """The lineage of outputs read from one ledger, shared parts read once.

    Args:
        ledger: the open ledger.
        records: the output records about to be asked about; their assets are read now, in
            one batched read (corrections applied).
    """

    def __init__(self, ledger: Ledger, records: Iterable[OutputRecord] = ()):
        self.ledger = ledger
        ids = [u["asset"] for r in records for name in USES for u in getattr(r, name)
               if u.get("asset")]
        self._assets = {a.id: a for a in ledger.assets(list(dict.fromkeys(ids)))}
        self._models: dict[str | None, tuple] = {}
        self._datasets: dict[tuple, list[AssetRecord]] = {}

    def asset(self, use: dict) -> AssetRecord | None:
        """The registered asset a sample or ingredient use links to, as corrected, or None."""
        asset_id = use.get("asset")
        if asset_id and asset_id not in self._assets:
            found = self.ledger.assets([asset_id])
            if found:
                self._assets[asset_id] = found[0]
        return self._assets.get(asset_id)

    def model(self, record: OutputRecord) -> tuple[ModelRecord | None, list, bool]:
        """``(model record or None, its licensed items, lineage unknown)`` for an output's model."""
        key = record.model_record or record.model
        if key not in self._models:
            model = self.ledger.get_model(key) if key else None
            if model is None:
                self._models[key] = (None, [], True)
            else:
                self._models[key] = (model, *self.model_items(model))
        return self._models[key]

    def model_items(self, model: ModelRecord) -> tuple[list, bool]:
        """A model's own license, its base model, its text encoder (a T5 the studio supplied)
        and every asset of every dataset it was trained on (role ``training-data``); and
        whether its lineage is unknown."""
        # A model under its base model's own licence is those weights (or made from them): the
        # licensor is credited once, on the base model, not again under the model's name.
        same = bool(model.base_model and model.license and model.base_model_license
                    and self._same_license(model.license, model.base_model_license))
        items = [LicensedItem(role="model", name=model.name, license=model.license,
                              record=model.id, path=model.path, credited=not same)]
        if model.base_model:
            items.append(LicensedItem(role="base-model", name=model.base_model,
                                      license=model.base_model_license,
                                      source=model.base_model_source))
        encoder = (model.details or {}).get("text_encoder")
        if encoder:  # the studio's T5, which reads every description the model is given
            items.append(LicensedItem(role="text-encoder", name=encoder.get("name", "T5"),
                                      license=encoder.get("license"), path=encoder.get("path")))
        for ds in model.datasets:
            for asset in self.ledger.assets(self.ledger.dataset_asset_ids(ds)):
                items.append(asset_item("training-data", asset))
        return items, bool(model.lineage_unknown)

    def _same_license(self, a: str, b: str) -> bool:
        try:
            return self.ledger.registry.normalize(a) == self.ledger.registry.normalize(b)
        except SoundscapeError:
            return False

    def items(self, record: OutputRecord) -> tuple[list, bool]:
        """Everything licensed behind an output, and whether part of its lineage is unknown."""
        items = []
        for name, role in USES.items():
            for use in getattr(record, name):
                asset = self.asset(use)
                if name == "presets":
                    items.append(preset_item(use, asset))
                    continue
                items.append(asset_item(role, asset) if asset is not None else LicensedItem(
                    role=role, name=str(use.get("id") or use.get("path")),
                    license=use.get("license"), path=use.get("path") or None))
        unknown = False
        if record.model:
            _, model_items, unknown = self.model(record)
            items.extend(model_items)
        return items, unknown

    def use_licenses(self, uses: Sequence[dict]) -> list[str | None]:
        """The license of each use as its asset record now says (a correction shows here),
        else as recorded with the output."""
        out = []
        for use in uses:
            asset = self.asset(use)
            out.append(asset.license if asset is not None else use.get("license"))
        return out

    def dataset_assets(self, ds: dict) -> list[AssetRecord]:
        """The assets of a dataset a model names (``{"name", "version"}``); none when missing."""
        key = (ds.get("name"), ds.get("version"), ds.get("id"))
        if key not in self._datasets:
            try:
                self._datasets[key] = self.ledger.dataset_assets(ds["name"], ds.get("version"))
            except LedgerError:
                self._datasets[key] = []
        return self._datasets[key]

    def verdict(self, record: OutputRecord, policy_name: str, *,
                air_date: date | str | None = None, territories: Sequence[str] | None = None,
                media: str | None = None) -> Verdict:
        """The output's verdict under a policy; air date and territories default to its own."""
        items, unknown = self.items(record)
        return judge(self.ledger, policy_name, items, unknown,
                     air_date=air_date if air_date else record.air_date,
                     territories=territories if territories else record.territories, media=media)


def lineage(ledger: Ledger, output_or_sha: str) -> list:
    """Everything licensed behind an output: samples used, ingredients, the model (its own
    license), its base model, and every asset of every dataset it was trained on."""
    out = ledger.get_output(output_or_sha)
    return LineageReader(ledger, [out]).items(out)[0]


def model_lineage(ledger: Ledger, name: str) -> list:
    """Everything licensed behind a model (its license, base model, training assets)."""
    return LineageReader(ledger).model_items(_model(ledger, name))[0]


def clear(ledger: Ledger, output_or_sha: str, policy_name: str, *,
          air_date: date | str | None = None, territories: Sequence[str] | None = None,
          media: str | None = None) -> Verdict:
    """The clearance verdict of an output under a policy.

    Args:
        ledger: the open ledger.
        output_or_sha: an output record id or the decoded-audio sha256 of the file.
        policy_name: a policy in licenses/policies/ or the workspace's policies/.
        air_date: first transmission date; default the output's recorded air date.
        territories: where it airs; default the output's recorded territories.
        media: the medium it airs on, when agreements restrict media.
    """
    out = ledger.get_output(output_or_sha)
    return LineageReader(ledger, [out]).verdict(out, policy_name, air_date=air_date,
                                                territories=territories, media=media)


@dataclass(frozen=True)
class FileRecords:
    """The ledger records a delivered file answers to.

    ``own`` is the file's own record: the one its sidecar (``<file>.json``) or C2PA manifest
    names, else the one recorded for its path, else the only lineage its audio matches; None
    when the audio matches records of different lineages and nothing says which is its own.
    ``others`` are the further records with the same decoded audio but a different lineage
    (another model, other samples), each to be shown with its own verdict. ``how`` says how
    ``own`` was found.
    """

    own: OutputRecord | None
    others: tuple[OutputRecord, ...]
    how: str
    audio_sha256: str


def _named_record(path: Path) -> tuple[str | None, str]:
    """The record id the file's sidecar names, else its C2PA manifest; and where it was read."""
    import json

    sidecar = path.with_name(path.name + ".json")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        record_id = ((data.get("ledger") or {}).get("record_id") if isinstance(data, dict) else None)
        if record_id:
            return str(record_id), f"named by its sidecar {sidecar.name}"
    except (OSError, ValueError, AttributeError):
        pass
    try:
        # c2pa is a native library: loaded only when the sidecar did not settle it.
        from soundscape.rights.credentials import read_credentials

        creds = read_credentials(path)
    except (SoundscapeError, ImportError, OSError):
        return None, ""
    record_id = (getattr(creds, "ledger", None) or {}).get("record_id") if creds else None
    return (str(record_id), "named by its C2PA manifest") if record_id else (None, "")


def file_records(ledger: Ledger, path: str | Path) -> FileRecords:
    """The records of a delivered file: its own, and any of a different lineage with the same
    decoded audio (two models of identical weights under different licences render the same
    samples; the file's verdict must still be its own record's).

    Raises:
        LedgerError: no output has this audio.
        AudioError: the file is not audio.
    """
    from soundscape.audio.io import audio_sha256  # decodes the file: numpy and soundfile

    path = Path(path)
    sha = audio_sha256(path)
    candidates = ledger.find_outputs(audio_sha256=sha)
    if not candidates:
        raise LedgerError(f"{path} is not in the ledger: no soundscape output has this audio "
                          "(was it edited, or made elsewhere?)")
    own, how = None, ""
    record_id, where = _named_record(path)
    if record_id:
        own = next((r for r in candidates if r.id == record_id), None)
        how = where if own is not None else ""
    if own is None:
        resolved = str(path.resolve())
        own = next((r for r in candidates if r.path == resolved), None)
        how = "recorded for this path" if own is not None else ""
    return _with_other_lineages(ledger, sha, candidates, own, how)


def sha_records(ledger: Ledger, sha: str) -> FileRecords:
    """The records of a decoded-audio sha256: one lineage is the answer; several, with
    nothing to say which file is meant, are each shown (``own`` is None).

    Raises:
        LedgerError: no output has this audio.
    """
    candidates = ledger.find_outputs(audio_sha256=sha.lower())
    if not candidates:
        raise LedgerError(f"no output with audio sha256 {sha} in the ledger")
    return _with_other_lineages(ledger, sha.lower(), candidates, None, "")


def _with_other_lineages(ledger: Ledger, sha: str, candidates: list, own, how: str) -> FileRecords:
    reader = LineageReader(ledger, candidates)
    signatures = {r.id: _lineage_signature(reader, r) for r in candidates}
    if own is None and len(set(signatures.values())) == 1:
        own, how = candidates[0], "the only lineage with this audio"
    mine = signatures[own.id] if own is not None else None
    others, seen = [], {mine}
    for r in candidates:
        if signatures[r.id] not in seen:
            seen.add(signatures[r.id])
            others.append(r)
    return FileRecords(own=own, others=tuple(others), how=how, audio_sha256=sha)


def _lineage_signature(reader: LineageReader, record: OutputRecord) -> tuple:
    """What clearance reads of an output: its model record and every licensed item."""
    items, unknown = reader.items(record)
    return (record.model_record or record.model, unknown,
            tuple(sorted((i.role, i.name, str(i.license), str(i.record)) for i in items)))


def clear_model(ledger: Ledger, name: str, policy_name: str, *,
                air_date: date | str | None = None, territories: Sequence[str] | None = None,
                media: str | None = None) -> Verdict:
    """The verdict for anything a model makes, under a policy (``model show``)."""
    items, unknown = LineageReader(ledger).model_items(_model(ledger, name))
    return judge(ledger, policy_name, items, unknown, air_date=air_date,
                 territories=territories or (), media=media)


def judge(ledger: Ledger, policy_name: str, items: list, unknown: bool, *,
          air_date: date | str | None, territories: Sequence[str] | None,
          media: str | None) -> Verdict:
    """Evaluate licensed items under a policy with the ledger's license registry.

    Raises:
        ParameterError: an air date that is not a date, or an unknown policy.
    """
    if isinstance(air_date, str):
        try:
            air_date = date.fromisoformat(air_date[:10])
        except ValueError:
            raise ParameterError(f"air date {air_date!r} is not a date (YYYY-MM-DD)") from None
    policy = load_policy(policy_name, workspace_home=ledger.home, registry=ledger.registry)
    return evaluate(policy, items, registry=ledger.registry, air_date=air_date,
                    territories=list(territories or ()), media=media, lineage_unknown=unknown)


def _model(ledger: Ledger, name: str) -> ModelRecord:
    model = ledger.get_model(name)
    if model is None:
        raise LedgerError(f"no model {name!r} in the ledger (see `soundscape model list`)")
    return model
