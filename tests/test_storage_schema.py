"""Opening databases: schema versions, files that are not ours, permissions, Optuna's tables, imports."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hpsearch.storage import (
    DuplicateTrialError,
    SchemaError,
    StorageError,
    TrialState,
    normalize_url,
    open_storage,
    upgrade_database,
)
from hpsearch.storage import schema as schema_module
from hpsearch.storage.connection import make_engine

REPO_ROOT = Path(__file__).resolve().parents[1]


def _new_study(storage, name: str = "s"):
    return storage.create_study(
        name,
        engine="optuna",
        algorithm="tpe",
        objective="val_loss",
        direction="minimize",
        space={},
        dataset={},
        settings={},
        versions={},
    )


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _version(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute(f"SELECT version_num FROM {table}")]


def test_normalize_url() -> None:
    assert normalize_url("x.db") == "sqlite:///x.db"
    assert normalize_url("runs/x.db") == "sqlite:///runs/x.db"
    assert normalize_url("/abs/x.db") == "sqlite:////abs/x.db"
    assert normalize_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_new_database_is_migrated_with_sqlite_settings(tmp_path: Path) -> None:
    path = tmp_path / "hp.db"
    storage = open_storage(str(path))
    assert storage.url == f"sqlite:///{path}"
    assert {"hp_studies", "hp_trials", "hp_trial_epochs", "hp_models", "hp_alembic_version"} <= _tables(path)
    head, _ = schema_module.known_revisions()
    assert _version(path, "hp_alembic_version") == [head]
    with storage._engine.connect() as conn:  # the settings each connection must carry
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    assert pragma == {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1, "synchronous": 1}
    storage.close()
    reopened = open_storage(str(path))  # an up-to-date database opens without migrating again
    reopened.close()


def test_migration_matches_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from hpsearch.storage.tables import Base

    storage = open_storage(str(tmp_path / "hp.db"))
    with storage._engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diffs = [d for d in compare_metadata(context, Base.metadata) if "hp_alembic_version" not in str(d)]
    storage.close()
    assert diffs == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    open_storage(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE hp_alembic_version SET version_num = 'f00dcafe'")
    message = (
        f"{path} was written by a newer version of hpsearch (schema revision f00dcafe); "
        "upgrade hpsearch to open it"
    )
    with pytest.raises(SchemaError) as e:
        open_storage(str(path))
    assert str(e.value) == message and e.value.exit_code == 2
    with pytest.raises(SchemaError, match="newer version"):
        upgrade_database(str(path))


def test_older_schema_asks_for_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.db"
    open_storage(str(path)).close()
    # Pretend this code ships a later revision than the one the file has.
    head, _ = schema_module.known_revisions()
    monkeypatch.setattr(schema_module, "known_revisions", lambda: ("0099", frozenset({head, "0099"})))
    with pytest.raises(SchemaError) as e:
        open_storage(str(path))
    assert str(e.value) == (
        f"{path} uses an older schema ({head}); run `hpsearch db upgrade --storage sqlite:///{path}`"
    )


def test_upgrade_database(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    path.touch()  # an empty file is an empty SQLite database
    head, _ = schema_module.known_revisions()
    assert upgrade_database(str(path)) == (None, head)
    assert upgrade_database(str(path)) == (head, head)
    with pytest.raises(StorageError, match="no database at"):
        upgrade_database(str(tmp_path / "missing.db"))


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(SchemaError) as e:
        open_storage(str(path))
    assert str(e.value) == f"{path} is not an SQLite database" and e.value.exit_code == 2
    # A correct header over garbage is caught by SQLite itself.
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    with pytest.raises(SchemaError, match="is not an SQLite database"):
        open_storage(str(path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(StorageError) as e:
        open_storage(str(missing), create=False)
    assert str(e.value) == f"no database at {missing}; run `hpsearch run` first or pass --storage"
    assert e.value.exit_code == 2 and not missing.exists()
    with pytest.raises(StorageError, match="directory .*nowhere does not exist"):
        open_storage(str(tmp_path / "nowhere" / "x.db"))
    assert not (tmp_path / "nowhere").exists()


def test_optuna_tables_coexist(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path / "shared.db"
    url = f"sqlite:///{path}"
    optuna.create_study(storage=url, study_name="before").optimize(lambda t: t.suggest_float("x", 0, 1), 2)

    storage = open_storage(url)
    study = _new_study(storage, "ours")
    trial = storage.start_trial(study.id, {"x": 1}, worker="h:1")
    storage.finish_trial(trial.id, TrialState.COMPLETE, value=1.0)

    optuna.create_study(storage=url, study_name="after").optimize(lambda t: t.suggest_float("x", 0, 1), 2)
    assert len(optuna.load_study(study_name="before", storage=url).trials) == 2
    assert {s.study_name for s in optuna.get_all_study_summaries(url)} == {"before", "after"}
    assert [s.study.name for s in storage.list_studies()] == ["ours"]
    storage.close()

    tables = _tables(path)
    assert {"studies", "trials", "alembic_version", "hp_studies", "hp_trials", "hp_alembic_version"} <= tables
    head, _ = schema_module.known_revisions()
    assert _version(path, "hp_alembic_version") == [head]
    assert _version(path, "alembic_version") != [head]
    open_storage(url).close()  # still opens after Optuna touched the file again


def _assert_cannot_write(error: StorageError, path: Path) -> None:
    message = str(error)
    assert message.startswith((f"cannot write to {path}: ", f"cannot open {path}: ")), message
    assert "readonly" in message or "not writable" in message
    assert "\n" not in message and error.exit_code == 1


def test_read_only_database(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    storage = open_storage(str(path))
    study = _new_study(storage)
    storage.close()

    path.chmod(0o444)
    try:
        if os.access(path, os.W_OK):
            # root ignores permission bits; SQLite's read-only open mode gives the same failure.
            url = f"sqlite:///file:{path}?mode=ro&uri=true"
        else:
            url = f"sqlite:///{path}"
        readonly = open_storage(url, create=False)
        assert readonly.get_study("s").id == study.id  # reads still work
        with pytest.raises(StorageError) as e:
            readonly.start_trial(study.id, {}, worker="h:1")
        assert str(e.value) == f"cannot write to {path}: attempt to write a readonly database"
        readonly.close()

        for leftover in ("x.db-wal", "x.db-shm"):  # left by the read-only connection, which wrote nothing
            (tmp_path / leftover).unlink(missing_ok=True)
        tmp_path.chmod(0o555)
        if os.access(tmp_path, os.W_OK):
            # root ignores permission bits, but not the immutable attribute (ext4, xfs, btrfs).
            subprocess.run(["chattr", "+i", str(tmp_path)], check=True, capture_output=True)
        # SQLite cannot create x.db-shm/-wal here: opening may fail already, writing must.
        with pytest.raises(StorageError) as e:
            store = open_storage(str(path), create=False)
            try:
                store.start_trial(study.id, {}, worker="h:1")
            finally:
                store.close()
        _assert_cannot_write(e.value, path)
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path)], capture_output=True)
        tmp_path.chmod(0o755)
        path.chmod(0o644)


def test_import_does_not_load_heavy_libraries() -> None:
    code = (
        "import sys, storage\n"
        "heavy = [m for m in ('optuna', 'tensorflow', 'keras', 'sklearn', 'alembic', 'search', 'spaces')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


def test_known_revisions_agree_with_alembic() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(schema_module.alembic_config())
    head, known = schema_module.known_revisions()
    assert head == script.get_current_head()
    assert known == {rev.revision for rev in script.walk_revisions()}


def test_trial_rows_unpack_in_record_field_order() -> None:
    # hpsearch.storage.repository builds TrialRecords from rows positionally, in table column order.
    from dataclasses import fields

    from hpsearch.storage.records import TrialRecord
    from hpsearch.storage.row_records import TRIAL_COLUMNS as _TRIAL_COLUMNS

    columns = [column.key for column in _TRIAL_COLUMNS]
    assert columns == [f.name for f in fields(TrialRecord) if f.name != "curves"]


def test_upgrade_from_0001_keys_existing_trials(tmp_path: Path) -> None:
    """A database of schema 0001 is upgraded to head, and its trials get configuration keys, so a
    resumed search does not train their configurations again."""
    from alembic import command
    from hpsearch.storage import config_key
    from hpsearch.storage.schema import alembic_config

    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(
            "INSERT INTO hp_studies (name, engine, algorithm, objective, direction, space, dataset, settings,"
            " versions, created_at, updated_at) VALUES ('s', 'optuna', 'tpe', 'val_loss', 'minimize', '{}',"
            " '{}', '{}', '{}', '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
        )
        connection.exec_driver_sql(
            "INSERT INTO hp_trials (study_id, number, state, params, metrics, started_at, epochs_run,"
            " interrupted, worker, heartbeat_at) VALUES (1, 0, 'COMPLETE', '{\"n_neurons\": 8}', '{}',"
            " '2025-01-01 00:00:00', 3, 0, 'h:1', '2025-01-01 00:00:00')"
        )
    engine.dispose()
    with pytest.raises(SchemaError, match="older schema"):
        open_storage(str(path))
    head, _ = schema_module.known_revisions()
    assert upgrade_database(str(path)) == ("0001", head)
    storage = open_storage(str(path))
    study = storage.get_study("s")
    with pytest.raises(DuplicateTrialError):
        storage.start_trial(study.id, {"n_neurons": 8}, worker="h:2", unique=True)
    assert storage.start_trial(study.id, {"n_neurons": 9}, worker="h:2", unique=True).number == 1
    assert config_key({"n_neurons": 8}) != config_key({"n_neurons": 9})


def test_upgrade_from_0002_adds_copied_trials(tmp_path: Path) -> None:
    """A database of schema 0002 is upgraded to head: its trials read as trained in their own study, and
    a trial copied in afterwards (``--warm-start``) names its source and does not use the budget."""
    from alembic import command
    from hpsearch.storage import TrialCopy
    from hpsearch.storage.schema import alembic_config

    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        for name in ("a", "b"):
            connection.exec_driver_sql(
                "INSERT INTO hp_studies (name, engine, algorithm, objective, direction, space, dataset, "
                f"settings, versions, created_at, updated_at) VALUES ('{name}', 'optuna', 'tpe', 'val_loss', "
                "'minimize', '{}', '{}', '{}', '{}', '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        connection.exec_driver_sql(
            "INSERT INTO hp_trials (study_id, number, state, params, value, metrics, started_at, epochs_run,"
            " interrupted, worker, heartbeat_at, config_key) VALUES (1, 0, 'COMPLETE', '{\"n_neurons\": 8}',"
            " 0.5, '{\"val_loss\": 0.5}', '2025-01-01 00:00:00', 2, 0, 'h:1', '2025-01-01 00:00:00', 'k')"
        )
        connection.exec_driver_sql(
            "INSERT INTO hp_trial_epochs (trial_id, epoch, metrics, recorded_at) VALUES "
            "(1, 0, '{\"val_loss\": 0.7}', '2025-01-01 00:00:00'), (1, 1, '{\"val_loss\": 0.5}', "
            "'2025-01-01 00:00:00')"
        )
    engine.dispose()
    head, _ = schema_module.known_revisions()
    assert upgrade_database(str(path)) == ("0002", head)
    storage = open_storage(str(path))
    source = storage.get_trial(storage.get_study("a").id, 0)
    assert not source.copied and source.copied_from is None
    target = storage.get_study("b")
    [copy] = storage.copy_trials(target.id, [TrialCopy(source, "a", {"n_neurons": 8})])
    assert (copy.number, copy.state, copy.value, copy.copied_from) == (0, TrialState.COMPLETE, 0.5, "a #0")
    assert storage.get_trial(target.id, 0, with_epochs=True).curves == {"val_loss": [0.7, 0.5]}
    assert storage.budget_usage(target.id) == (0, 0)
    # A budget of one still has room for a trained trial; the copy is refused as a duplicate config.
    with pytest.raises(DuplicateTrialError):
        storage.start_trial(target.id, {"n_neurons": 8}, worker="h:2", unique=True, budget=1)
    assert storage.start_trial(target.id, {"n_neurons": 9}, worker="h:2", unique=True, budget=1).number == 1
    summary = {s.study.name: s for s in storage.list_studies()}["b"]
    assert (summary.n_trials, summary.copied, summary.epochs_total) == (2, 1, 0)
