"""Where a trial store lives: the user's ``--storage`` (a file path or a URL) read once, into one object.

``StoreLocation.parse("runs/hp.db")`` and ``StoreLocation.parse("postgresql://me:pw@host/hp")`` give the
URL SQLAlchemy opens, its dialect, the SQLite file (None for a server or an in-memory database) and the
forms that may be shown: ``shown`` (the file, or the URL with its password as ``***``) for messages and
``safe_url`` for a command line a user may copy. Everything that needs one of these reads it from the
location (``Storage.location``) instead of reading the URL again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .credentials import mask_credentials, mask_url
from .errors import StorageUrlError

#: What ``--storage`` must be, for the one sentence that refuses it.
_WHAT_MUST_HOLD = ("--storage must be an SQLite file path or a database URL such as "
                   "postgresql://user@host/database")


def normalize_url(url_or_path: str) -> str:
    """Turn a plain file path into an SQLite URL; anything with ``://`` passes through unchanged.

    Args:
        url_or_path: what the user gave as ``--storage``.

    Returns:
        An SQLAlchemy URL string.
    """
    if "://" in url_or_path:
        return url_or_path
    # "sqlite:///" + "/abs/x.db" gives the four slashes SQLAlchemy expects for an absolute path.
    return "sqlite:///" + url_or_path


@dataclass(frozen=True)
class StoreLocation:
    """A trial store's location, parsed once; build it with :meth:`parse` (or :meth:`of`)."""

    #: The URL SQLAlchemy (and Optuna) open: a plain path becomes ``sqlite:///path``.
    url: str
    #: SQLAlchemy's backend name: ``sqlite``, ``postgresql``, ...
    dialect: str
    #: The URL's scheme as written, driver included when given: ``postgresql``, ``postgresql+psycopg2``.
    drivername: str
    #: The SQLite database file, or None for another backend and for an in-memory database.
    sqlite_file: Path | None
    #: The database's name in the URL (a server's database; for SQLite, the file as written), or None.
    database: str | None
    #: What messages call the store: the SQLite file, else the URL with its password as ``***``.
    shown: str
    #: The URL as it may be printed, logged or put on a command line: its password as ``***``.
    safe_url: str

    @classmethod
    def parse(cls, given: str) -> StoreLocation:
        """Read ``--storage`` (a file path or an SQLAlchemy URL) once.

        Args:
            given: the path or URL as the user gave it.

        Returns:
            The location.

        Raises:
            StorageUrlError: SQLAlchemy cannot read the URL (the message says what ``--storage`` must be,
                with any password masked).
        """
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        url = normalize_url(given)
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as e:  # ValueError: a port that is not a number
            # SQLAlchemy's message may quote the whole URL, password included.
            reason = mask_credentials(str(e), url)
            raise StorageUrlError(f"{_WHAT_MUST_HOLD}, but got {mask_url(url)!r} ({reason})") from e
        dialect = parsed.get_backend_name()
        sqlite_file = _sqlite_file(parsed) if dialect == "sqlite" else None
        safe = mask_url(url)
        return cls(url=url, dialect=dialect, drivername=parsed.drivername, sqlite_file=sqlite_file,
                   database=parsed.database,
                   shown=str(sqlite_file) if sqlite_file is not None else safe, safe_url=safe)

    @classmethod
    def of(cls, location: StoreLocation | str) -> StoreLocation:
        """``location`` itself when already parsed, else :meth:`parse` of it.

        Args:
            location: a location, or a path or URL.

        Returns:
            The location.

        Raises:
            StorageUrlError: as :meth:`parse`.
        """
        return location if isinstance(location, StoreLocation) else cls.parse(location)

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is an SQLite database (a file or in memory)."""
        return self.dialect == "sqlite"

    def __str__(self) -> str:
        return self.shown


def _sqlite_file(parsed: Any) -> Path | None:
    """The database file of a parsed SQLite URL (SQLAlchemy's ``URL``), or None for an in-memory one."""
    database = parsed.database or ""
    query = parsed.query
    if query.get("uri") in ("true", "1"):
        database = database.removeprefix("file:")
        if database.startswith("//"):  # file://host/path form; only the local host is meaningful
            database = database[2:].partition("/")[2]
            database = "/" + database
    if database in ("", ":memory:") or query.get("mode") == "memory":
        return None
    return Path(database)


def display_name(given: StoreLocation | str) -> str:
    """What messages call a store given as a location, a path or a URL; a URL that cannot be parsed is
    shown as written, its password masked (a message about it must not fail in turn).

    Args:
        given: the store.

    Returns:
        Its name for messages.
    """
    if isinstance(given, StoreLocation):
        return given.shown
    try:
        return StoreLocation.parse(given).shown
    except StorageUrlError:
        return mask_url(normalize_url(given))


def sqlite_path(url: StoreLocation | str) -> Path | None:
    """The database file of an SQLite store, or None for other backends and in-memory databases.

    Args:
        url: the store.

    Returns:
        ``StoreLocation.sqlite_file``.

    Raises:
        StorageUrlError: as :meth:`StoreLocation.parse`.
    """
    return StoreLocation.of(url).sqlite_file


def safe_url(url: StoreLocation | str) -> str:
    """The URL as it may be printed, logged or stored: a password becomes ``***``.

    Args:
        url: the store.

    Returns:
        The masked URL (a path given as such stays a path).
    """
    if isinstance(url, StoreLocation):
        return url.safe_url
    return mask_url(url)
