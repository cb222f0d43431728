"""Command: ``detect`` (find the inaudible mark in any audio file and the record it names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from soundscape.cli.common import console, workspace
# Library services are imported inside each command: `soundscape --help` loads none of them.

EXIT_MATCHED = 0       # a mark, and this workspace's ledger holds its record
EXIT_FOREIGN = 5       # a mark, but not one of this ledger's records (or its payload unreadable)
EXIT_NO_MARK = 6       # no soundscape mark
# Shorter files than this may carry a mark too weak to be found (measured: docs/watermark.md).
MIN_DETECTABLE_SECONDS = 5.0


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("detect")(detect)


def find_marked(file: Path, ledger, *, policy: str, seal=None) -> tuple[int, dict]:
    """Detect the mark in ``file`` and look its payload up in ``ledger``: (exit code, report).

    With ``seal`` (AudioSeal weights the workspace names), AudioSeal's detector runs too and
    its score is ``report["audioseal"]``; the exit code is still soundscape's mark's alone.
    """
    from soundscape.rights.clearance import LineageReader
    from soundscape.watermark.detect import detect as find_mark
    from soundscape.watermark.payload import Payload, key_id_of
    from soundscape.watermark.read import read_any

    audio, sr = read_any(file)
    key_id = key_id_of(ledger.public_key_pem())
    outputs = ledger.find_outputs()
    # The marks this ledger made: where the blind search reads no payload, the detector
    # matches the audio against each of them (docs/watermark.md, "The known marks").
    known = sorted({Payload.from_hex(p) for p in
                    ((r.watermark or {}).get("payload") for r in outputs) if p},
                   key=lambda p: p.mark_id)
    known = [p for p in known if p.key_id == key_id]
    found = find_mark(audio, sr, known=known)
    report: dict = {"file": str(file), "seconds": round(audio.shape[-1] / sr, 3),
                    "mark": found.describe(), "record": None}
    if seal is not None:
        from soundscape.watermark.audioseal import detect as find_seal

        report["audioseal"] = find_seal(seal, audio, sr).describe(
            expected_key_id=key_id_of(ledger.public_key_pem()))
    if not found.present:
        return EXIT_NO_MARK, report
    if found.payload is None:
        report["problem"] = "a mark is present but its payload did not decode"
        return EXIT_FOREIGN, report
    ours = key_id == found.payload.key_id
    matches = [r for r in outputs
               if ((r.watermark or {}).get("payload") == found.payload.hex)] if ours else []
    if not matches:
        report["problem"] = ("marked by another soundscape ledger (key id "
                             f"{found.payload.key_id:04x})" if not ours else
                             "this ledger's key id, but no record carries this mark id")
        return EXIT_FOREIGN, report
    record = matches[-1]
    verdict = LineageReader(ledger, [record]).verdict(record, policy)
    report["record"] = {"id": record.id, "seq": record.seq, "path": record.path,
                        "kind": record.cue_kind, "prompt": record.prompt, "engine": record.engine,
                        "created": record.created, "cue_id": record.cue_id,
                        "audio_sha256": record.audio_sha256,
                        "verdict": {"policy": verdict.policy, "status": verdict.status,
                                    "reasons": list(verdict.reasons)}}
    if len(matches) > 1:
        report["also"] = [r.id for r in matches[:-1]]
    return EXIT_MATCHED, report


def mark_check(file: Path, workspace):
    """``verify``'s watermark check: the mark is found and names this file's own record."""
    from soundscape.rights.ledger import Ledger

    with Ledger.open(workspace) as ledger:
        code, report = find_marked(file, ledger, policy="broadcast-commercial")
    return _mark_verdict(file, code, report)


def seal_check(file: Path, workspace):
    """``verify``'s second-marker check, where the workspace names AudioSeal weights (else
    None): when the file's record says AudioSeal marked it, the detector must find it."""
    from soundscape.audio.io import audio_sha256
    from soundscape.rights.credentials.verify import Check
    from soundscape.rights.ledger import Ledger
    from soundscape.watermark.audioseal import detect as find_seal
    from soundscape.watermark.audioseal import for_workspace
    from soundscape.watermark.payload import key_id_of
    from soundscape.watermark.read import read_any

    seal = for_workspace(workspace)
    if seal is None:
        return None
    digest = audio_sha256(file)
    with Ledger.open(workspace) as ledger:
        records = [r for r in ledger.find_outputs() if r.audio_sha256 == digest]
        expected = key_id_of(ledger.public_key_pem())
    audio, sr = read_any(file)
    found = find_seal(seal, audio, sr).describe(expected_key_id=expected)
    second = ((records[-1].watermark or {}).get("second") if records else None)
    detail = f"score {found['score']} (threshold {found['threshold']}), message {found['message']}"
    if not second:
        return Check("audioseal", True, f"not marked with AudioSeal at delivery; detector {detail}")
    ok = found["present"]
    return Check("audioseal", ok, ("found: " if ok else "not found: ") + detail)


def _mark_verdict(file: Path, code: int, report: dict):
    from soundscape.rights.credentials.verify import Check

    mark = report["mark"]
    if code == EXIT_NO_MARK:
        seconds = report["seconds"]
        if seconds < MIN_DETECTABLE_SECONDS:
            return Check("watermark", True, f"not checked: {seconds:.1f} s is too short for the "
                         f"mark to be found (it needs {MIN_DETECTABLE_SECONDS:g} s; docs/watermark.md)")
        return Check("watermark", False, f"no mark found (sync z {mark['z']} < {mark['threshold']})")
    if code == EXIT_FOREIGN:
        return Check("watermark", False, f"mark {mark['payload'] or '(unreadable)'}: {report['problem']}")
    from soundscape.audio.io import audio_sha256

    record = report["record"]
    ok = record["audio_sha256"] == audio_sha256(file)
    return Check("watermark", ok, f"mark {mark['payload']} (sync z {mark['z']}) names record "
                 f"{record['id']}" + ("" if ok else ", not this file's record: the audio changed"))


def detect(
    file: Annotated[Path, typer.Argument(help="Any audio file ffmpeg or soundfile decodes.")],
    policy: Annotated[str, typer.Option(help="Clearance policy the record is judged under.")]
    = "broadcast-commercial",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Find soundscape's inaudible mark in a file, decode it, and name the ledger record.

    Exit 0: marked and its record found in this workspace's ledger; 5: marked, but not by a
    record of this ledger (or the payload did not decode); 6: no mark.
    """
    from soundscape.rights.ledger import Ledger
    from soundscape.watermark.audioseal import for_workspace

    seal = for_workspace(workspace())
    with Ledger.open(workspace()) as ledger:
        code, report = find_marked(file, ledger, policy=policy, seal=seal)
    if as_json:
        console.print_json(json.dumps(report))
        raise typer.Exit(code=code)
    mark = report["mark"]
    if not mark["present"]:
        short = report.get("seconds", 0) < MIN_DETECTABLE_SECONDS
        console.print(f"NO MARK: {file} (sync z {mark['z']} < {mark['threshold']}, "
                      f"{mark['blocks']} blocks searched)"
                      + (f"; {report['seconds']:.1f} s is too short to be sure: a mark needs "
                         f"{MIN_DETECTABLE_SECONDS:g} s" if short else ""),
                      soft_wrap=True, markup=False)
    else:
        n = mark["known_candidates"]
        listed = "this ledger's only mark" if n == 1 else f"one of this ledger's {n:,} marks"
        how = (f"matched to {listed}, data z {mark['data_z']} >= {mark['known_threshold']}; "
               if mark["via"] == "known" else "")
        console.print(f"MARKED: {file} (sync z {mark['z']}, {how}false-positive bound "
                      f"{mark['p_value']:.2g}; payload {mark['payload'] or 'unreadable'})",
                      soft_wrap=True, markup=False)
        rec = report["record"]
        if rec is None:
            console.print(f"NOT IN THIS LEDGER: {report['problem']}", soft_wrap=True, markup=False)
        else:
            console.print(f"record {rec['id']} (#{rec['seq']}): {rec['kind']} "
                          f"\"{rec['prompt']}\" by {rec['engine']}, {rec['created']}, "
                          f"{Path(rec['path']).name}", soft_wrap=True, markup=False)
            v = rec["verdict"]
            console.print(f"{v['status']} under {v['policy']}"
                          + ("".join(f"\n  - {r}" for r in v["reasons"])), soft_wrap=True,
                          markup=False)
    seal = report.get("audioseal")
    if seal is not None:
        console.print(f"AudioSeal: {'found' if seal['present'] else 'not found'} (score "
                      f"{seal['score']}, threshold {seal['threshold']}; message {seal['message']}"
                      + (", this ledger's key id" if seal.get("names_this_ledger") else "") + ")",
                      soft_wrap=True, markup=False)
    raise typer.Exit(code=code)
