"""Deliver one render: master it, write the file with its metadata and sidecar; record and sign it.

Two halves, so a batch can run the first in worker processes and keep the driver the single
ledger writer: :func:`write_delivery` (master, file, sidecar; no ledger) and
:func:`record_delivery` (ledger record, the sidecar learns its record id, C2PA signature).
The order of the two halves, and the journal around them, is :mod:`soundscape.pipeline`'s.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from soundscape import __version__
from soundscape.atomic import write_json_atomic
from soundscape.errors import SoundscapeError
from soundscape.facts import OutputFacts
from soundscape.render import Render
from soundscape.rights.credentials import read_credentials, sign_recorded_output
from soundscape.rights.ingest import SAMPLE_DATASET, ensure_sample_library, ensure_sound_banks
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import OutputRecord
from soundscape.spec import CueSpec

BIT_DEPTH = 24  # broadcast delivery: 24-bit PCM (EBU R 128 s1 / Netflix deliverables)


@dataclass(frozen=True)
class Job:
    """One cue to render, and how its file is delivered (where, format, preset, rights facts)."""

    spec: CueSpec
    path: Path
    preset: str = "ebu-r128"
    fmt: str = "wav"
    overwrite: bool = False
    air_date: str | None = None
    territories: tuple[str, ...] = ()
    content_key: str | None = None
    # Every output is marked (issue 13); tests switch it off to make unmarked renders.
    watermark: bool = True


@dataclass
class Delivery:
    """A delivered (and, when a ledger was given, recorded) output: what summaries show."""

    spec: CueSpec
    path: Path
    sidecar_path: Path
    facts: OutputFacts
    preset: str
    record_id: str | None = None

    @property
    def audio_sha256(self) -> str:
        return self.facts.audio_sha256

    @property
    def duration(self) -> float:
        return self.facts.duration

    @property
    def loudness_lufs(self) -> float:
        return self.facts.mastering["loudness_lufs"]

    @property
    def true_peak_dbtp(self) -> float:
        return self.facts.mastering["true_peak_dbtp"]

    @property
    def samples(self) -> list[str]:
        """The ids of the sample-library files used."""
        return [s["id"] for s in self.facts.samples]


def _time_reference(cue, sample_rate: int) -> tuple[int, dict]:
    """The bext TimeReference of a cue (samples since midnight of its ``timecode_in``; 0 for
    none) and the iXML SPEED timecode fields."""
    from soundscape.production import DEFAULT_FRAME_RATE, DROP_FRAME_RATES, exact_rate, timecode_to_samples

    frame_rate = float(cue.frame_rate) if cue is not None and cue.frame_rate else DEFAULT_FRAME_RATE
    exact = exact_rate(frame_rate)
    drop = bool(cue is not None and cue.timecode_in and ";" in cue.timecode_in
                and round(frame_rate, 2) in DROP_FRAME_RATES)
    timecode = {"timecode_rate": f"{exact.numerator}/{exact.denominator}",
                "timecode_flag": "DF" if drop else "NDF"}
    if cue is None or not cue.timecode_in:
        return 0, timecode
    return timecode_to_samples(cue.timecode_in, frame_rate, sample_rate), timecode


def sidecar_path_for(path: Path) -> Path:
    """Where the sidecar of a delivered file goes: ``<file>.json`` beside it."""
    return path.with_name(path.name + ".json")


def write_delivery(rendered: Render, job: Job, *, key_id: int = 0, seal=None) -> dict:
    """Master ``rendered``, mark it, write the file and its sidecar as ``job`` asks; return the
    sidecar.

    The audio is renamed into place complete, then the sidecar: a file never appears without
    being whole, and a sidecar never without its file.

    Args:
        key_id: the ledger's key id the mark carries (:func:`soundscape.watermark.payload.key_id_of`).
        seal: AudioSeal weights (:func:`soundscape.watermark.audioseal.load`) for a second
            marker after soundscape's own; recorded as ``watermark["second"]``.
    """
    # Mastering and file writing pull in numpy and scipy; recording and signing (what the
    # driver and `ledger reconcile` do) never need them.
    from soundscape.audio.io import BextInfo, file_sha256, make_ixml, write_audio
    from soundscape.audio.master import master

    spec = job.spec
    # The render is not needed after mastering: master in its own array (a copy the size of
    # the bed saved, for a 10-minute bed 0.6 s of CPU).
    mastered = master(rendered, job.preset, in_place=True)
    mark = None
    if job.watermark:
        from soundscape.watermark.payload import mark_id_for

        made_from = {"parameters": spec.describe(), "preset": job.preset,
                     "engine": rendered.lineage.engine, "engine_version": rendered.lineage.engine_version,
                     "model": rendered.lineage.model, "model_sha256": rendered.lineage.model_sha256}
        mark_id = mark_id_for(key_id, made_from)
        mark = mark_master(mastered, key_id=key_id, mark_id=mark_id)
        if seal is not None:
            from soundscape.watermark.audioseal import seal_master

            mark["second"] = seal_master(mastered, seal, key_id=key_id, mark_id=mark_id)
    now = datetime.now(timezone.utc)
    lineage = rendered.lineage
    engine_label = f"{lineage.engine} {lineage.engine_version}" + (f" model {lineage.model}" if lineage.model else "")
    cue = spec.cue
    time_reference, timecode = _time_reference(cue, mastered.sample_rate)
    bext = BextInfo(
        description=spec.prompt,
        time_reference=time_reference,
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
    # An engine that does not read the composer's intent (musicgen) says what its model received;
    # the sidecar records that, never a key or tempo the model was not given.
    intent = rendered.details.get("intent") or spec.intent.describe()
    parameters["intent"] = intent
    file_uid = uuid.uuid4().hex.upper()
    ixml = make_ixml({
        "project": spec.production or "soundscape",
        "scene": spec.episode or "",
        "take": spec.cue_id or "",
        "note": spec.prompt,
        "file_uid": file_uid,
        "sample_rate": mastered.sample_rate,
        "bit_depth": BIT_DEPTH,
        "channels": mastered.audio.shape[0],
        "time_reference": time_reference,
        **timecode,
        "engine": engine_label,
        "seed": spec.seed,
        "preset": job.preset,
        "parameters": parameters,
    }) if job.fmt == "wav" else None
    title = (cue.title if cue is not None and cue.title else None) or spec.cue_id or spec.prompt[:60]
    tags = {"title": title, "comment": spec.prompt,
            "software": f"soundscape {__version__}", "date": f"{now:%Y-%m-%d}"}
    comments = {"production": spec.production, "episode": spec.episode, "cue_id": spec.cue_id,
                "timecode_in": cue.timecode_in if cue is not None else None,
                "time_reference": time_reference or None, "file_uid": file_uid}

    path = job.path
    hashes: dict = {}
    written_sha256 = write_audio(path, mastered.audio, mastered.sample_rate, fmt=job.fmt,
                                 bit_depth=BIT_DEPTH, bext=bext,
                                 ixml=ixml, tags=tags, comments=comments if job.fmt == "flac" else None,
                                 overwrite=job.overwrite, hashes=hashes)
    facts = OutputFacts(
        audio_sha256=written_sha256, file_sha256=hashes.get("file_sha256") or file_sha256(path),
        path=str(path),
        engine=lineage.engine, engine_version=lineage.engine_version, model=lineage.model,
        model_sha256=lineage.model_sha256, prompt=spec.prompt, cue_kind=spec.kind,
        parameters=parameters, intent=intent, seed=spec.seed,
        samples=[s.__dict__ for s in lineage.samples],
        ingredients=[s.__dict__ for s in lineage.ingredients],
        presets=[p.__dict__ for p in lineage.presets],
        created=now.isoformat(timespec="seconds"),
        duration=mastered.audio.shape[-1] / mastered.sample_rate, format=job.fmt,
        sample_rate=mastered.sample_rate, bit_depth=BIT_DEPTH,
        channels=int(mastered.audio.shape[0]), mastering=mastered.describe(),
        production=spec.production, episode=spec.episode, cue_id=spec.cue_id,
        air_date=job.air_date, territories=list(job.territories), content_key=job.content_key,
        soundscape_version=__version__, watermark=mark)
    sidecar = facts.sidecar(details=rendered.details)
    write_json_atomic(sidecar_path_for(path), sidecar)
    return sidecar


def mark_master(mastered, *, key_id: int, mark_id: int | None = None) -> dict:
    """Mark a master in place (after mastering, before the file is written), re-measure its
    loudness and true peak, and return the mark's facts. ``mark_id`` defaults to a random one.

    The mark stays under the preset's true-peak ceiling less the limiter's margin; the true
    peak is measured on the marked audio, the loudness from mastering's sub-block energies plus
    what the mark adds to each (docs/watermark.md).
    """
    # numpy and scipy, as mastering: the driver's record and sign steps never pay for them.
    from soundscape.audio import loudness as meter
    from soundscape.audio.master import LIMITER_MARGIN_DB, get_preset
    from soundscape.watermark.embed import embed
    from soundscape.watermark.payload import Payload, new_mark_id

    preset = get_preset(mastered.preset)
    ceiling = (10.0 ** ((preset.true_peak_dbtp - LIMITER_MARGIN_DB) / 20.0)
               if preset.true_peak_dbtp is not None else None)
    if ceiling is not None and mastered.true_peak_dbtp > preset.true_peak_dbtp - LIMITER_MARGIN_DB:
        ceiling = 10.0 ** (mastered.true_peak_dbtp / 20.0)
    done = embed(mastered.audio, Payload(key_id, new_mark_id() if mark_id is None else mark_id),
                 ceiling=ceiling, host_true_peak=10.0 ** (mastered.true_peak_dbtp / 20.0),
                 host_chunk_peaks=mastered.chunk_true_peaks)
    mastered.chunk_true_peaks = None  # of the audio before marking
    energies = mastered.energies
    if energies is None or done.peaks_cleared or energies.shape[1] != done.energy_change.size:
        energies = meter.subblock_energies(mastered.audio, mastered.sample_rate)
    else:
        # The mark's added energy, from the spectra it was made from (each channel alike), in
        # place of a second K-weighted pass over the whole file; tests/watermark compare the
        # two. Where peaks were cleared, the mark is not what the spectra say: measure.
        energies = energies + done.energy_change[None, :] / energies.shape[0]
    mastered.energies = energies
    stats = meter.loudness_stats(energies)
    mastered.loudness_lufs = stats.integrated
    mastered.true_peak_dbtp = 20.0 * math.log10(max(done.true_peak, 1e-12))
    mastered.sample_peak_dbfs = 20.0 * math.log10(max(done.sample_peak, 1e-12))
    mastered.loudness_range_lu = stats.loudness_range
    mastered.max_momentary_lufs = stats.max_momentary
    mastered.max_short_term_lufs = stats.max_short_term
    return done.describe()


def record(ledger: Ledger, facts: OutputFacts) -> OutputRecord:
    """Record an output's facts; the sample library and the sound banks it played are
    registered first, so every use links to an asset."""
    if facts.samples:
        try:
            ensure_sample_library(ledger)
        except SoundscapeError:
            # A damaged sample library must not leave a delivered file unrecorded: the
            # samples keep the license their sidecar names, unlinked to an asset.
            pass
    if facts.presets:
        ensure_sound_banks(ledger, facts.presets)
    return ledger.record_output(facts, source_ids_from=SAMPLE_DATASET)


def stamp_sidecar(sidecar_path: Path, sidecar: dict, record: OutputRecord, ledger: Ledger, *,
                  keep_existing: bool = False) -> None:
    """Write the record id and the latest signed checkpoint into a sidecar's ``ledger`` field.

    With ``keep_existing``, a sidecar that already names this record is left as it is.
    """
    if keep_existing and (sidecar.get("ledger") or {}).get("record_id") == record.id:
        return
    sidecar["ledger"] = {"record_id": record.id, "checkpoint": ledger.latest_checkpoint_dict()}
    write_json_atomic(sidecar_path, sidecar)


def sign(path: Path, sidecar_path: Path, sidecar: dict, record: OutputRecord,
         ledger: Ledger) -> None:
    """Sign a recorded output (C2PA) when the workspace signs; the sidecar learns the new bytes.

    Signing comes last, after bext/iXML are written and the record commits, so the manifest can
    carry the record id and its inclusion proof. The audio hash is unchanged by signing.
    """
    signed_sha256 = sign_recorded_output(path, sidecar, record, ledger)
    if signed_sha256 is not None:
        sidecar["file_sha256"] = signed_sha256
        write_json_atomic(sidecar_path, sidecar)


def record_delivery(sidecar: dict, job: Job, *, ledger: Ledger | None = None) -> Delivery:
    """Record a written output in the ledger (when given), stamp and sign it; its Delivery."""
    path, sidecar_path = job.path, sidecar_path_for(job.path)
    facts = OutputFacts.from_sidecar(sidecar, path)
    record_id = None
    if ledger is not None:
        recorded = record(ledger, facts)
        record_id = recorded.id
        stamp_sidecar(sidecar_path, sidecar, recorded, ledger)
        sign(path, sidecar_path, sidecar, recorded, ledger)
    return Delivery(spec=job.spec, path=path, sidecar_path=sidecar_path, facts=facts,
                    preset=job.preset, record_id=record_id)


def sign_if_unsigned(path: Path, record: OutputRecord, ledger: Ledger) -> None:
    """Sign a recorded output that carries no manifest yet (after a crash before signing)."""
    if read_credentials(path) is not None:
        return
    sidecar_path = sidecar_path_for(path)
    sign(path, sidecar_path, json.loads(sidecar_path.read_text()), record, ledger)
