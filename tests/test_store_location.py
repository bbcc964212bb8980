"""StoreLocation: ``--storage`` (a path or a URL) read once into the URL, dialect, file and shown forms."""

from __future__ import annotations

from pathlib import Path

import pytest
from hpsearch.storage import StorageUrlError, StoreLocation, open_storage
from hpsearch.storage.locator import display_name, normalize_url, safe_url, sqlite_path


def test_a_plain_path_is_an_sqlite_file() -> None:
    location = StoreLocation.parse("runs/x.db")
    assert location.url == "sqlite:///runs/x.db" and location.dialect == "sqlite" and location.is_sqlite
    assert location.sqlite_file == Path("runs/x.db") and location.shown == "runs/x.db"
    assert location.safe_url == "sqlite:///runs/x.db" and str(location) == "runs/x.db"
    assert StoreLocation.parse("/abs/x.db").url == "sqlite:////abs/x.db"
    assert StoreLocation.parse("/abs/x.db").sqlite_file == Path("/abs/x.db")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"])
def test_an_in_memory_database_has_no_file(url: str) -> None:
    location = StoreLocation.parse(url)
    assert location.is_sqlite and location.sqlite_file is None


def test_an_sqlite_uri_names_its_file() -> None:
    assert StoreLocation.parse("sqlite:///file:runs/x.db?uri=true").sqlite_file == Path("runs/x.db")
    remote_form = StoreLocation.parse("sqlite:///file://localhost/tmp/x.db?uri=true")
    assert remote_form.sqlite_file == Path("/tmp/x.db")


def test_a_server_url_is_shown_without_its_password() -> None:
    location = StoreLocation.parse("postgresql+psycopg2://me:s3cr%40t@db.example:5432/hp")
    read = (location.dialect, location.drivername, location.database)
    assert read == ("postgresql", "postgresql+psycopg2", "hp")
    assert location.sqlite_file is None and not location.is_sqlite
    assert location.shown == location.safe_url == "postgresql+psycopg2://me:***@db.example:5432/hp"
    assert "s3cr" not in repr(location.shown)


def test_an_unreadable_url_is_one_sentence_naming_storage() -> None:
    with pytest.raises(StorageUrlError) as e:
        StoreLocation.parse("postgresql://me:secret-pw@db.example:notaport/hp")
    message = str(e.value)
    assert message.startswith("--storage must be an SQLite file path or a database URL")
    assert "secret-pw" not in message and "***" in message and e.value.exit_code == 2
    with pytest.raises(StorageUrlError):
        StoreLocation.parse("://nothing")
    # Messages about such a URL still name it, masked, instead of failing in turn.
    assert display_name("postgresql://me:secret-pw@db.example:notaport/hp") == (
        "postgresql://me:***@db.example:notaport/hp")


def test_the_helpers_read_the_location() -> None:
    assert normalize_url("x.db") == "sqlite:///x.db" and normalize_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert sqlite_path("x.db") == Path("x.db") and sqlite_path("postgresql://u@h/d") is None
    assert display_name("x.db") == "x.db" and safe_url("postgresql://u:p@h/d") == "postgresql://u:***@h/d"
    location = StoreLocation.parse("x.db")
    assert StoreLocation.of(location) is location and StoreLocation.of("x.db") == location


def test_storage_exposes_the_location_it_was_opened_at(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "s.db"))
    try:
        assert storage.location == StoreLocation.parse(str(tmp_path / "s.db"))
        assert storage.url == storage.location.url == f"sqlite:///{tmp_path / 's.db'}"
        assert storage.where == str(tmp_path / "s.db")
    finally:
        storage.close()
    # An already parsed location is used as it is.
    location = StoreLocation.parse(str(tmp_path / "t.db"))
    other = open_storage(location)
    try:
        assert other.location is location
    finally:
        other.close()
