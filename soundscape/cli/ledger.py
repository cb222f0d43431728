"""Commands: ``ledger`` (list, show, verify, prove, check-proof, reconcile, export) and ``clear``.

Each command is a few lines around :class:`soundscape.rights.ledger.Ledger`. The ledger (and
sqlalchemy under it) is imported inside each command, so ``soundscape --help`` never loads it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from soundscape.atomic import write_bytes_atomic
from soundscape.cli.common import Json, console, print_json, workspace
from soundscape.errors import OutputError, ParameterError, TamperError
from soundscape.rights.merkle import ProofError, load_public_key, verify_inclusion
# Library services are imported inside each command: `soundscape --help` loads none of them.

ledger_app = typer.Typer(help="The rights ledger: records, verification, proofs.",
                         no_args_is_help=True)

KINDS = ("license", "asset", "dataset", "model", "output", "correction")


def say(text: str) -> None:
    """Print one line as is (no markup, no wrapping: paths and hashes stay whole)."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(ledger_app, name="ledger")
    app.command("clear")(clear)


def open_ledger(*, reconcile: bool = False):
    """The workspace's ledger; with ``reconcile``, crash leftovers are resolved first (writers)."""
    from soundscape.journal import reconcile as reconcile_journal
    from soundscape.rights.ledger import Ledger

    ledger = Ledger.open(workspace())
    if reconcile:
        report_reconcile(reconcile_journal(ledger), quiet=True)
    return ledger


def report_reconcile(report, *, quiet: bool = False) -> None:
    """Print what reconcile did (nothing when it did nothing and ``quiet``)."""
    for path, record_id in report.recorded:
        say(f"reconciled: recorded {path} as {record_id}")
    for path, reason in report.dropped:
        say(f"reconciled: dropped {path}: {reason}")
    for path in report.removed_temp_files:
        say(f"reconciled: removed temp file {path}")
    for path, reason in report.in_progress:
        say(f"pending: {path} ({reason})")
    if report.empty and not quiet:
        say("nothing to reconcile: every output is recorded")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _summary(body: dict) -> str:
    kind = body.get("kind")
    if kind == "output":
        where = Path(body.get("path") or "").name
        extra = f" {body.get('episode') or ''} {body.get('cue_id') or ''}".rstrip()
        return f"{where} engine={body.get('engine')} model={body.get('model') or '-'}{extra}"
    if kind == "asset":
        return f"{body.get('title')} [{body.get('license')}] {body.get('author') or ''}"
    if kind == "dataset":
        return f"{body.get('name')}@{body.get('version')} ({body.get('count')} assets)"
    if kind == "model":
        return (f"{body.get('name')} [{body.get('license') or 'no license'}]"
                f"{' lineage unknown' if body.get('lineage_unknown') else ''}")
    if kind == "license":
        return str(body.get("license_id"))
    if kind == "correction":
        changes = ", ".join(f"{k}={v}" for k, v in sorted((body.get("changes") or {}).items()))
        return f"{body.get('target')}: {changes} ({body.get('reason')})"
    return ""


@ledger_app.command("list")
def list_records(
    kind: Annotated[Optional[str], typer.Option(help=f"Only one kind: {', '.join(KINDS)}.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Show only the last N records.")] = None,
    as_json: Json = False,
) -> None:
    """List records, oldest first: id, kind, recorded time and a summary."""
    if kind is not None and kind not in KINDS:
        raise ParameterError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")
    if limit is not None and limit < 1:
        raise ParameterError(f"--limit {limit} shows nothing: give a number of records, 1 or more")
    with open_ledger() as ledger:
        rows = list(ledger.records(kind))
    if limit is not None:
        rows = rows[-limit:]
    if as_json:
        print_json([{"seq": r.seq, "id": r.id, "kind": r.kind, "recorded": r.body.get("recorded"),
                     "summary": _summary(r.body)} for r in rows])
        return
    for r in rows:
        say(f"{r.id:<14} {r.kind:<8} {r.body.get('recorded', '')[:19]}  {_summary(r.body)}")
    if not rows:
        say("no records" + (f" of kind {kind}" if kind else ""))


@ledger_app.command("show")
def show(record_id: Annotated[str, typer.Argument(
        help="Record id (e.g. out-000042), or an audio file to show its output record.")],
         as_json: Json = False) -> None:
    """Print one record's body (the exact JSON its leaf hash covers, pretty-printed).

    With --json: ``{"id", "kind", "body"}``, so a script gets the id of a file's record too.
    """
    with open_ledger() as ledger:
        if Path(record_id).is_file():
            from soundscape.audio.io import audio_sha256

            record_id = ledger.get_output(audio_sha256(Path(record_id))).id
        stored = ledger.raw(record_id)
    if as_json:
        print_json({"seq": stored.seq, "id": stored.id, "kind": stored.kind, "body": stored.body})
        return
    typer.echo(json.dumps(stored.body, indent=2, sort_keys=True, ensure_ascii=False))


@ledger_app.command("verify")
def verify(
    quick: Annotated[bool, typer.Option(
        "--quick", help="Check every root but only the latest checkpoint's signature.")] = False,
    against: Annotated[Optional[list[Path]], typer.Option(
        "--against", help="A sidecar, proof or checkpoint kept elsewhere, or a delivery folder "
        "(every sidecar and C2PA manifest in it): the ledger must still match each signed "
        "checkpoint (exposes truncation and rewrites). Repeatable.")] = None,
    since_witness: Annotated[bool, typer.Option(
        "--since-witness", help="Check only the records added since the latest witnessed "
        "checkpoint (the whole ledger when none is witnessed yet).")] = False,
) -> None:
    """Recompute every leaf, root, frontier and tile, check every signed checkpoint and the
    witness; name the first bad record."""
    files = [path for path in against or () if not path.is_dir()]
    folders = [path for path in against or () if path.is_dir()]
    held = [(str(path), _held_checkpoint(path)) for path in files]
    with open_ledger() as ledger:
        if folders:
            from soundscape.rights.credentials.delivered import delivered_checkpoints

            for folder in folders:
                found = delivered_checkpoints(folder, ledger)
                say(f"{folder}: {_count(found.sidecars, 'sidecar')}, "
                    f"{_count(found.manifests, 'C2PA manifest')} checked against the ledger")
                held += found.held
        report = ledger.verify(all_signatures=not quick, against=held,
                               since_witness=since_witness)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.kinds.items())) or "empty"
    scope = (f"records #{report.checked_from + 1} to #{report.records} (since the witnessed "
             f"checkpoint {report.checked_from})" if report.checked_from else
             _count(report.records, "record"))
    say(f"ledger OK: {scope} ({kinds}), "
        f"{_count(report.checkpoints, 'signed checkpoint')}, "
        f"{_count(report.signatures_checked, 'signature')} checked in {report.seconds:.2f} s")
    if report.latest:
        say(f"root {report.root} at size {report.latest.size}, key {report.key_id} "
            f"({report.key_source})")
    for label in report.witnessed:
        say(f"witness {label}: extended to size {report.latest.size}")


def _held_checkpoint(path: Path) -> dict:
    """The signed checkpoint in a sidecar (``ledger.checkpoint``), a proof, or a bare checkpoint."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot read {path}: {exc}") from None
    note = _checkpoint_note(text)
    if note is not None:
        return note
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParameterError(f"cannot read {path}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("ledger"), dict):
        data = data["ledger"].get("checkpoint")
    elif isinstance(data, dict) and isinstance(data.get("checkpoint"), dict):
        data = data["checkpoint"]
    if not isinstance(data, dict) or not {"size", "root"} <= set(data) or not (
            "signature" in data or "note" in data):
        raise ParameterError(f"{path} holds no signed ledger checkpoint")
    return data


def _checkpoint_note(text: str) -> dict | None:
    """A bare C2SP checkpoint note (a witness copy) as a checkpoint, or None for other text."""
    from soundscape.rights import merkle

    try:
        body, _ = merkle.parse_signed_note(text)
        origin, size, root = merkle.parse_checkpoint_text(body)
    except ProofError:
        return None
    if not origin.startswith(merkle.ORIGIN_PREFIX):
        return None
    return {"size": size, "root": root.hex(), "key_id": origin[len(merkle.ORIGIN_PREFIX):],
            "note": text}


@ledger_app.command("prove")
def prove(
    record_id: Annotated[str, typer.Argument(help="Record id, e.g. out-000042.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the proof here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
) -> None:
    """An inclusion proof of a record against the latest signed checkpoint (JSON)."""
    _check_out(out, overwrite)
    with open_ledger() as ledger:
        proof = ledger.prove(record_id).to_dict()
    text = json.dumps(proof, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return

    try:
        write_bytes_atomic(out, text.encode("utf-8"))
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    say(f"proof of {record_id} (leaf {proof['leaf_index']} of {proof['tree_size']}) "
        f"written to {out}")


def _check_out(out: Optional[Path], overwrite: bool) -> None:
    """Refuse, before any work, an --out that is a folder, or a file that exists without --overwrite
    (a mistyped --out must never replace a delivered audio file)."""
    if out is None:
        return
    if out.is_dir():
        raise OutputError(f"cannot write {out}: it is a folder; give a file name")
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists; pass --overwrite to replace it")


@ledger_app.command("check-proof")
def check_proof(
    proof: Annotated[Path, typer.Argument(help="A proof written by `soundscape ledger prove`.")],
    public_key: Annotated[Path, typer.Option(
        "--public-key", help="The ledger's public key (PEM), obtained separately.")],
) -> None:
    """Check an inclusion proof with the ledger's public key alone (no ledger needed)."""
    try:
        data = json.loads(proof.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ParameterError(f"cannot read the proof {proof}: {exc.strerror or exc}") from None
    except ValueError:
        raise ParameterError(f"{proof} is not a proof: it is not JSON "
                             "(write one with `soundscape ledger prove ID --out FILE`)") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{proof} is not a proof")
    try:
        pem = public_key.read_bytes()
    except OSError as exc:
        raise ParameterError(f"cannot read the public key {public_key}: "
                             f"{exc.strerror or exc}") from None
    try:
        load_public_key(pem)
    except ProofError:
        # A wrong key file is the user's mistake, not evidence of tampering (exit 2, not 3).
        raise ParameterError(f"{public_key} is not the ledger's public key: expected an Ed25519 "
                             "public key in PEM form (`soundscape ledger public-key`)") from None
    try:
        summary = verify_inclusion(data, pem)
    except ProofError as exc:
        raise TamperError(f"proof does not verify: {exc}") from None
    say(f"proof OK: record {summary['record_id']} is leaf {summary['leaf_index']} of "
        f"{summary['tree_size']} under root {summary['root']}, signed by key "
        f"{summary['key_id']}")


@ledger_app.command("public-key")
def public_key() -> None:
    """Print the ledger's public key (PEM): publish it so others can check proofs."""
    with open_ledger() as ledger:
        typer.echo(ledger.public_key_pem(), nl=False)


@ledger_app.command("reconcile")
def reconcile() -> None:
    """Record outputs a crash left unrecorded; clean up outputs that never completed."""
    from soundscape.journal import reconcile as reconcile_journal

    with open_ledger() as ledger:
        report_reconcile(reconcile_journal(ledger))


@ledger_app.command("correct")
def correct(
    record_id: Annotated[str, typer.Argument(help="The asset or model to correct.")],
    reason: Annotated[str, typer.Option(help="Why: kept in the ledger with the correction.")],
    license: Annotated[Optional[str], typer.Option("--license", help="The right license expression.")] = None,
    author: Annotated[Optional[str], typer.Option(help="Asset: the right author.")] = None,
    attribution: Annotated[Optional[str], typer.Option(help="Asset: the right credit text.")] = None,
    source: Annotated[Optional[str], typer.Option(help="Asset: the right source URL.")] = None,
    title: Annotated[Optional[str], typer.Option(help="Asset: the right title.")] = None,
) -> None:
    """Append a correction to an asset or model; the original record stays, and lineage uses the fix."""
    with open_ledger(reconcile=True) as ledger:
        fixed = ledger.correct(record_id, reason=reason, license=license, author=author,
                               attribution=attribution, source=source, title=title)
    say(f"corrected {record_id} by {fixed.corrections[-1]}: license {fixed.license}")


@ledger_app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl: one record body per line.")] = "jsonl",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write here (default stdout).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
) -> None:
    """Export every record body verbatim, one per line: SHA-256(0x00 ‖ line) is its leaf hash."""
    if fmt != "jsonl":
        raise ParameterError(f"unknown export format {fmt!r}: jsonl is supported")
    _check_out(out, overwrite)
    with open_ledger() as ledger:
        if out is None:
            for r in ledger.records():
                typer.echo(r.text)
            return
        # Streamed to a hidden temp file beside the target, renamed into place when complete.
        count = 0
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp", dir=out.parent)
        except OSError as exc:
            raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                for r in ledger.records():
                    handle.write(r.text + "\n")
                    count += 1
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, out)
        except OSError as exc:
            raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
    say(f"{count} records written to {out}")


def clear(
    target: Annotated[str, typer.Argument(
        metavar="FILE_OR_ID", help="A delivered audio file (its own record: the one its sidecar or C2PA manifest names, else the one recorded for its path), an output id or an audio sha256.")],
    policy: Annotated[str, typer.Option(help="Clearance policy, e.g. broadcast-commercial.")],
    air_date: Annotated[Optional[str], typer.Option(
        "--air-date", help="First transmission date YYYY-MM-DD (default: the recorded one, else today).")] = None,
    territory: Annotated[Optional[list[str]], typer.Option(
        "--territory", help="Where it airs (ISO country code or WORLD); repeat for several.")] = None,
    media: Annotated[Optional[str], typer.Option(help="Medium it airs on: tv, radio, streaming, online, cinema, podcast or advertising, or broadcast (tv and radio); without it, agreements' media are not checked.")] = None,
    as_json: Json = False,
) -> None:
    """Clear an output under a policy: CLEARED, NEEDS REVIEW or NOT CLEARED, every reason,
    every condition, every credit.

    Exit codes:
    0 CLEARED;
    5 NEEDS REVIEW (clears once each listed condition is settled, e.g. by the policy stating the studio's facts);
    4 NOT CLEARED;
    1 or 2 when it could not be judged.

    Where the file's audio also matches records of other lineages, each is shown with its verdict; the exit code is the file's own record's (the worst of them when nothing says which is its own).
    """
    import re

    from soundscape.rights.clearance import file_records, sha_records
    from soundscape.rights.policy import EXIT_CODES, NOT_CLEARED, STATES

    options = dict(air_date=air_date, territories=territory or None, media=media)
    with open_ledger() as ledger:
        path = Path(target)
        if path.is_file():
            found = file_records(ledger, path)
            own, others, how = found.own, list(found.others), found.how
        elif re.fullmatch(r"[0-9a-fA-F]{64}", target):
            found = sha_records(ledger, target)
            own, others, how = found.own, list(found.others), found.how
        else:
            own, others, how = ledger.get_output(target), [], ""
        judged = [(r, _clear_one(ledger, r, policy, **options)) for r in ([own] if own else []) + others]
    if own is not None:
        state = judged[0][1].state
    else:  # nothing says which is this file's: the worst of them stands
        state = max((v.state for _, v in judged), key=STATES.index) if judged else NOT_CLEARED
    if as_json:
        print_json({"target": target, "policy": policy, "state": state,
                    "own_record": own.id if own is not None else None, "found_by": how or None,
                    "verdicts": [{"record": r.id, "own": r is own, "state": v.state,
                                  "cleared": v.cleared, "reasons": list(v.reasons),
                                  "conditions": list(v.conditions),
                                  "obligations": list(v.obligations)} for r, v in judged]})
        if EXIT_CODES[state]:
            raise typer.Exit(code=EXIT_CODES[state])
        return
    if own is None:
        say(f"{target}: its audio matches {len(judged)} records of different lineages, and "
            "neither a sidecar, a C2PA manifest nor a recorded path says which is this file's; "
            "each verdict follows")
    several = len(judged) > 1
    for index, (record, verdict) in enumerate(judged):
        if index == 1 and own is not None:
            say(f"the same audio is also recorded with a different lineage ({len(others)} "
                f"record{'s' if len(others) > 1 else ''}); not this file's verdict:")
        # How the file's record was found matters where it could have been another's.
        shown = how if record is own and (several or how != "recorded for this path") else ""
        _print_verdict(record, verdict, how=shown, lineage=several)
    if EXIT_CODES[state]:
        raise typer.Exit(code=EXIT_CODES[state])


def _clear_one(ledger, record, policy: str, **options):
    from soundscape.rights.clearance import LineageReader

    return LineageReader(ledger, [record]).verdict(record, policy, **options)


def _print_verdict(record, verdict, *, how: str = "", lineage: bool = False) -> None:
    """One verdict: state and record (with how it was found and, where several lineages share
    the audio, its model); then reasons (or notes), conditions and credits."""
    say(f"{verdict.status} under {verdict.policy}: {record.id} ({Path(record.path).name})")
    if lineage:
        say(f"  lineage: {'model ' + record.model if record.model else 'no model'}"
            + (f" ({record.model_record})" if record.model_record else "")
            + f", recorded for {record.path}")
    if how:
        say(f"  this file's record: {how}")
    if verdict.reasons:
        say("reasons:" if verdict.status == "NOT CLEARED" else "notes:")
        for reason in verdict.reasons:
            say(f"  - {reason}")
    if verdict.conditions:
        say("conditions (settle each, or state the studio's facts in the policy):")
        for line in verdict.conditions:
            say(f"  - {line}")
    if verdict.obligations:
        say("obligations (credit):")
        for line in verdict.obligations:
            say(f"  - {line}")
