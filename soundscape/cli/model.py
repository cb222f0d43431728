"""Commands: ``model add``, ``new``, ``list`` and ``show``: MusicGen models and their lineage.

Each command is a thin call into :mod:`soundscape.models`; torch loads only
when a model is built (``model new``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soundscape.cli.common import Json, print_json, workspace
from soundscape.cli.ledger import open_ledger, say
# Library services are imported inside each command: `soundscape --help` loads none of them.

model_app = typer.Typer(help="MusicGen models: register checkpoints, create new ones, see lineage.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(model_app, name="model")


def _size(n: int | None) -> str:
    if not n:
        return "?"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _arch_line(arch) -> str:
    if not isinstance(arch, dict):
        return str(arch or "?")
    size = arch.get("arch") or "custom"
    total = (arch.get("lm_parameters") or 0) + (arch.get("compression_parameters") or 0)
    return (f"{size}: dim {arch.get('dim')}, {arch.get('num_layers')} layers, "
            f"{arch.get('num_heads')} heads, {arch.get('n_q')} codebooks x {arch.get('card')}, "
            f"{arch.get('window_seconds')} s window at {arch.get('sample_rate')} Hz; "
            f"{_size(total)} parameters (LM {_size(arch.get('lm_parameters'))})")


@model_app.command("add")
def add(
    folder: Annotated[Path, typer.Argument(
        help="An audiocraft checkpoint folder (state_dict.bin, compression_state_dict.bin).")],
    name: Annotated[str, typer.Option("--name", help="The name to register it under.")],
    license: Annotated[Optional[str], typer.Option(
        "--license", help="The weights' own license (SPDX expression). Meta's MusicGen weights: "
                          "CC-BY-NC-4.0, recorded automatically.")] = None,
    trained_on: Annotated[Optional[list[str]], typer.Option(
        "--trained-on", help="A registered dataset it was trained on (repeat for several).")] = None,
    lineage_unknown: Annotated[bool, typer.Option(
        "--lineage-unknown", help="What it was trained on cannot be traced: its outputs will "
                                  "never clear, and it generates only with "
                                  "--allow-unknown-lineage.")] = False,
    base_model: Annotated[Optional[str], typer.Option(
        help="The published model it is (or derives from), e.g. facebook/musicgen-small.")] = None,
    base_license: Annotated[Optional[str], typer.Option(
        "--base-license", help="The base model's license (SPDX expression), for a base outside "
                               "licenses/base-models.toml, e.g. LicenseRef-Stability-AI-Community.")] = None,
) -> None:
    """Register a checkpoint folder as a model, recording both checkpoint hashes and its lineage."""
    from soundscape.models import register_checkpoint

    with open_ledger(reconcile=True) as ledger:
        record = register_checkpoint(ledger, folder, name=name, license=license,
                                     trained_on=trained_on or (), lineage_unknown=lineage_unknown,
                                     base_model=base_model, base_license=base_license)
    say(f"model {record.name} ({record.id}): {record.license}"
        + (f", base {record.base_model} ({record.base_model_license})" if record.base_model else "")
        + ("; lineage unknown" if record.lineage_unknown else ""))
    say(f"  state_dict.bin {record.lm_sha256}")
    say(f"  compression_state_dict.bin {record.compression_sha256}")


@model_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="The new model's name.")],
    arch: Annotated[str, typer.Option(help="Architecture: tiny, small (MusicGen-small's shape) "
                                           "or medium.")],
    license: Annotated[Optional[str], typer.Option(
        help="Its own license (default LicenseRef-Studio-Owned).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the random weights.")] = 0,
    conditioning: Annotated[str, typer.Option(
        help="attributes: mood, key, tempo, textures and instruments as the composer reads "
             "prompts, plus the normalised description (so --key, --bpm and --mood steer it); "
             "description: one look-up row per whole description; t5: attributes, with the "
             "description read by the studio's t5-base (Apache-2.0) from --t5-dir or the "
             "local Hugging Face cache, never downloaded.")] = "attributes",
    t5_dir: Annotated[Optional[Path], typer.Option(
        "--t5-dir", help="With --conditioning t5: a t5-base folder (as transformers' "
                         "save_pretrained writes it); default the Hugging Face cache.")] = None,
) -> None:
    """Create a randomly initialised MusicGen to train from scratch on the studio's licensed data."""
    from soundscape.models import create_model

    ws = workspace()
    with open_ledger(reconcile=True) as ledger:
        record = create_model(ledger, ws, name, arch, license=license, seed=seed,
                              conditioning=conditioning, t5_dir=t5_dir)
    say(f"model {record.name} ({record.id}): {_arch_line(record.architecture)}")
    say(f"  {record.path}; license {record.license}; lineage: none yet (train it with "
        f"`soundscape train --model {record.name} --dataset NAME --out NEW`)")


@model_app.command("list")
def list_models(as_json: Json = False) -> None:
    """Every registered model: name, license, base model, datasets, record id."""
    with open_ledger() as ledger:
        models = ledger.list_models()
    if as_json:
        print_json([{"name": m.name, "id": m.id, "license": m.license, "base_model": m.base_model,
                     "lineage_unknown": m.lineage_unknown, "datasets": list(m.datasets)} for m in models])
        return
    for m in models:
        lineage = ("lineage unknown" if m.lineage_unknown else
                   ", ".join(f"{d['name']}@{d['version']}" for d in m.datasets) or "no training data")
        base = f" base {m.base_model}" if m.base_model else ""
        say(f"{m.name:<24} {m.license or '?':<26}{base}  [{lineage}]  {m.id}")
    if not models:
        say("no models: `soundscape model new NAME --arch small` or `soundscape model add DIR`")


@model_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A registered model's name.")],
    policy: Annotated[Optional[list[str]], typer.Option(
        help="Clear under these policies only (default: every policy).")] = None,
    as_json: Json = False,
) -> None:
    """Architecture, size, hashes, base model, datasets per license and clearance per policy."""
    from soundscape.models import model_report

    with open_ledger() as ledger:
        report = model_report(ledger, name, policies=policy)
    m = report["record"]
    if as_json:
        print_json({"name": m.name, "id": m.id, "engine": m.engine, "recorded": m.recorded,
                    "architecture": m.architecture, "path": m.path, "files": report["files"],
                    "lm_sha256": m.lm_sha256, "compression_sha256": m.compression_sha256,
                    "license": m.license, "base_model": m.base_model,
                    "base_model_license": m.base_model_license, "lineage_unknown": m.lineage_unknown,
                    "datasets": report["datasets"], "training": m.training,
                    "text_encoder": (m.details or {}).get("text_encoder"),
                    "verdicts": {name: {"state": v.state, "reasons": list(v.reasons),
                                        "conditions": list(v.conditions)}
                                 for name, v in report["verdicts"].items()}})
        return
    say(f"model {m.name} ({m.id}), engine {m.engine}, recorded {m.recorded}")
    say(f"  architecture: {_arch_line(m.architecture)}")
    say(f"  folder: {m.path} (files {report['files']})")
    say(f"  state_dict.bin sha256 {m.lm_sha256}")
    say(f"  compression_state_dict.bin sha256 {m.compression_sha256}")
    say(f"  license: {m.license or 'none recorded'}")
    if m.base_model:
        say(f"  base model: {m.base_model} ({m.base_model_license or 'license unknown'})"
            + (f", source {m.base_model_source}" if m.base_model_source else ""))
    else:
        say("  base model: none (trained from scratch or initialised here)")
    encoder = (m.details or {}).get("text_encoder")
    if encoder:
        say(f"  text encoder: {encoder['name']} ({encoder['license']}) from {encoder['path']}, "
            f"weights sha256 {encoder.get('weights_sha256', '?')}")
    if m.lineage_unknown:
        say("  training data: UNKNOWN (outputs never clear)")
    elif not report["datasets"]:
        say("  training data: none")
    for d in report["datasets"]:
        counts = ", ".join(f"{n} {lic}" for lic, n in d["licenses"].items())
        say(f"  trained on {d['name']}@{d['version']}: {d['assets']} assets ({counts})")
    if m.training:
        t = m.training
        say(f"  training: stage {t.get('stage')}, {t.get('steps')} steps, lr {t.get('lr')}, "
            f"batch {t.get('batch_size')}" + (f", LoRA rank {t['lora_rank']}" if t.get("lora_rank")
                                             else "") + f", final loss {t.get('final_loss')}")
    codec = m.architecture.get("codec") if isinstance(m.architecture, dict) else None
    if codec:
        say(f"  codec: {_codec_line(codec)}")
    for policy_name, verdict in report["verdicts"].items():
        say(f"  {policy_name}: {verdict.status}")
        for reason in verdict.reasons if verdict.status == "NOT CLEARED" else ():
            say(f"    - {reason}")
        for condition in verdict.conditions:
            say(f"    condition: {condition}")
        for line in verdict.obligations:
            say(f"    credit: {line}")


def _codec_line(codec: dict) -> str:
    """Whether the model's EnCodec was trained, with its held-out figures when recorded."""
    if not codec.get("trained"):
        return ("never trained (random weights): train it with `soundscape train --stage codec` "
                "before the LM")
    if codec.get("source"):
        return f"trained {codec['source']}"
    line = f"trained, {codec.get('steps')} steps" + (f" on {codec['dataset']}"
                                                     if codec.get("dataset") else "")
    held = codec.get("heldout") or {}
    before, after = held.get("untrained"), held.get("trained")
    if before and after:
        line += (f"; held-out ({held.get('clips')} clips) mel distance "
                 f"{before['mel_distance']:.4f} -> {after['mel_distance']:.4f}, SI-SNR "
                 f"{before['si_snr_db']:.2f} -> {after['si_snr_db']:.2f} dB")
    return line
