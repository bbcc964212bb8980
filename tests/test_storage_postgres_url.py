"""PostgreSQL URLs as the README writes them (``postgresql://``, psycopg 3), and passwords kept out of output.

These run against the session's throwaway server (tests/conftest.py, scripts/postgres.sh), which trusts
loopback connections: any password connects, so a password-bearing URL reaches every message path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hpsearch.storage import NotOurDatabaseError, StorageUrlError, open_storage
from hpsearch.storage.connection import make_engine
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="HPSEARCH_TEST_POSTGRES=0 declined the server")

#: Characters that URL encoders disagree on (SQLAlchemy escapes only @:/%, quote() escapes * and é).
SECRET = "Pw/S3cr*t@x:y%z é-never-shown"
REPO = Path(__file__).resolve().parents[1]


def _database(name: str) -> str:
    """The README's form of a URL to a database of this test's own on the test server (created once)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    assert POSTGRES_URL
    base = make_url(POSTGRES_URL).set(drivername="postgresql")
    name = f"{name}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            known = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if known is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError:  # a server whose user may not create databases: use the given one
        return base.render_as_string(hide_password=False)
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _with_password(url: str, encode=lambda p: quote(p, safe="").lower()) -> str:
    """``url`` with SECRET as its password, percent-encoded as a user might (lower-case hex by default)."""
    parsed = make_url(url)
    return (f"{parsed.drivername}://{parsed.username}:{encode(SECRET)}@{parsed.host}:{parsed.port}"
            f"/{parsed.database}")


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for form in (SECRET, quote(SECRET, safe=""), quote(SECRET, safe="").lower(), "S3cr*t", "S3cr%2at"):
            assert form not in text, text


@needs_postgres
def test_the_readme_url_form_works_for_hpsearch_and_optuna(tmp_path: Path) -> None:
    if os.environ.get("HPSEARCH_TEST_POSTGRES_STARTED") == "1":
        # scripts/postgres.sh prints the README's form; every PostgreSQL test of the suite uses it.
        assert make_url(POSTGRES_URL).drivername == "postgresql"
    url = _database("hpsearch_readme")
    assert url.startswith("postgresql://") and "+" not in url.split("://")[0]
    storage = open_storage(url)
    assert storage._engine.dialect.driver == "psycopg"
    storage.close()

    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna opens the very same URL (search/engines/optuna/engine.py creates an RDBStorage from it).
    rdb = optuna.storages.RDBStorage(url)
    assert rdb.engine.dialect.driver == "psycopg"
    study = optuna.create_study(storage=rdb, study_name="readme-form", load_if_exists=True)
    assert study.study_name == "readme-form"
    rdb.engine.dispose()

    # The console script in a process of its own, the URL by environment as workers get it.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hpsearch")), "studies"], capture_output=True, text=True,
        cwd=tmp_path, env={**os.environ, "HPSEARCH_STORAGE": url}, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "there are no studies yet" in done.stdout or "study" in done.stdout


@needs_postgres
def test_compare_with_an_unknown_study_never_prints_the_password(cli, tmp_path: Path) -> None:
    url = _database("hpsearch_credentials")
    open_storage(url).close()  # our tables, so the failure is the unknown study itself
    for encode in (lambda p: quote(p, safe="").lower(), lambda p: quote(p, safe=""),
                   lambda p: quote(p, safe="/*")):
        secret_url = _with_password(url, encode)
        result = cli("compare", "no-such-study", "--storage", secret_url)
        assert result.code == 2, result.err
        assert "no study 'no-such-study' in postgresql://hpsearch:***@" in result.err
        _assert_no_secret(result.out, result.err)
        debug = cli("--debug", "compare", "no-such-study", "--storage", secret_url)
        assert debug.code == 2 and "Traceback" in debug.err
        _assert_no_secret(debug.out, debug.err)

    secret_url = _with_password(url)
    for command in (("trials", "no-such-study"), ("best", "no-such-study"), ("plot", "no-such-study")):
        result = cli(*command, "--storage", secret_url)
        assert result.code == 2 and "***" in result.err
        _assert_no_secret(result.out, result.err)

    # Another process, the URL by environment: the same sentence, no password.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hpsearch")), "compare", "no-such-study"], capture_output=True,
        text=True, cwd=tmp_path, env={**os.environ, "HPSEARCH_STORAGE": secret_url}, timeout=120,
    )
    assert done.returncode == 2
    _assert_no_secret(done.stdout, done.stderr)


@needs_postgres
def test_driver_errors_and_foreign_databases_never_print_the_password(cli) -> None:
    missing = make_url(_with_password(_database("hpsearch_credentials"))).set(database="no_such_database")
    # Rendered by hand: SQLAlchemy's own rendering would re-encode the password its way.
    text = _with_password(missing.render_as_string(hide_password=True).replace(":***@", "@"))
    result = cli("studies", "--storage", text)
    assert result.code == 1 and "no_such_database" in result.err and "***" in result.err
    _assert_no_secret(result.out, result.err)

    empty = _database("hpsearch_not_ours")  # a database of the server with none of our tables
    with pytest.raises(NotOurDatabaseError) as e:
        open_storage(_with_password(empty), create=False)
    assert "is not an hpsearch database" in str(e.value)
    _assert_no_secret(str(e.value))


def test_a_missing_driver_names_the_extra_to_install(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://me:" + quote(SECRET, safe="") + "@db.example/hp"
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the postgres extra were not installed
    with pytest.raises(StorageUrlError) as e:
        make_engine(url)
    assert str(e.value) == ("cannot use storage postgresql://me:***@db.example/hp: its driver psycopg is "
                            "not installed; install it with `pip install 'hpsearch[postgres]'`")
    assert e.value.exit_code == 2

    # psycopg2 (the old extra's driver) is not installed: the message points at the README's form.
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    result = cli("studies", "--storage", url.replace("postgresql://", "postgresql+psycopg2://"))
    assert result.code == 2 and "hpsearch[postgres]" in result.err and "postgresql://" in result.err
    _assert_no_secret(result.out, result.err)
