"""A format-2 ledger (text-indexed lookups) is upgraded in place to format 3 (64-bit lookup
keys), on both backends: it verifies, reads the same, finds every record by its lookups, and
takes new records; a tampered lookup key is named by verify."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, insert

from soundscape.config import open_workspace
from soundscape.errors import TamperError
from soundscape.rights.ledger import Ledger
from soundscape.rights.store import migrate
from soundscape.rights.store.schema import LEDGER_VERSION, lookup_keys, metadata

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ledger-v2"
OLD_RECORDS = (FIXTURE / "records.jsonl").read_text(encoding="utf-8").splitlines()
TABLES = ("ledger_meta", "ledger_records", "ledger_checkpoints", "ledger_tiles")


def v2_ledger(home: Path, backend) -> str:
    """The v2 fixture in ``home`` on ``backend``; on PostgreSQL rebuilt as format 2 made it:
    the schema at revision 0002_tlog and the same rows."""
    shutil.copytree(FIXTURE / "keys", home / "keys")
    url = backend.use(home)
    if backend.name == "sqlite":
        shutil.copy(FIXTURE / "ledger.sqlite", home / "ledger.sqlite")
        return url
    source = sqlite3.connect(FIXTURE / "ledger.sqlite")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrate.config(conn), "0002_tlog")
            for name in TABLES:
                cursor = source.execute(f"SELECT * FROM {name}")
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, r)) for r in cursor.fetchall()]
                conn.execute(insert(metadata.tables[name]), rows)
    finally:
        engine.dispose()
        source.close()
    return url


def raw(url: str, sql: str):
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            return conn.exec_driver_sql(sql).all()
    finally:
        engine.dispose()


def test_a_v2_ledger_upgrades_in_place_and_verifies(tmp_path, ledger_backend):
    url = v2_ledger(tmp_path, ledger_backend)
    assert raw(url, "SELECT version_num FROM alembic_version") == [("0002_tlog",)]
    held = json.loads((FIXTURE / "checkpoint.json").read_text())
    with Ledger.open(open_workspace(tmp_path)) as ledger:
        assert ledger.store.schema_revision() == migrate.head() == "0003_compact_lookups"
        report = ledger.verify(against=[("checkpoint.json", held)])
        assert (report.records, report.checkpoints) == (339, 14)
        assert [r.text for r in ledger.records()] == OLD_RECORDS
        # Every record is found by each of its lookup values, through the keys' index.
        store = ledger.store
        for text in OLD_RECORDS:
            body = json.loads(text)
            first, second = raw_lookups(url, body["seq"])
            if first is not None:
                assert body["id"] in [r.id for r in store.find(body["kind"], lookup=first)]
            if second is not None:
                assert body["id"] in [r.id for r in store.find(body["kind"], lookup2=second)]
        audio = hashlib.sha256(b"v2-audio-7").hexdigest()
        assert [o.id for o in ledger.find_outputs(audio_sha256=audio)] == ["out-000013"]
        with store.batch() as b:
            b.add("output", {"audio_sha256": "ab" * 32, "content_key": "cd" * 32},
                  lookup="ab" * 32, lookup2="cd" * 32)
        assert ledger.verify().records == 340
        assert [r.id for r in store.find("output", lookup2="cd" * 32)] == ["out-000306"]
    assert raw(url, "SELECT value FROM ledger_meta WHERE key = 'version'") == [(LEDGER_VERSION,)]
    keys = raw(url, "SELECT kind, lookup, lookup2, lookup_key, lookup2_key FROM ledger_records")
    assert len(keys) == 340
    assert all((k, k2) == lookup_keys(kind, a, b) for kind, a, b, k, k2 in keys)
    assert sum(k is not None for *_, k, _ in keys) == sum(a is not None for _, a, *_ in keys) > 300
    assert sum(k2 is not None for *_, k2 in keys) == 26  # the assets' file hashes


def raw_lookups(url: str, seq: int):
    return raw(url, f"SELECT lookup, lookup2 FROM ledger_records WHERE seq = {seq}")[0]


def test_a_tampered_lookup_key_is_named(tmp_path, ledger_backend):
    """A key changed in the database would hide its record from lookups: verify names it."""
    v2_ledger(tmp_path, ledger_backend)
    Ledger.open(open_workspace(tmp_path)).close()  # upgraded
    con = ledger_backend.connect(tmp_path)
    con.execute("UPDATE ledger_records SET lookup_key = lookup_key + 1 WHERE seq = 200")
    with Ledger.open(open_workspace(tmp_path)) as ledger:
        target = ledger.store.get("out-000166")
        assert target.seq == 200
        assert ledger.store.find("output", lookup=target.body["audio_sha256"]) == []
        with pytest.raises(TamperError, match=r"record out-000166 \(#200\): its lookup keys "
                                              "disagree with its lookup columns"):
            ledger.verify()
