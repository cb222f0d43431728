"""Where a test's ledgers live (SQLite or the run's PostgreSQL), for the ``ledger_backend``
fixture in conftest.py. A module of its own, not part of conftest, so tests can import it by
name: ``conftest`` means a different file in each test folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class Backend:
    """Where a test's ledgers live: ``use(home)`` points the workspace at ``home`` there.

    For SQLite that is the workspace's own ``ledger.sqlite`` (the default, nothing written); for
    PostgreSQL a new database on the run's server, named in ``home/soundscape.toml`` as
    ``ledger_url`` exactly as a team would.
    """

    def __init__(self, name: str, server=None):
        self.name = name
        self.server = server
        self.urls: dict = {}

    def use(self, home, *, url: str | None = None) -> str:
        home = Path(home)
        if self.name == "sqlite":
            return f"sqlite:///{home / 'ledger.sqlite'}"
        if home not in self.urls:
            self.urls[home] = url or self.server.create_database()
            home.mkdir(parents=True, exist_ok=True)
            (home / "soundscape.toml").write_text(f'ledger_url = "{self.urls[home]}"\n')
        return self.urls[home]

    def url(self, home) -> str:
        return self.use(home)

    def connect(self, home):
        """A raw autocommit connection to the ledger database of ``home``, for tampering with
        it as an attacker with database access would; SQL uses ``?`` placeholders on both."""
        if self.name == "sqlite":
            return sqlite3.connect(Path(home) / "ledger.sqlite", isolation_level=None)
        return _PgConnection(self.use(home))

    def close(self) -> None:
        for url in set(self.urls.values()):
            self.server.drop_database(url)


class _PgConnection:
    """sqlite3's ``execute(sql, params)`` on a psycopg connection (autocommit)."""

    def __init__(self, url: str):
        import psycopg
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.con = psycopg.connect(host=parsed.query["host"], user=parsed.username,
                                   dbname=parsed.database, autocommit=True)

    def execute(self, sql: str, params=()):
        return self.con.execute(sql.replace("?", "%s"), tuple(params))

    def close(self) -> None:
        self.con.close()
