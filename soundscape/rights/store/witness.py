"""The witness: the latest signed checkpoint kept outside the database.

Two kinds of copy, each the C2SP signed note itself so standard tooling reads it:

- the latest signed checkpoint, beside the public key (``keys/ledger.checkpoint``), moved
  forward by every write batch;
- the witnessed checkpoint, the latest one a verify checked in full: beside the public key
  (``keys/ledger.witnessed.checkpoint``) and, when ``witness_dir`` is set in
  ``soundscape.toml``, in a folder a team points at a second store. ``verify --since-witness``
  starts from it.

Copies only ever move forward. Every verify checks that the ledger still extends every copy,
which is what exposes records and checkpoints truncated together, or a ledger rebuilt with new
keys; every append refuses a ledger behind a copy.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from soundscape.errors import LedgerError
from soundscape.rights import merkle

# Beside the public key in the workspace's keys folder.
LOCAL_NAME = "ledger.checkpoint"
WITNESSED_NAME = "ledger.witnessed.checkpoint"
# The note verifier key (name+keyhash+key) that Go's sumdb/note and C2SP tools take.
VKEY_NAME = "ledger.vkey"


@dataclass(frozen=True)
class Witnessed:
    """A checkpoint read from a witness copy (not yet verified)."""

    label: str
    size: int
    root: str
    note: str
    # True for a copy written by a verify that checked the tree up to it.
    verified: bool

    def checkpoint(self, key_id: str) -> dict:
        return {"size": self.size, "root": self.root, "key_id": key_id, "note": self.note}


class Witness:
    """The witness copies of one ledger.

    Args:
        keys_dir: the workspace's keys folder (the local copy lives there).
        extra_dirs: witness folders from the settings; each holds one file per ledger key.
    """

    def __init__(self, keys_dir: Path, extra_dirs: tuple[Path, ...] = ()):
        self.keys_dir = Path(keys_dir)
        self.extra_dirs = tuple(Path(d) for d in extra_dirs)

    def paths(self, key_id: str, *, verified: bool) -> list[Path]:
        if not verified:
            return [self.keys_dir / LOCAL_NAME]
        # A shared witness folder may serve several ledgers: its file names the ledger's key.
        return [self.keys_dir / WITNESSED_NAME] + [d / f"soundscape-ledger-{key_id}.checkpoint"
                                                   for d in self.extra_dirs]

    def read(self, key_id: str) -> list[Witnessed]:
        """Every witness copy that exists, parsed (the signature is checked by the verifier).

        Raises:
            LedgerError: a copy that cannot be read or is not a checkpoint note.
        """
        found = []
        for path, verified in ([(p, False) for p in self.paths(key_id, verified=False)]
                               + [(p, True) for p in self.paths(key_id, verified=True)]):
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise LedgerError(f"cannot read the witnessed checkpoint {path}: {exc}") from None
            try:
                body, _ = merkle.parse_signed_note(text)
                _, size, root = merkle.parse_checkpoint_text(body)
            except merkle.ProofError as exc:
                if not verified:
                    # The latest copy is written without fsync (a crash can tear it): the next
                    # batch rewrites it, and deleting it would hide no more than damaging it.
                    continue
                raise LedgerError(f"the witnessed checkpoint {path} is damaged ({exc}); "
                                  "restore it from the team's witness or a backup") from None
            found.append(Witnessed(str(path), size, root.hex(), text, verified))
        return found

    def publish(self, note: str, size: int, key_id: str, public_key=None, *,
                verified: bool = False) -> None:
        """Write ``note`` to the latest copy (and, ``verified``, the witnessed copies) where it
        is newer: never moving one back.

        Best effort: a folder that cannot be written does not undo a committed batch or fail a
        verify that passed.
        """
        paths = self.paths(key_id, verified=False)
        if verified:
            paths += self.paths(key_id, verified=True)
        for path in paths:
            try:
                # Only the witnessed copies are synced: a batch's own copy costs no fsync.
                _write_if_newer(path, note, size, sync=path.name != LOCAL_NAME)
            except OSError:
                continue
        if public_key is not None:
            vkey = self.keys_dir / VKEY_NAME
            if not vkey.exists():
                try:
                    _write(vkey, merkle.verifier_key(merkle.origin_of(key_id), public_key) + "\n")
                except OSError:
                    pass


def _write_if_newer(path: Path, note: str, size: int, *, sync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One writer at a time per copy, so two processes' batches never move it backwards.
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = path.read_text(encoding="utf-8")
            _, old_size, _ = merkle.parse_checkpoint_text(merkle.parse_signed_note(old)[0])
        except (OSError, UnicodeDecodeError, merkle.ProofError):
            old_size = -1
        if old_size < size:
            _write(path, note, sync=sync)


def _write(path: Path, text: str, *, sync: bool = True) -> None:
    """Write to a temp file, fsync, rename: a copy is the whole note or the previous one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())
    os.replace(tmp, path)
