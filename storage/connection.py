"""Engines: SQLite connection settings and translation of driver errors (where a store lives, and how
its URL reads, is :mod:`hpsearch.storage.locator`'s).

SQLite is used by several processes at once (parallel workers, a CLI query during a run), so our
databases are in WAL mode (readers never block the writer) and every connection gets a 30 s busy
timeout (a writer waits for the lock instead of failing), foreign keys and ``synchronous=NORMAL``
(durable at checkpoints, and WAL stays consistent after a crash; ``HPSEARCH_SQLITE_BUSY_TIMEOUT_S``
changes the 30 s). WAL is a property of the file, so it is set only on a file that holds our tables or
is about to (``make_engine``, ``use_wal``): a read-only command pointed at another application's
database changes nothing in it. Write
transactions start with ``BEGIN IMMEDIATE``: a deferred
transaction that reads and then writes can fail with "database is locked" when another process
wrote in between, and the busy timeout cannot help it; taking the write lock up front can only wait.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError

from .credentials import mask_credentials
from .errors import StorageError
from .locator import StoreLocation

WRITE_OPTION = "hpsearch_write"
#: Every SQLite connection of a study, hpsearch's and Optuna's: the disk is flushed at WAL checkpoints only.
_SYNCHRONOUS = "PRAGMA synchronous=NORMAL"
#: Environment variable overriding SQLite's busy timeout (seconds a writer waits for the lock).
BUSY_TIMEOUT_ENV = "HPSEARCH_SQLITE_BUSY_TIMEOUT_S"


def sqlite_busy_timeout_s() -> float:
    """30 s unless ``HPSEARCH_SQLITE_BUSY_TIMEOUT_S`` says otherwise (a positive number)."""
    text = os.environ.get(BUSY_TIMEOUT_ENV)
    if not text:
        return 30.0
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise StorageError(f"{BUSY_TIMEOUT_ENV} must be a positive number of seconds, but got {text!r}")
    return value
_SQLITE_HEADER = b"SQLite format 3\x00"


#: SQLite files this process already checked. Closing any descriptor of a file drops every POSIX lock
#: this process holds on it, including those of SQLite connections still open here; a second plain
#: open()/close() of a database in use would let another process delete its WAL under our feet.
_CHECKED_FILES: set[str] = set()


def check_sqlite_file(location: StoreLocation | str, *, create: bool) -> None:
    """Refuse, before SQLite sees it, a file that cannot become or already is not our database.

    Args:
        location: the store (a server's store has no file to check).
        create: whether a missing file may be created.

    Raises:
        DatabaseNotFoundError: a missing file where ``create`` is False.
        SchemaError: a file that is not SQLite.
        StorageError: a missing directory, a directory given as the file, a file that cannot be read.
    """
    from .errors import DatabaseNotFoundError, SchemaError

    path = StoreLocation.of(location).sqlite_file
    if path is None:
        return
    key = str(path.resolve())
    if key in _CHECKED_FILES and path.exists():
        return
    if not path.exists():
        if not create:
            raise DatabaseNotFoundError(
                f"no database at {path}; run `hpsearch run` first or pass --storage"
            )
        # A typo in --storage should not leave a new directory tree behind.
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise StorageError(f"cannot create {path}: directory {parent} does not exist")
        _CHECKED_FILES.add(key)
        return
    if path.is_dir():
        raise StorageError(f"{path} is a directory, not an SQLite database")
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror}") from e
    # An empty file is a valid empty database (SQLite writes the header on the first table).
    if header and header != _SQLITE_HEADER:
        raise SchemaError(f"{path} is not an SQLite database")
    _CHECKED_FILES.add(key)


#: The extra that installs each backend's default driver, for the "driver missing" sentence.
_EXTRAS = {"postgresql": "postgres"}


def make_engine(location: StoreLocation | str, *, journal: bool = True) -> Engine:
    """Create an engine with the SQLite settings above; other backends get pre-ping only.

    With ``journal=False`` (read-only commands) an SQLite file's journal mode is never changed; with
    ``journal=True`` a file that already holds hpsearch's tables is switched to WAL on connect, and
    :func:`use_wal` switches a file just before hpsearch creates its tables in it. Either way another
    application's database keeps its journal mode unless hpsearch is told to write into it.

    ``postgresql://`` uses psycopg (version 3), SQLAlchemy 2.1's default and what the ``postgres``
    extra installs; a missing driver is one sentence naming what to install.
    """
    from .errors import StorageUrlError

    location = StoreLocation.of(location)
    url = location.url
    if not location.is_sqlite:
        try:
            return create_engine(url, pool_pre_ping=True)
        except ImportError as e:
            raise StorageUrlError(_missing_driver(location, e)) from e
        except ArgumentError as e:  # an unknown dialect, or an option the driver refuses
            reason = mask_credentials(str(e), url)
            raise StorageUrlError(f"cannot use storage {location.shown}: {reason}") from e

    engine = create_engine(url, connect_args={"timeout": sqlite_busy_timeout_s()})
    event.listen(engine, "connect", _sqlite_on_connect if journal else _sqlite_on_connect_reading)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _missing_driver(location: StoreLocation, error: ImportError) -> str:
    backend = location.dialect
    module = getattr(error, "name", None) or location.drivername.partition("+")[2] or backend
    extra = _EXTRAS.get(backend)
    if extra and location.drivername == backend:
        fix = f"install it with `pip install 'hpsearch[{extra}]'`"
    elif extra:
        fix = (f"install {module}, or use {backend}:// with the driver `pip install 'hpsearch[{extra}]'` "
               "installs")
    else:
        fix = f"install {module}"
    return f"cannot use storage {location.shown}: its driver {module} is not installed; {fix}"


def sync_sqlite_at_checkpoints(engine: Engine) -> None:
    """Give an engine hpsearch did not create (Optuna's own) the ``synchronous=NORMAL`` of ours.

    SQLite's default, FULL, flushes the WAL to disk at every commit: Optuna commits as each epoch is
    reported, so a worker waited for about two disk flushes per epoch, holding the database's one write
    lock while the other workers waited too. Its other settings stay Optuna's (its schema is not written
    for foreign key enforcement).
    """
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _sqlite_synchronous_normal)
    engine.dispose()  # connections opened before the listener (table checks) close; new ones get it


def _sqlite_synchronous_normal(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_SYNCHRONOUS)
    finally:
        cursor.close()


#: hpsearch's own tables: a file holding one of them is ours, and may be switched to WAL on connect.
_OUR_TABLES = ("hp_alembic_version", "hp_studies")


def _sqlite_settings(cursor: Any) -> None:
    # Per-connection settings only: none of them changes the file.
    cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_s() * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(_SYNCHRONOUS)


def _sqlite_on_connect_reading(dbapi_connection: Any, connection_record: Any) -> None:
    # pysqlite's own implicit BEGIN is deferred and skipped before DDL; we emit BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        _sqlite_settings(cursor)
    finally:
        cursor.close()


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # As above: BEGIN comes from _sqlite_on_begin, not from pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        _sqlite_settings(cursor)
        mode = cursor.execute("PRAGMA journal_mode").fetchone()
        if not mode or str(mode[0]).lower() != "wal":
            marks = ", ".join("?" * len(_OUR_TABLES))
            ours = cursor.execute(
                f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name IN ({marks})", _OUR_TABLES
            ).fetchone()
            # Someone else's database keeps its journal mode: ensure_schema switches it only when it is
            # about to create our tables there (a command that writes, by design).
            if ours:
                _switch_to_wal(cursor)
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception as e:
        # A read-only database still answers queries without WAL; its writes fail later
        # with a clear "cannot write" instead of the read failing here.
        if "readonly" not in str(e) and "read-only" not in str(e):
            raise


def use_wal(engine: Engine) -> None:
    """Switch an SQLite database to WAL (readers never block the writer) before hpsearch writes its tables.

    Outside any transaction: SQLite refuses to change the journal mode inside one.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        cursor = raw.cursor()
        try:
            _switch_to_wal(cursor)
        finally:
            cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


_WRITE_FAILURES = ("readonly", "read-only", "disk is full", "disk i/o error", "unable to open")


def _can_create_files_in(directory: Path) -> bool:
    """Whether a file can really be created there: ``os.access`` says yes to root on a read-only mount
    or an immutable directory, where SQLite still cannot create its -wal and -shm files."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=directory or "."):
            return True
    except OSError:
        return False


def _out_of_room(path: Path) -> str | None:
    """What SQLite reports as a bare "disk I/O error" when a write found no room: say which."""
    import resource
    import shutil

    try:
        if shutil.disk_usage(path.parent or ".").free < 16 * 2**20:
            return "the disk is full"
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    except OSError:
        return None
    if soft != resource.RLIM_INFINITY:
        sizes = [p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()]
        if any(size + 64 * 2**10 >= soft for size in sizes):
            return "the file size limit is reached"
    return None


def translate_error(error: DBAPIError, location: StoreLocation | str, *, writing: bool) -> StorageError:
    """One clear sentence for driver errors users can cause (permissions, full disk, locks, garbage).

    Args:
        error: the driver's error.
        location: the store it came from.
        writing: whether the failed statement wrote.

    Returns:
        The StorageError (or SchemaError) to raise, its password masked.
    """
    from .errors import SchemaError

    location = StoreLocation.of(location)
    where = location.shown
    # A driver's message may quote the connection string (psycopg's "invalid dsn", for one).
    reason = mask_credentials(str(getattr(error, "orig", None) or error).strip().splitlines()[0],
                              location.url)
    lowered = reason.lower()
    if "file is not a database" in lowered or "file is encrypted" in lowered:
        return SchemaError(f"{where} is not an SQLite database")
    path = location.sqlite_file
    if path is not None and any(token in lowered for token in _WRITE_FAILURES):
        directory = path.parent
        if not _can_create_files_in(directory):
            # In WAL mode even readers need to create x.db-shm next to the database.
            return StorageError(f"cannot open {where}: directory {directory} is not writable ({reason})")
    if path is not None and "disk i/o error" in lowered:
        room = _out_of_room(path)
        if room:
            reason = f"{room} ({reason})"
    if writing or any(token in lowered for token in _WRITE_FAILURES):
        return StorageError(f"cannot write to {where}: {reason}")
    return StorageError(f"cannot read {where}: {reason}")
