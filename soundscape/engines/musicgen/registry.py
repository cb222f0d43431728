"""MusicGen models in the ledger: register, create, train with lineage, and open for generation.

The ledger is the one writer of rights facts; this module gathers what a model record needs
(checkpoint hashes, architecture, base model and its license, datasets trained on) and hands it
over. The rule of the field it enforces: Meta's released MusicGen weights, EnCodec included, are
CC-BY-NC-4.0, so a model registered from them, or trained from a base under that license, stays
CC-BY-NC-4.0; a model made with ``model new`` starts as the studio's own work with no lineage,
and its clearance then rests on the data it is trained on.

torch is imported only where a model is built, trained or opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from soundscape.errors import LedgerError, LicenseError, ModelError, NotClearedError, ParameterError

# The studio's own license (licenses/terms/LicenseRef-Studio-Owned.toml): for a model made from
# scratch by `model new`.
STUDIO_LICENSE = "LicenseRef-Studio-Owned"
ENGINE = "musicgen"


# --- checks -----------------------------------------------------------------------------------

def check_model_usable(record, allow_unknown_lineage: bool = False) -> None:
    """Refuse a model that must not generate: unknown, not musicgen, or of unknown lineage.

    Args:
        record: a ledger ``ModelRecord`` (or None when the name is not registered).
        allow_unknown_lineage: the user passed --allow-unknown-lineage.

    Raises:
        ModelError: with one line saying why and what to do.
    """
    if record is None:
        raise ModelError("unknown model: see `soundscape model list`, or register one with "
                         "`soundscape model add DIR` or `soundscape model new NAME`")
    if record.engine and record.engine != ENGINE:
        raise ModelError(f"model {record.name!r} is a {record.engine} model, not a musicgen one")
    if record.lineage_unknown and not allow_unknown_lineage:
        raise ModelError(f"model {record.name!r} was registered with unknown lineage, so nothing "
                         f"it makes can ever be cleared; pass --allow-unknown-lineage to generate "
                         f"with it anyway (e.g. for internal mock-ups)")
    if not record.path:
        raise ModelError(f"model {record.name!r} has no checkpoint folder on record")


def engine_for_model(name: str | None, *, workspace=None, allow_unknown_lineage: bool = False,
                     device: str | None = None, max_batch: int | None = None):
    """The :class:`MusicGenEngine` for a registered model, its files checked against the ledger.

    Raises:
        ModelError: no model given, an unknown or unusable model, or files that changed since
            registration.
    """
    from soundscape.config import open_workspace
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes
    from soundscape.engines.musicgen.engine import DEFAULT_MAX_BATCH, MusicGenEngine
    from soundscape.rights.ledger import Ledger

    if not name:
        raise ModelError("the musicgen engine needs a model: pass --model NAME "
                         "(see `soundscape model list`)")
    with Ledger.open(workspace or open_workspace()) as ledger:
        record = ledger.get_model(name)
    if record is None:
        raise ModelError(f"unknown model {name!r}: see `soundscape model list`, or register one "
                         f"with `soundscape model add DIR --name {name} ...`")
    check_model_usable(record, allow_unknown_lineage)
    hashes = checkpoint_hashes(record.path)
    if record.compression_sha256 and hashes["compression"] != record.compression_sha256:
        raise ModelError(f"model {name!r}: {record.path}/compression_state_dict.bin changed since "
                         f"it was registered; register the changed folder as a new model")
    return MusicGenEngine(model_dir=record.path, model_name=record.name,
                          model_sha256=record.lm_sha256, device=device,
                          max_batch=max_batch or DEFAULT_MAX_BATCH)


# --- registering ------------------------------------------------------------------------------

def _known_base(model_dir: str | Path, base_model: str | None):
    from soundscape.rights.licenses import base_model_license

    for candidate in (base_model, str(model_dir), str(Path(model_dir).resolve())):
        if candidate:
            info = base_model_license(candidate)
            if info is not None:
                return info
    return None


def register_checkpoint(ledger, model_dir: str | Path, *, name: str, license: str | None,
                        trained_on: Sequence[str] = (), lineage_unknown: bool = False,
                        base_model: str | None = None):
    """Register an audiocraft checkpoint folder as model ``name`` (both file hashes recorded).

    A folder of Meta's published weights (facebook/musicgen-*, by hub id, folder name or
    Hugging Face cache path) records that model as its base and CC-BY-NC-4.0 as both its base
    and its own license; another license for it is refused.

    Raises:
        ParameterError: neither or both of trained_on and lineage_unknown.
        LicenseError: no license, or a license that contradicts a known base model's.
        ModelError: not a loadable, safe checkpoint folder.
    """
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes, describe_checkpoint
    from soundscape.rights.ledger import ModelEntry

    if bool(trained_on) == bool(lineage_unknown):
        raise ParameterError("say what the model was trained on: --trained-on DATASET (one or "
                             "more), or --lineage-unknown when that cannot be traced")
    for name_ in trained_on:
        _dataset(ledger, name_)  # registers samples/ on first use
    # Reads both files safely (weights only) and refuses configs that would download weights.
    architecture = describe_checkpoint(model_dir, require_offline=True)
    hashes = checkpoint_hashes(model_dir)
    info = _known_base(model_dir, base_model)
    base_license = None
    if info is not None:
        base_model, base_license = info.name, info.license
        if license is None:
            license = info.license
        elif ledger.normalize_license(license) != ledger.normalize_license(info.license):
            raise LicenseError(f"{info.name} weights are {info.license} ({info.source}); a folder "
                               f"of them cannot be registered as {license}: pass "
                               f"--license {info.license}")
    if not license:
        raise LicenseError(f"model {name}: no license given: pass --license EXPR (the model "
                           f"weights' own license, e.g. {STUDIO_LICENSE} or CC-BY-NC-4.0)")
    entry = ModelEntry(
        name=name, engine=ENGINE, lm_sha256=hashes["lm"], compression_sha256=hashes["compression"],
        path=str(Path(model_dir).resolve()), architecture=architecture, base_model=base_model,
        base_model_license=base_license, datasets=tuple(trained_on), license=license,
        lineage_unknown=bool(lineage_unknown),
        details={"model_sha256": hashes["model"], "registered_by": "soundscape model add"})
    return ledger.register_model(entry)


def _dataset(ledger, name: str):
    """The dataset ``name``; the sample library is registered on first use, as everywhere."""
    from soundscape.rights.ledger import SAMPLE_DATASET

    ds = ledger.get_dataset(name)
    if ds is None and name.split("@")[0] == SAMPLE_DATASET:
        ledger.ensure_sample_library()
        ds = ledger.get_dataset(name)
    return ds


def _model_folder(workspace, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ParameterError(f"model name {name!r} must be a plain name (no slashes)")
    return workspace.models_dir / name


def create_model(ledger, workspace, name: str, arch: str, *, license: str | None = None,
                 seed: int = 0):
    """``model new``: a randomly initialised MusicGen of ``arch`` saved in the workspace, registered.

    Its lineage is empty (no base model, no training data) and its own license is the studio's
    unless ``license`` says otherwise.

    Raises:
        LedgerError: the name is taken.
        ParameterError: an unknown architecture or a bad name.
    """
    from soundscape.engines.musicgen.builders import build_model, count_parameters
    from soundscape.engines.musicgen.checkpoint import describe_checkpoint, export_model
    from soundscape.rights.ledger import ModelEntry

    if ledger.get_model(name) is not None:
        raise LedgerError(f"model name {name!r} is already registered; choose another name")
    license = ledger.normalize_license(license or STUDIO_LICENSE, what=f"model {name}")
    folder = _model_folder(workspace, name)
    if folder.exists() and any(folder.iterdir()):
        raise ParameterError(f"{folder} already exists; choose another name or remove it")
    compression_model, lm = build_model(arch, seed=seed)
    hashes = export_model(compression_model, lm, lm.cfg, folder)
    architecture = describe_checkpoint(folder)
    entry = ModelEntry(
        name=name, engine=ENGINE, lm_sha256=hashes["lm"], compression_sha256=hashes["compression"],
        path=str(folder.resolve()), architecture=architecture, license=license,
        details={"model_sha256": hashes["model"], "registered_by": "soundscape model new",
                 "initialisation": {"arch": arch, "seed": seed},
                 "parameters": count_parameters(lm) + count_parameters(compression_model)})
    return ledger.register_model(entry)


# --- training ---------------------------------------------------------------------------------

@dataclass
class TrainOutcome:
    """A finished ``soundscape train``: the training result and the new model's record."""

    result: object
    record: object
    base: object
    dataset: object


def check_assets_under_policy(ledger, assets, policy_name: str) -> None:
    """Refuse up front any asset whose license ``policy_name`` rejects, naming them.

    Raises:
        NotClearedError: one line naming the rejected assets (the first few, then a count).
    """
    from soundscape.rights.ledger import _asset_item
    from soundscape.rights.policy import evaluate, load_policy

    policy = load_policy(policy_name, workspace_home=ledger.home, registry=ledger.registry)
    rejected = []
    verdicts: dict[str, object] = {}
    for asset in assets:
        key = f"{asset.license}|{asset.attribution}"
        if key not in verdicts:
            verdicts[key] = evaluate(policy, [_asset_item("training-data", asset)],
                                     registry=ledger.registry)
        if not verdicts[key].cleared:
            rejected.append(asset)
    if rejected:
        shown = ", ".join(f"{Path(a.path).name if a.path else a.name} "
                          f"({a.license or 'no license'})" for a in rejected[:5])
        more = f" and {len(rejected) - 5} more" if len(rejected) > 5 else ""
        raise NotClearedError(f"policy {policy_name} rejects {len(rejected)} of {len(assets)} "
                              f"training assets: {shown}{more}; remove them from the dataset or "
                              f"train under another policy")


def train_model(ledger, workspace, *, model: str, dataset: str, out: str, stage: str = "lm",
                steps: int = 100, batch_size: int = 4, lr: float | None = None,
                lora_rank: int | None = None, policy: str | None = None, resume: bool = False,
                progress: Callable[[int, int, float], None] | None = None,
                device: str | None = None, segment_seconds: float | None = None,
                seed: int = 0) -> TrainOutcome:
    """``soundscape train``: train a registered model on a dataset and register the result.

    The new model's lineage: its base model (with the base's own license), the base's datasets
    and this dataset. Its own license is the base's (a trained model is an adaptation of its
    base); an unknown-lineage base makes an unknown-lineage model.

    Raises:
        ModelError, LedgerError, ParameterError, NotClearedError: see the messages.
    """
    from soundscape.engines.musicgen.train import train

    base = ledger.get_model(model)
    if base is None:
        raise ModelError(f"unknown model {model!r}: see `soundscape model list`")
    check_model_usable(base, allow_unknown_lineage=True)
    ds = _dataset(ledger, dataset)
    if ds is None:
        raise LedgerError(f"no dataset {dataset!r} in the ledger (see `soundscape dataset list`)")
    assets = ledger.dataset_assets(dataset)
    if not assets:
        raise ParameterError(f"dataset {dataset!r} has no audio to train on")
    if policy:
        check_assets_under_policy(ledger, assets, policy)
    if ledger.get_model(out) is not None:
        raise LedgerError(f"model name {out!r} is already registered; choose another --out name")
    folder = _model_folder(workspace, out)
    if folder.exists() and not resume and (folder / "state_dict.bin").exists():
        raise ParameterError(f"{folder} already holds a model; choose another --out name")
    result = train(base.path, assets, stage=stage, steps=steps, batch_size=batch_size, lr=lr,
                   lora_rank=lora_rank, out_dir=folder, resume=resume, progress=progress,
                   device=device, seed=seed, segment_seconds=segment_seconds,
                   cache_dir=workspace.home / "cache" / "codes",
                   extra_config={"base_model": base.name, "dataset": f"{ds.name}@{ds.version}",
                                 "policy": policy})
    from soundscape.engines.musicgen.checkpoint import describe_checkpoint
    from soundscape.rights.ledger import ModelEntry

    datasets = [f"{d['name']}@{d['version']}" for d in (base.datasets or [])]
    if f"{ds.name}@{ds.version}" not in datasets:
        datasets.append(f"{ds.name}@{ds.version}")
    training = {**result.settings, "losses_first5": result.losses[:5],
                "losses_last5": result.losses[-5:], "seconds": round(result.seconds, 2)}
    entry = ModelEntry(
        name=out, engine=ENGINE, lm_sha256=result.hashes["lm"],
        compression_sha256=result.hashes["compression"], path=str(folder.resolve()),
        architecture=describe_checkpoint(folder), base_model=base.name,
        base_model_license=base.license, datasets=tuple(datasets), license=base.license,
        lineage_unknown=bool(base.lineage_unknown), training=training,
        details={"model_sha256": result.hashes["model"], "registered_by": "soundscape train",
                 "base_model_sha256": base.lm_sha256,
                 "base_model_base": base.base_model, "notes": list(result.notes)})
    record = ledger.register_model(entry)
    return TrainOutcome(result=result, record=record, base=base, dataset=ds)


# --- reporting --------------------------------------------------------------------------------

def model_report(ledger, name: str, *, policies: Sequence[str] | None = None) -> dict:
    """What ``model show`` prints: the record, files, datasets per license, clearance per policy."""
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes
    from soundscape.rights.policy import list_policies

    record = ledger.get_model(name)
    if record is None:
        raise LedgerError(f"no model {name!r} in the ledger (see `soundscape model list`)")
    files = "missing"
    if record.path and Path(record.path).is_dir():
        try:
            hashes = checkpoint_hashes(record.path)
            files = "ok" if (hashes["lm"], hashes["compression"]) == (
                record.lm_sha256, record.compression_sha256) else "changed since registration"
        except ModelError as exc:
            files = str(exc)
    datasets = []
    for d in record.datasets or []:
        counts: dict[str, int] = {}
        for asset in ledger._assets(ledger._dataset_asset_ids(d)):
            counts[asset.license or "none"] = counts.get(asset.license or "none", 0) + 1
        datasets.append({"name": d["name"], "version": d.get("version"), "assets": sum(counts.values()),
                         "licenses": dict(sorted(counts.items()))})
    verdicts = {}
    for policy in policies or list_policies(workspace_home=ledger.home):
        verdicts[policy] = ledger.clear_model(record.name, policy)
    return {"record": record, "files": files, "datasets": datasets, "verdicts": verdicts}
