"""Deliver one render: master it, write the file with its metadata and sidecar; then record it.

Two halves, so a batch can run the first in worker processes and keep the driver the single
ledger writer: :func:`write_delivery` (master + file + sidecar, no ledger) and
:func:`record_delivery` (ledger record, then the sidecar learns its record id).

Order matters for crash safety (issue 3): the caller journals a pending entry first, the audio
is renamed into place complete, the sidecar follows, then the record commits. A crash anywhere
leaves either nothing or a complete file that ``ledger reconcile`` (run before every writing
command) records.
"""

from __future__ import annotations

from datetime import datetime, timezone

from soundscape import __version__

SIDECAR_VERSION = 1
BIT_DEPTH = 24  # broadcast delivery: 24-bit PCM (EBU R 128 s1 / Netflix deliverables)


def sidecar_path_for(path):
    return path.with_name(path.name + ".json")


def write_delivery(rendered, job) -> dict:
    """Master ``rendered``, write the file and its sidecar as ``job`` asks; return the sidecar."""
    from soundscape.atomic import write_json_atomic
    from soundscape.audio.io import BextInfo, file_sha256, make_ixml, write_audio
    from soundscape.audio.master import master

    spec = job.spec
    mastered = master(rendered, job.preset)
    now = datetime.now(timezone.utc)
    lineage = rendered.lineage
    engine_label = f"{lineage.engine} {lineage.engine_version}" + (f" model {lineage.model}" if lineage.model else "")
    bext = BextInfo(
        description=spec.prompt,
        originator="soundscape",
        originator_reference=f"SS{now:%Y%m%d%H%M%S}{spec.seed % 100000:05d}",
        origination_date=f"{now:%Y-%m-%d}",
        origination_time=f"{now:%H:%M:%S}",
        loudness_value=mastered.loudness_lufs,
        loudness_range=mastered.loudness_range_lu,
        max_true_peak_level=mastered.true_peak_dbtp,
        max_momentary_loudness=mastered.max_momentary_lufs,
        max_short_term_loudness=mastered.max_short_term_lufs,
        coding_history=(f"A=PCM,F={mastered.sample_rate},W={BIT_DEPTH},M=stereo,"
                        f"T=soundscape {__version__}; {engine_label}\r\n"),
    )
    parameters = spec.describe()
    ixml = make_ixml({
        "project": spec.production or "soundscape",
        "scene": spec.episode or "",
        "take": spec.cue_id or "",
        "note": spec.prompt,
        "engine": engine_label,
        "seed": spec.seed,
        "preset": job.preset,
        "parameters": parameters,
    }) if job.fmt == "wav" else None
    tags = {"title": spec.cue_id or spec.prompt[:60], "comment": spec.prompt,
            "software": f"soundscape {__version__}", "date": f"{now:%Y-%m-%d}"}

    path, sidecar_path = job.path, sidecar_path_for(job.path)
    written_sha256 = write_audio(path, mastered.audio, mastered.sample_rate, fmt=job.fmt,
                                 bit_depth=BIT_DEPTH, bext=bext if job.fmt == "wav" else None,
                                 ixml=ixml, tags=tags, overwrite=job.overwrite)
    sidecar = {
        "soundscape_sidecar": SIDECAR_VERSION,
        "file": path.name,
        "audio_sha256": written_sha256,
        "file_sha256": file_sha256(path),
        "format": job.fmt,
        "sample_rate": mastered.sample_rate,
        "bit_depth": BIT_DEPTH,
        "channels": int(mastered.audio.shape[0]),
        "duration": mastered.audio.shape[-1] / mastered.sample_rate,
        "created": now.isoformat(timespec="seconds"),
        "engine": {"name": lineage.engine, "version": lineage.engine_version,
                   "model": lineage.model, "model_sha256": lineage.model_sha256},
        "soundscape_version": __version__,
        "prompt": spec.prompt,
        "kind": spec.kind,
        "seed": spec.seed,
        "parameters": parameters,
        "intent": spec.intent.describe(),
        "mastering": mastered.describe(),
        "samples": [s.__dict__ for s in lineage.samples],
        "ingredients": [s.__dict__ for s in lineage.ingredients],
        "production": spec.production,
        "episode": spec.episode,
        "cue_id": spec.cue_id,
        "air_date": job.air_date,
        "territories": list(job.territories),
        "content_key": job.content_key,
        "details": rendered.details,
        "ledger": None,
    }
    write_json_atomic(sidecar_path, sidecar)
    return sidecar


def record_delivery(sidecar: dict, job, *, ledger=None):
    """Record a written output in the ledger (when given) and return its Delivery."""
    from soundscape.atomic import write_json_atomic
    from soundscape.pipeline import Delivery

    path, sidecar_path = job.path, sidecar_path_for(job.path)
    record_id = None
    if ledger is not None:
        from soundscape.rights.ledger import OutputEntry

        record = ledger.record_output(OutputEntry.from_sidecar(sidecar, path))
        record_id = record.id
        sidecar["ledger"] = {"record_id": record.id, "checkpoint": ledger.latest_checkpoint_dict()}
        write_json_atomic(sidecar_path, sidecar)
        # Content credentials (issue 6): sign last, after bext/iXML are written and the record
        # commits, so the C2PA manifest can carry the record id and its inclusion proof. Only
        # when the workspace has a signing certificate; the audio hash is unchanged by signing.
        from soundscape.rights.credentials import sign_recorded_output

        signed_sha256 = sign_recorded_output(path, sidecar, record, ledger)
        if signed_sha256 is not None:
            sidecar["file_sha256"] = signed_sha256
            write_json_atomic(sidecar_path, sidecar)
    mastering = sidecar["mastering"]
    return Delivery(spec=job.spec, path=path, sidecar_path=sidecar_path,
                    audio_sha256=sidecar["audio_sha256"], duration=sidecar["duration"],
                    loudness_lufs=mastering["loudness_lufs"],
                    true_peak_dbtp=mastering["true_peak_dbtp"], preset=job.preset,
                    record_id=record_id, samples=[s["id"] for s in sidecar["samples"]])


def reconcile(ledger):
    """Resolve crash leftovers, then sign the outputs it recorded (the crash may have come
    between the record and the signature). Returns the ledger's ReconcileReport."""
    from pathlib import Path

    report = ledger.reconcile()
    for audio, record_id in report.recorded:
        _sign_if_unsigned(Path(audio), ledger.get_output(record_id), ledger)
    return report


def _sign_if_unsigned(path, record, ledger) -> None:
    import json

    from soundscape.atomic import write_json_atomic
    from soundscape.rights.credentials import read_credentials, sign_recorded_output

    if read_credentials(path) is not None:
        return
    sidecar_path = sidecar_path_for(path)
    sidecar = json.loads(sidecar_path.read_text())
    signed_sha256 = sign_recorded_output(path, sidecar, record, ledger)
    if signed_sha256 is not None:
        sidecar["file_sha256"] = signed_sha256
        write_json_atomic(sidecar_path, sidecar)
