"""Read-only commands leave databases that are not hpsearch's exactly as they were.

``studies``, ``trials``, ``best``, ``compare`` and ``plot`` never create a file, never create or migrate
tables and never change an SQLite file's journal mode: pointed at another application's database (or
an empty file) they say it is not an hpsearch database and exit 2. ``run`` and ``db upgrade`` still
write, by design.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from hpsearch.storage import NotOurDatabaseError, open_storage

READ_COMMANDS = [
    ("studies",),
    ("studies", "--json"),
    ("trials", "s"),
    ("best", "s"),
    ("compare", "s"),
    ("plot", "s"),
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _other_apps_database(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.execute("INSERT INTO notes (body) VALUES ('not a study')")
    conn.commit()
    conn.close()
    return path


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_another_apps_sqlite_file_is_left_byte_identical(cli, tmp_path: Path, command: tuple[str, ...]):
    other = _other_apps_database(tmp_path / "other.db")
    before = _sha256(other)
    assert _journal_mode(other) == "delete"

    result = cli(*command, "--storage", str(other))

    assert result.code == 2, (result.out, result.err)
    assert _one_line(result.err) == (
        f"error: {other} is not an hpsearch database (no hp_studies table); "
        "give the file `hpsearch run` wrote"
    )
    assert _sha256(other) == before
    assert _journal_mode(other) == "delete"
    assert _tables(other) == {"notes"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("other.db")) == ["other.db"]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_an_empty_file_stays_empty(cli, tmp_path: Path, command: tuple[str, ...]):
    empty = tmp_path / "empty.db"
    empty.touch()

    result = cli(*command, "--storage", f"sqlite:///{empty}")

    assert result.code == 2
    assert _one_line(result.err) == (
        f"error: {empty} is not an hpsearch database (the file is empty); "
        "give the file `hpsearch run` wrote"
    )
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("empty.db")) == ["empty.db"]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_missing_file_is_not_created(cli, tmp_path: Path, command: tuple[str, ...]):
    missing = tmp_path / "typo.db"
    result = cli(*command, "--storage", str(missing))
    assert result.code == 2 and str(missing) in _one_line(result.err)
    assert not missing.exists()


def test_an_optuna_only_database_is_left_alone(cli, tmp_path: Path):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path / "optuna.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="theirs")
    before, mode = _sha256(path), _journal_mode(path)

    result = cli("studies", "--storage", str(path))

    assert result.code == 2 and "is not an hpsearch database (no hp_studies table)" in result.err
    assert _sha256(path) == before and _journal_mode(path) == mode
    assert not any(name.startswith("hp_") for name in _tables(path))


def test_our_database_without_studies_is_fine(cli, tmp_path: Path):
    path = tmp_path / "ours.db"
    open_storage(str(path)).close()
    result = cli("studies", "--storage", str(path))
    assert result.code == 0, result.err
    assert result.out.strip() == f"there are no studies yet in {path}"


def test_open_storage_read_only_refuses_and_leaves_the_file(tmp_path: Path):
    other = _other_apps_database(tmp_path / "other.db")
    before = _sha256(other)
    with pytest.raises(NotOurDatabaseError) as e:
        open_storage(str(other), create=False)
    assert e.value.exit_code == 2
    assert _sha256(other) == before and _journal_mode(other) == "delete"


def test_writing_commands_still_create_and_switch_to_wal(cli, tmp_path: Path):
    # A new database from `run` (open_storage with create=True) is ours, in WAL mode.
    fresh = tmp_path / "fresh.db"
    open_storage(str(fresh)).close()
    assert {"hp_studies", "hp_alembic_version"} <= _tables(fresh)
    assert _journal_mode(fresh) == "wal"

    # `db upgrade` writes by design: it adds our tables next to another application's.
    other = _other_apps_database(tmp_path / "other.db")
    result = cli("db", "upgrade", "--storage", str(other))
    assert result.code == 0, result.err
    assert {"notes", "hp_studies", "hp_alembic_version"} <= _tables(other)
    assert _journal_mode(other) == "wal"
    assert cli("studies", "--storage", str(other)).code == 0
