"""Schema versions: check a database against the migrations shipped in this package, and upgrade it.

Alembic runs programmatically (no alembic.ini): the config is built here with ``script_location``
pointing at ``storage/migrations``. Alembic is imported inside the functions so that importing
``storage`` stays cheap for the CLI's query commands.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from .connection import WRITE_OPTION, check_sqlite_file, make_engine, translate_error, use_wal
from .errors import NotOurDatabaseError, SchemaError
from .locator import StoreLocation
from .tables import VERSION_TABLE, StudyRow

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant works; it only has to be the same in every hpsearch process migrating one PostgreSQL db.
_PG_MIGRATION_LOCK = 0x6870736561726368  # "hpsearch"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


@lru_cache(maxsize=1)
def known_revisions() -> tuple[str, frozenset[str]]:
    """(head, every revision) of the migrations shipped with this code.

    Read from the revision files' ``revision``/``down_revision`` lines rather than through Alembic:
    importing Alembic costs a quarter of a second that every query command would pay just to learn
    that the database is up to date. A test checks this agrees with Alembic's own reading.
    """
    revisions: dict[str, str | tuple[str, ...] | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        values = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        revision = ast.literal_eval(values["revision"])
        revisions[revision] = ast.literal_eval(values.get("down_revision", "None"))
    parents: set[str] = set()
    for down in revisions.values():
        # A merge revision names several parents.
        parents.update((down,) if isinstance(down, str) else (down or ()))
    heads = [rev for rev in revisions if rev not in parents]
    if len(heads) != 1:
        raise RuntimeError(f"storage/migrations must have exactly one head, found {heads}")
    return heads[0], frozenset(revisions)


def current_revision(connection: Connection) -> str | None:
    """The revision in ``hp_alembic_version``, or None when our tables were never created."""
    from sqlalchemy import inspect

    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    # Several rows would mean branches, which hpsearch does not use; the largest is the informative one.
    return max(rows) if rows else None


def _check_known(revision: str | None, location: StoreLocation) -> None:
    head, known = known_revisions()
    if revision is None or revision == head:
        return
    where = location.shown
    if revision not in known:
        raise SchemaError(
            f"{where} was written by a newer version of hpsearch (schema revision {revision}); "
            "upgrade hpsearch to open it"
        )
    raise SchemaError(
        f"{where} uses an older schema ({revision}); run `hpsearch db upgrade --storage {location.safe_url}`"
    )


def _migrate(connection: Connection) -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        # Transactional DDL alone does not stop two processes from both creating the tables.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def ensure_schema(
    engine: Engine, url: StoreLocation | str, *, upgrade_older: bool, create: bool = True
) -> tuple[str | None, str]:
    """Bring a database to head if it has none of our tables (or, if asked, an older revision).

    Returns (revision found, revision now). Raises SchemaError for a newer or (unless asked) older
    revision. Reads first without the write lock, so opening an up-to-date or read-only database
    writes nothing. With ``create=False`` (commands that only read or continue a study) a database
    without our tables is refused with NotOurDatabaseError and left exactly as it was.
    """
    head, known = known_revisions()
    location = StoreLocation.of(url)
    try:
        with engine.connect() as connection:
            found = current_revision(connection)
            if found is None and not create:
                raise _not_ours(connection, location)
            connection.rollback()
        if found == head:
            return found, head
        if found is not None and (found not in known or not upgrade_older):
            _check_known(found, location)
        # Only now, about to create or migrate our tables, may the file's journal mode change.
        use_wal(engine)
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
            with connection.begin():
                # Another process may have migrated between our read and our lock.
                found = current_revision(connection)
                if found is not None and (found not in known or not upgrade_older):
                    _check_known(found, location)
                if found != head:
                    _migrate(connection)
        return found, head
    except DBAPIError as e:
        raise translate_error(e, location, writing=False) from e


def _not_ours(connection: Connection, location: StoreLocation) -> NotOurDatabaseError:
    from sqlalchemy import inspect

    where = location.shown
    tables = inspect(connection).get_table_names()
    studies = StudyRow.__tablename__
    path = location.sqlite_file
    if path is not None and path.exists() and path.stat().st_size == 0:
        what = "the file is empty"
    elif not tables:
        what = "it has no tables"
    elif studies not in tables:
        what = f"no {studies} table"
    else:  # our tables without their version: not created by `hpsearch run` or `hpsearch db upgrade`
        what = f"no schema version in {VERSION_TABLE}"
    kind = "file" if path is not None else "database"
    return NotOurDatabaseError(
        f"{where} is not an hpsearch database ({what}); give the {kind} `hpsearch run` wrote"
    )


def upgrade_database(url: StoreLocation | str) -> tuple[str | None, str]:
    """Upgrade the database at ``url`` (a URL or an SQLite path) to the newest schema.

    Returns (revision before, revision after); the first is None when the database had no hpsearch
    tables. Refuses a missing SQLite file and a database written by a newer hpsearch.
    """
    location = StoreLocation.of(url)
    check_sqlite_file(location, create=False)
    engine = make_engine(location)
    try:
        return ensure_schema(engine, location, upgrade_older=True)
    finally:
        engine.dispose()
