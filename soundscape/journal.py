"""The pending journal: every output is noted before its file is written, so a crash is mended.

A pending entry (``<workspace>/pending/<token>.json``) names the audio file and its sidecar and
the process writing them. The entry ends once the output is recorded. An entry a crash left is
resolved by :func:`reconcile` (run before every command that writes, and as ``soundscape ledger
reconcile``): a complete file is recorded, stamped and signed as delivery would have done; an
incomplete one has its hidden temp files removed. So no record ever points to a file that was
never completed, and no completed file goes unrecorded.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from soundscape import delivery
from soundscape.atomic import write_json_atomic
from soundscape.errors import LedgerError
from soundscape.facts import OutputFacts
from soundscape.rights.ledger import Ledger
from soundscape.rights.store import utc_now

PENDING_DIR = "pending"


@dataclass
class ReconcileReport:
    """What reconcile did with each pending entry: ``(audio path, record id or reason)``."""

    recorded: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    in_progress: list = field(default_factory=list)
    removed_temp_files: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.recorded or self.dropped or self.in_progress)


class Journal:
    """The pending entries of one workspace.

    Args:
        home: the workspace folder, or None for a ledger opened without one (nothing pending).
    """

    def __init__(self, home: Path | None):
        self.home = Path(home) if home else None

    @classmethod
    def of(cls, ledger: Ledger) -> "Journal":
        """The journal of the workspace ``ledger`` belongs to."""
        return cls(ledger.home)

    @property
    def folder(self) -> Path:
        if self.home is None:
            raise LedgerError("this ledger was opened without a workspace folder")
        return self.home / PENDING_DIR

    def begin(self, audio_path: str | Path, sidecar_path: str | Path) -> str:
        """Journal an output about to be written; returns the token for :meth:`end`."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the workspace's pending folder {self.folder}: "
                              f"{exc.strerror or exc}") from None
        token = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        write_json_atomic(self.folder / f"{token}.json", {
            "token": token, "audio": str(Path(audio_path).resolve()),
            "sidecar": str(Path(sidecar_path).resolve()), "pid": os.getpid(),
            "pid_start": _process_start(os.getpid()), "host": socket.gethostname(),
            "started": utc_now()})
        return token

    def end(self, token: str | None) -> None:
        """Close a pending entry once its output is recorded (or abandoned)."""
        if token:
            (self.folder / f"{token}.json").unlink(missing_ok=True)

    def entries(self) -> list[dict]:
        """Every pending entry (``_file`` is where it is; ``broken`` when unreadable)."""
        if self.home is None or not self.folder.is_dir():
            return []
        entries = []
        for p in sorted(self.folder.glob("*.json")):
            try:
                entry = json.loads(p.read_text())
                entry["_file"] = str(p)
                entries.append(entry)
            except (OSError, ValueError):
                entries.append({"_file": str(p), "token": p.stem, "broken": True})
        return entries

    def remove_torn_entries(self) -> list[str]:
        """Remove the temp files of pending entries whose writer died while writing them.

        ``begin`` writes ``<token>.json`` atomically, through a hidden ``.<token>.json.tmp*``
        file; a kill at that moment leaves the temp file and no entry (the output was never
        started, so there is nothing to record). The token names the writer's pid: a temp file
        of a live process on this host is left alone.
        """
        if self.home is None or not self.folder.is_dir():
            return []
        removed = []
        for tmp in sorted(self.folder.glob(".*.json.tmp*")):
            token = tmp.name[1:].split(".json.tmp", 1)[0]
            parts = token.split("-")
            pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else 0
            if pid and _pid_alive(pid):
                continue
            tmp.unlink(missing_ok=True)
            removed.append(str(tmp))
        return removed

    def busy(self) -> set[str]:
        """The audio paths pending entries name (a live writer may be writing them)."""
        return {entry.get("audio") for entry in self.entries()}


def reconcile(ledger: Ledger) -> ReconcileReport:
    """Resolve pending entries a crash left: record complete outputs, clean incomplete ones.

    An entry whose process is still running (same host) is left alone. Outputs recorded here
    are then signed, when the workspace signs (the crash may have come between the record and
    the signature).
    """
    journal = Journal.of(ledger)
    report = ReconcileReport()
    host = socket.gethostname()
    for entry in journal.entries():
        token = entry.get("token")
        if entry.get("broken"):
            Path(entry["_file"]).unlink(missing_ok=True)
            report.dropped.append((entry["_file"], "unreadable pending entry"))
            continue
        audio, sidecar_path = Path(entry["audio"]), Path(entry["sidecar"])
        pid = int(entry.get("pid") or 0)
        if entry.get("host") == host and pid and _pid_alive(pid, entry.get("pid_start")):
            report.in_progress.append((str(audio), f"process {pid} is still writing it"))
            continue
        reason = _incomplete(audio, sidecar_path)
        if reason is None:
            sidecar = json.loads(sidecar_path.read_text())
            record = delivery.record(ledger, OutputFacts.from_sidecar(sidecar, audio))
            delivery.stamp_sidecar(sidecar_path, sidecar, record, ledger, keep_existing=True)
            report.recorded.append((str(audio), record.id))
        else:
            for folder, name in {(audio.parent, audio.name),
                                 (sidecar_path.parent, sidecar_path.name)}:
                if folder.is_dir():
                    # Hidden temp files of atomic writes: ".<name>.tmp*" (sidecars) and
                    # ".<name>.<random>.part" (audio, soundscape.audio.io).
                    for tmp in folder.glob(f".{glob.escape(name)}.*"):
                        tmp.unlink(missing_ok=True)
                        report.removed_temp_files.append(str(tmp))
            report.dropped.append((str(audio), reason))
        journal.end(token)
    for audio, record_id in report.recorded:
        delivery.sign_if_unsigned(Path(audio), ledger.get_output(record_id), ledger)
    report.removed_temp_files += journal.remove_torn_entries()
    return report


def _incomplete(audio: Path, sidecar_path: Path) -> str | None:
    """None when the output is complete; else why not."""
    # Decoding pulls in numpy and soundfile: only paid when a crash left something behind.
    from soundscape.audio.io import audio_sha256

    if not audio.is_file():
        return "the audio file was never completed"
    if not sidecar_path.is_file():
        return "the sidecar was never written"
    try:
        sidecar = json.loads(sidecar_path.read_text())
        expected = sidecar["audio_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return "the sidecar is unreadable"
    try:
        actual = audio_sha256(audio)
    except Exception as exc:  # noqa: BLE001 - any decode failure means incomplete audio
        return f"the audio does not decode ({exc})"
    if actual != expected:
        return "the audio does not match its sidecar's audio_sha256"
    return None


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a live
    writer from an unrelated process that later got the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, started: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is not None:
        now = _process_start(pid)
        return now is None or now == started
    return True
