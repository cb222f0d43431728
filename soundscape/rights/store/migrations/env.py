"""Alembic's environment for the ledger's schema: the migrations in ``versions/`` run here.

The store (:mod:`soundscape.rights.store.migrate`) hands over its own connection, already inside
its write transaction and holding the single-writer lock, so a migration and the rows written
after it commit together or not at all. Run from the command line, the URL comes from
``-x url=...`` or ``sqlalchemy.url``::

    alembic -c soundscape/rights/store/migrations/alembic.ini -x url=postgresql://... upgrade head
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from soundscape.rights.store.schema import metadata

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    if not url:
        raise SystemExit("give the ledger's URL: alembic -x url=sqlite:///path/ledger.sqlite ...")
    return url


def _configure(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table,
    # so a later migration that changes a column runs on both backends unchanged.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
