"""The model service: registered models in the ledger, and the engines that render with them.

Over the engines and the rights ledger, never inside either: it registers MusicGen checkpoints
(hashes, architecture, base model and its license, datasets trained on), creates and trains
models with their lineage, says whether a model may be used, reads each engine's identity and
opens the engine a cue renders with. The rule of the field it enforces: Meta's released
MusicGen weights, EnCodec included, are CC-BY-NC-4.0, so a model registered from them, or
trained from a base under that license, stays CC-BY-NC-4.0; a model made with ``model new``
starts as the studio's own work with no lineage, and its clearance then rests on the data it is
trained on.

The MusicGen modules this uses (checkpoint, builders, train) import torch at their top, so
they are imported inside the functions that build, train or hash a model: the composer, the
ledger commands and ``--help`` never pay for torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from soundscape.config import Workspace, open_workspace
from soundscape.engines import Engine, EngineIdentity, ModelFiles, engine_info, identity
from soundscape.engines import open_engine as open_registered_engine
from soundscape.errors import LedgerError, LicenseError, ModelError, NotClearedError, ParameterError
from soundscape.rights.clearance import asset_item, clear_model
from soundscape.rights.ingest import SAMPLE_DATASET, ensure_sample_library
from soundscape.rights.ledger import Ledger
from soundscape.rights.licenses import base_model_by_content, base_model_license
from soundscape.rights.policy import evaluate, list_policies, load_policy
from soundscape.rights.records import AssetRecord, DatasetRecord, ModelEntry, ModelRecord

# The studio's own license (licenses/terms/LicenseRef-Studio-Owned.toml): for a model made from
# scratch by `model new`.
STUDIO_LICENSE = "LicenseRef-Studio-Owned"
# The engine whose checkpoints this service registers, creates and trains.
MUSICGEN = "musicgen"


# --- using a model ----------------------------------------------------------------------------

def check_model_usable(record: ModelRecord | None, allow_unknown_lineage: bool = False, *,
                       engine: str = MUSICGEN) -> None:
    """Refuse a model that must not generate: unknown, of another engine, or of unknown lineage.

    Args:
        record: a ledger ``ModelRecord`` (or None when the name is not registered).
        allow_unknown_lineage: the user passed --allow-unknown-lineage.
        engine: the engine it is to render with.

    Raises:
        ModelError: with one line saying why and what to do.
    """
    if record is None:
        raise ModelError("unknown model: see `soundscape model list`, or register one with "
                         "`soundscape model add DIR` or `soundscape model new NAME`")
    if record.engine and record.engine != engine:
        raise ModelError(f"model {record.name!r} is a {record.engine} model, not a {engine} one")
    if record.lineage_unknown and not allow_unknown_lineage:
        raise ModelError(f"model {record.name!r} was registered with unknown lineage, so nothing "
                         f"it makes can ever be cleared; pass --allow-unknown-lineage to generate "
                         f"with it anyway (e.g. for internal mock-ups)")
    if not record.path:
        raise ModelError(f"model {record.name!r} has no checkpoint folder on record")


def model_files(record: ModelRecord) -> ModelFiles:
    """What an engine needs of a registered model: its name, folder and recorded hashes."""
    return ModelFiles(name=record.name, path=record.path, lm_sha256=record.lm_sha256,
                      compression_sha256=record.compression_sha256)


def open_engine(engine: str, model: str | None = None, *, workspace: Workspace | None = None,
                allow_unknown_lineage: bool = False, **settings) -> Engine:
    """The engine a cue renders with; a registered model is looked up and checked first.

    Raises:
        ModelError: no model given to an engine that needs one, an unknown or unusable model,
            or files that changed since registration.
    """
    if not engine_info(engine).needs_model:
        return open_registered_engine(engine, **settings)
    if not model:
        raise ModelError(f"the {engine} engine needs a model: pass --model NAME "
                         "(see `soundscape model list`)")
    with Ledger.open(workspace or open_workspace()) as ledger:
        record = ledger.get_model(model)
    if record is None:
        raise ModelError(f"unknown model {model!r}: see `soundscape model list`, or register one "
                         f"with `soundscape model add DIR --name {model} ...`")
    check_model_usable(record, allow_unknown_lineage, engine=engine)
    return open_registered_engine(engine, model_files(record), **settings)


def engine_for_model(name: str | None, *, workspace: Workspace | None = None,
                     allow_unknown_lineage: bool = False, device: str | None = None,
                     max_batch: int | None = None) -> Engine:
    """The MusicGen engine for a registered model, its files checked against the ledger."""
    return open_engine(MUSICGEN, name, workspace=workspace,
                       allow_unknown_lineage=allow_unknown_lineage, device=device,
                       max_batch=max_batch)


def engine_identity(engine: str, model: str | None, *, ledger: Ledger | None) -> EngineIdentity:
    """Name, version, model and model hash of the engine a cue renders with.

    Raises:
        ParameterError: a model the ledger does not know.
    """
    files = None
    if engine_info(engine).needs_model:
        record = ledger.get_model(model) if ledger is not None and model else None
        if record is None:
            raise ParameterError(f"model {model!r} is not registered in the ledger "
                                 f"(see 'soundscape model list')")
        files = model_files(record)
    return identity(engine, files)


def usable_models(ledger: Ledger) -> dict[str, str | None]:
    """Every registered model: None when a batch can use it, else why not.

    A model of unknown lineage is refused (nothing it makes can clear, and a cue list has no
    way to ask for mock-ups), as is one whose checkpoint folder is gone.
    """
    status: dict[str, str | None] = {}
    for record in ledger.list_models():
        try:
            check_model_usable(record)
        except ModelError as exc:
            status[record.name] = str(exc)
            continue
        status[record.name] = (None if Path(record.path).is_dir()
                               else f"its checkpoint folder {record.path} is missing")
    return status


# --- registering ------------------------------------------------------------------------------

def _known_base(model_dir: str | Path, base_model: str | None, hashes: dict[str, str], *,
                workspace_home: Path | None = None):
    """The published base model a folder is, by content first, then by the names it goes by.

    Content: a file whose sha256 is a released checkpoint's (licenses/base-models.toml), so a
    renamed copy is still recognised; the language model's hash names the model, EnCodec's the
    codec alone (a studio LM over Meta's codec is still built on CC-BY-NC-4.0 weights).
    Names: ``--base-model``, the folder's path, a Hugging Face cache path, and the
    ``_name_or_path`` of a transformers config.json beside the checkpoint.
    """
    # imports torch (see the module docstring)
    from soundscape.engines.musicgen.checkpoint import transformers_musicgen

    for key in ("lm", "compression"):
        info = base_model_by_content([hashes.get(key)], workspace_home=workspace_home)
        if info is not None:
            return info
    hf = transformers_musicgen(model_dir)
    for candidate in (base_model, str(model_dir), str(Path(model_dir).resolve()),
                      hf["name_or_path"] if hf else None):
        if candidate:
            info = base_model_license(candidate, workspace_home=workspace_home)
            if info is not None:
                return info
    return None


def _refuse_transformers_folder(model_dir: str | Path, workspace_home: Path | None) -> None:
    """A transformers MusicGen folder without audiocraft files: say what it is and what to do."""
    # imports torch (see the module docstring)
    from soundscape.engines.musicgen.checkpoint import CHECKPOINT_FILES, transformers_musicgen

    hf = transformers_musicgen(model_dir)
    if hf is None or all((Path(model_dir) / f).is_file() for f in CHECKPOINT_FILES):
        return
    info = base_model_license(hf["name_or_path"], workspace_home=workspace_home)
    label = f"{info.name}, weights {info.license}" if info else f"{hf['name_or_path']}, licence unknown"
    raise ModelError(
        f"{model_dir} is a Hugging Face transformers MusicGen folder ({label}), not an audiocraft "
        f"checkpoint: soundscape does not convert transformers weights; Meta's hub repositories "
        f"also publish the audiocraft files ({' and '.join(CHECKPOINT_FILES)}): put those in a "
        f"folder and `soundscape model add` it" + (f" (it will be recorded as {info.license})"
                                                    if info else ""))


def register_checkpoint(ledger: Ledger, model_dir: str | Path, *, name: str, license: str | None,
                        trained_on: Sequence[str] = (), lineage_unknown: bool = False,
                        base_model: str | None = None, base_license: str | None = None
                        ) -> ModelRecord:
    """Register an audiocraft checkpoint folder as model ``name`` (both file hashes recorded).

    A folder of Meta's published weights (facebook/musicgen-*: by its files' published sha256,
    else by hub id, folder name, Hugging Face cache path or transformers config) records that
    model as its base and CC-BY-NC-4.0 as both its base and its own license; another license
    for it is refused. A transformers MusicGen folder without audiocraft files is refused with
    what it is and what to do. A ``base_model`` outside licenses/base-models.toml takes its
    licence from ``base_license``, or from the ledger when it is a model registered here.

    Raises:
        ParameterError: neither or both of trained_on and lineage_unknown; a base_license
            without a base_model.
        LicenseError: no license, a license that contradicts a known base model's, or a
            base model of unknown licence.
        ModelError: not a loadable, safe checkpoint folder.
    """
    # imports torch (see the module docstring)
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes, describe_checkpoint

    if base_license is not None and not base_model:
        raise ParameterError("--base-license needs --base-model ID: the license of which base?")
    if bool(trained_on) == bool(lineage_unknown):
        raise ParameterError("say what the model was trained on: --trained-on DATASET (one or "
                             "more), or --lineage-unknown when that cannot be traced")
    for name_ in trained_on:
        _dataset(ledger, name_)  # registers samples/ on first use
    _refuse_transformers_folder(model_dir, ledger.home)
    # Reads both files safely (weights only) and refuses configs that would download weights.
    architecture = describe_checkpoint(model_dir, require_offline=True)
    hashes = checkpoint_hashes(model_dir)
    info = _known_base(model_dir, base_model, hashes, workspace_home=ledger.home)
    if info is not None:
        if base_license is not None and (ledger.normalize_license(base_license, what="--base-license")
                                         != ledger.normalize_license(info.license)):
            raise LicenseError(f"{info.name} weights are {info.license} ({info.source}), not "
                               f"{base_license}: leave --base-license out")
        base_model, base_license = info.name, info.license
        if license is None:
            license = info.license
        elif ledger.normalize_license(license) != ledger.normalize_license(info.license):
            raise LicenseError(f"{info.name} weights are {info.license} ({info.source}); a folder "
                               f"of them cannot be registered as {license}: pass "
                               f"--license {info.license}")
    elif base_model:
        base_license = _base_license(ledger, base_model, base_license)
    if not license:
        raise LicenseError(f"model {name}: no license given: pass --license EXPR (the model "
                           f"weights' own license, e.g. {STUDIO_LICENSE} or CC-BY-NC-4.0)")
    entry = ModelEntry(
        name=name, engine=MUSICGEN, lm_sha256=hashes["lm"], compression_sha256=hashes["compression"],
        path=str(Path(model_dir).resolve()), architecture=architecture, base_model=base_model,
        base_model_license=base_license, datasets=tuple(trained_on), license=license,
        lineage_unknown=bool(lineage_unknown),
        details={"model_sha256": hashes["model"], "registered_by": "soundscape model add"})
    return ledger.register_model(entry)


def _base_license(ledger: Ledger, base_model: str, base_license: str | None) -> str:
    """The licence of a base model outside licenses/base-models.toml: as given, else the
    licence of the model of that name registered here."""
    if base_license is not None:
        return ledger.normalize_license(base_license, what="--base-license")
    registered = ledger.get_model(base_model)
    if registered is not None and registered.license:
        return registered.license
    raise LicenseError(f"base model {base_model!r} is not a published model soundscape knows "
                       "(licenses/base-models.toml) nor a model registered here: give its "
                       "license with --base-license EXPR")


def _dataset(ledger: Ledger, name: str) -> DatasetRecord | None:
    """The dataset ``name``; the sample library is registered on first use, as everywhere."""
    ds = ledger.get_dataset(name)
    if ds is None and name.split("@")[0] == SAMPLE_DATASET:
        ensure_sample_library(ledger)
        ds = ledger.get_dataset(name)
    return ds


def _model_folder(workspace: Workspace, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ParameterError(f"model name {name!r} must be a plain name (no slashes)")
    return workspace.models_dir / name


def create_model(ledger: Ledger, workspace: Workspace, name: str, arch: str, *,
                 license: str | None = None, seed: int = 0,
                 conditioning: str = "description", t5_dir: str | Path | None = None) -> ModelRecord:
    """``model new``: a randomly initialised MusicGen of ``arch`` saved in the workspace, registered.

    Its lineage is empty (no base model, no training data) and its own license is the studio's
    unless ``license`` says otherwise. ``conditioning`` is "description", "attributes" or "t5"
    (see :mod:`soundscape.engines.musicgen.conditioning`); ``t5_dir`` is the studio's t5-base
    folder for "t5" (default: the Hugging Face cache), recorded with its license and weights hash.

    Raises:
        LedgerError: the name is taken.
        ParameterError: an unknown architecture or conditioning, or a bad name.
    """
    # imports torch (see the module docstring)
    from omegaconf import OmegaConf

    from soundscape.engines.musicgen.builders import build_model, count_parameters
    from soundscape.engines.musicgen.checkpoint import describe_checkpoint, export_model

    if ledger.get_model(name) is not None:
        raise LedgerError(f"model name {name!r} is already registered; choose another name")
    license = ledger.normalize_license(license or STUDIO_LICENSE, what=f"model {name}")
    folder = _model_folder(workspace, name)
    if folder.exists() and any(folder.iterdir()):
        raise ParameterError(f"{folder} already exists; choose another name or remove it")
    compression_model, lm = build_model(arch, seed=seed, conditioning=conditioning, t5_dir=t5_dir)
    encoder = lm.cfg.soundscape.conditioning.get("text_encoder")
    hashes = export_model(compression_model, lm, lm.cfg, folder)
    architecture = describe_checkpoint(folder)
    entry = ModelEntry(
        name=name, engine=MUSICGEN, lm_sha256=hashes["lm"], compression_sha256=hashes["compression"],
        path=str(folder.resolve()), architecture=architecture, license=license,
        details={"model_sha256": hashes["model"], "registered_by": "soundscape model new",
                 "initialisation": {"arch": arch, "seed": seed, "conditioning": conditioning},
                 "parameters": count_parameters(lm) + count_parameters(compression_model),
                 # A supplied text encoder is an ingredient of the model: named, with its license.
                 **({"text_encoder": OmegaConf.to_container(encoder)} if encoder is not None
                    else {})})
    return ledger.register_model(entry)


# --- training ---------------------------------------------------------------------------------

@dataclass
class TrainOutcome:
    """A finished ``soundscape train``: the training result and the new model's record."""

    result: object  # soundscape.engines.musicgen.train.TrainResult
    record: ModelRecord | None  # None on the ranks other than 0 of a multi-process job
    base: ModelRecord
    dataset: DatasetRecord


def check_assets_under_policy(ledger: Ledger, assets: Sequence[AssetRecord],
                              policy_name: str) -> None:
    """Refuse up front any asset whose license ``policy_name`` rejects, naming them.

    Raises:
        NotClearedError: one line naming the rejected assets (the first few, then a count).
    """
    policy = load_policy(policy_name, workspace_home=ledger.home, registry=ledger.registry)
    rejected = []
    verdicts: dict[str, object] = {}
    for asset in assets:
        key = f"{asset.license}|{asset.attribution}"
        if key not in verdicts:
            verdicts[key] = evaluate(policy, [asset_item("training-data", asset)],
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


def check_codec_trained(ledger: Ledger, *, model: str, dataset: str, stage: str = "lm",
                        allow_untrained_codec: bool = False) -> None:
    """Refuse the LM stage on a model whose codec was never trained, naming the command to run.

    Raises:
        ModelError: one line: the model's codec is random, and how to train it first.
    """
    if stage != "lm" or allow_untrained_codec:
        return
    base = ledger.get_model(model)
    if base is None or not base.path:
        return  # train_model says what is wrong with it
    # imports torch (see the module docstring)
    from soundscape.engines.musicgen.codec_train import require_trained_codec

    require_trained_codec(base.path, how=(
        f"`soundscape train --model {model} --dataset {dataset} --stage codec --out "
        f"{model}-codec`, then train the LM with --model {model}-codec"))


def train_model(ledger: Ledger, workspace: Workspace, *, model: str, dataset: str, out: str, stage: str = "lm",
                steps: int = 100, batch_size: int = 4, lr: float | None = None,
                lora_rank: int | None = None, policy: str | None = None, resume: bool = False,
                progress: Callable[[int, int, float], None] | None = None,
                device: str | None = None, segment_seconds: float | None = None,
                seed: int = 0, allow_untrained_codec: bool = False,
                validate_every: int | None = None,
                on_validation: Callable[[dict], None] | None = None, **scale) -> TrainOutcome:
    """``soundscape train``: train a registered model on a dataset and register the result.

    The new model's lineage: its base model (with the base's own license), the base's datasets
    and this dataset. Its own license is the base's (a trained model is an adaptation of its
    base); an unknown-lineage base makes an unknown-lineage model.

    The LM stage refuses a base whose codec was never trained (a ``model new`` model), saying
    which command trains it; ``allow_untrained_codec`` is for tests and experiments.

    ``scale`` passes the multi-process and schedule options on to the trainer (``dist``,
    ``accumulate``, ``warmup``, ``validate_every``, ...). In a multi-process job every rank
    trains and rank 0 alone registers; the others return with ``record`` None.

    Raises:
        ModelError, LedgerError, ParameterError, NotClearedError: see the messages.
    """
    # imports torch (see the module docstring)
    from soundscape.engines.musicgen.train import train

    base = ledger.get_model(model)
    if base is None:
        raise ModelError(f"unknown model {model!r}: see `soundscape model list`")
    check_model_usable(base, allow_unknown_lineage=True)
    # Before the dataset is looked up (which registers soundscape-samples on first use), so a
    # refusal writes nothing.
    check_codec_trained(ledger, model=model, dataset=dataset, stage=stage,
                        allow_untrained_codec=allow_untrained_codec)
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
                   allow_untrained_codec=allow_untrained_codec, validate_every=validate_every,
                   on_validation=on_validation,
                   extra_config={"base_model": base.name, "dataset": f"{ds.name}@{ds.version}",
                                 "policy": policy}, **scale)
    if not result.is_main:  # one writer of rights facts: rank 0
        return TrainOutcome(result=result, record=None, base=base, dataset=ds)
    # imports torch (see the module docstring)
    from soundscape.engines.musicgen.checkpoint import describe_checkpoint

    datasets = [f"{d['name']}@{d['version']}" for d in (base.datasets or [])]
    if f"{ds.name}@{ds.version}" not in datasets:
        datasets.append(f"{ds.name}@{ds.version}")
    training = {**result.settings, "losses_first5": result.losses[:5],
                "losses_last5": result.losses[-5:], "seconds": round(result.seconds, 2)}
    entry = ModelEntry(
        name=out, engine=MUSICGEN, lm_sha256=result.hashes["lm"],
        compression_sha256=result.hashes["compression"], path=str(folder.resolve()),
        architecture=describe_checkpoint(folder), base_model=base.name,
        base_model_license=base.license, datasets=tuple(datasets), license=base.license,
        lineage_unknown=bool(base.lineage_unknown), training=training,
        details={"model_sha256": result.hashes["model"], "registered_by": "soundscape train",
                 "base_model_sha256": base.lm_sha256,
                 "base_model_base": base.base_model, "notes": list(result.notes),
                 # The text encoder is not in the weights: it comes with the base model.
                 **({"text_encoder": base.details["text_encoder"]}
                    if (base.details or {}).get("text_encoder") else {})})
    record = ledger.register_model(entry)
    return TrainOutcome(result=result, record=record, base=base, dataset=ds)


# --- reporting --------------------------------------------------------------------------------

def model_report(ledger: Ledger, name: str, *, policies: Sequence[str] | None = None) -> dict:
    """What ``model show`` prints: the record, files, datasets per license, clearance per policy."""
    # imports torch (see the module docstring)
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes

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
        for asset in ledger.assets(ledger.dataset_asset_ids(d)):
            counts[asset.license or "none"] = counts.get(asset.license or "none", 0) + 1
        datasets.append({"name": d["name"], "version": d.get("version"), "assets": sum(counts.values()),
                         "licenses": dict(sorted(counts.items()))})
    verdicts = {}
    for policy in policies or list_policies(workspace_home=ledger.home):
        verdicts[policy] = clear_model(ledger, record.name, policy)
    return {"record": record, "files": files, "datasets": datasets, "verdicts": verdicts}
