"""Alembic environment of hpsearch's own tables.

Run through :func:`storage.upgrade_database` (or :func:`storage.open_storage`), which passes an open
connection in ``config.attributes["connection"]`` already inside a write transaction, so the version
check and the migration are one atomic step even when two processes open a new database together.
Logging is left alone: this runs inside the CLI and the application's logging must not change.
"""

from __future__ import annotations

from alembic import context
from hpsearch.storage.tables import TABLE_PREFIX, VERSION_TABLE, Base
from sqlalchemy.engine import Connection

config = context.config


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # Autogenerate must never propose dropping Optuna's tables that share the database.
    if type_ == "table":
        return name is not None and name.startswith(TABLE_PREFIX)
    return True


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        # SQLite cannot ALTER most things; batch mode lets future revisions work on it too.
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    # Someone ran the `alembic` command by hand with sqlalchemy.url set.
    from hpsearch.storage.connection import make_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("run migrations through storage.upgrade_database(url)")
    engine = make_engine(url)
    try:
        with engine.connect() as own_connection:
            _configure(own_connection)
            with context.begin_transaction():
                context.run_migrations()
            own_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("hpsearch migrations run online only")
run_migrations_online()
