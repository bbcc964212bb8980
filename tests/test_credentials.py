"""Storage passwords never reach text: every spelling of a given URL's password, and any other URL's."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
from hpsearch.storage.credentials import mask_credentials, mask_url, masker
from hpsearch.storage.locator import display_name, safe_url
from sqlalchemy.engine import make_url

#: Every character a URL parser treats specially, plus a space and a non-ASCII letter.
PASSWORD = "p@ss:w/rd%25*x y+é"
DRIVERS = ["postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql+pymysql", "oracle+oracledb"]


def _spellings(password: str) -> list[str]:
    """The forms a password takes in messages: raw, quoted by each library, either hex case, partly."""
    full = quote(password, safe="")
    return [
        password,
        full,
        full.lower(),
        quote(password),  # "/" left raw
        quote_plus(password),  # " " as "+"
        quote_plus(password).lower(),
        make_url("postgresql://u:x@h/d").set(password=password).render_as_string(hide_password=False)
        .split("u:", 1)[1].rsplit("@h", 1)[0],  # SQLAlchemy's own quoting (only @:/% escaped)
        password.replace("@", "%40"),  # partly encoded
        password.replace(":", "%3a").replace("/", "%2F"),
    ]


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("spelled", ["quote", "quote_plus", "lower", "sqlalchemy"])
def test_every_spelling_of_a_given_urls_password_is_masked(driver: str, spelled: str) -> None:
    encode = {
        "quote": lambda p: quote(p, safe=""),
        "quote_plus": quote_plus,
        "lower": lambda p: quote(p, safe="").lower(),
        "sqlalchemy": lambda p: make_url("postgresql://u:x@h/d").set(password=p)
        .render_as_string(hide_password=False).split("u:", 1)[1].rsplit("@h", 1)[0],
    }[spelled]
    url = f"{driver}://me:{encode(PASSWORD)}@db.example:5432/hp"
    for form in _spellings(PASSWORD):
        masked = mask_credentials(f"failed: {form} (at {url})", url)
        assert form not in masked, (form, masked)
        assert masked == f"failed: *** (at {driver}://me:***@db.example:5432/hp)"


def test_text_with_the_password_in_several_forms_at_once() -> None:
    url = "postgresql+psycopg://me:" + quote(PASSWORD, safe="") + "@db.example/hp"
    text = " | ".join(_spellings(PASSWORD) + [url, repr(url), f"password={PASSWORD!r}"])
    masked = mask_credentials(text, url)
    for form in _spellings(PASSWORD):
        assert form not in masked
    for fragment in ("ss:w", "rd%", "x y", "x+y", "w%2Frd", "p%40ss"):
        assert fragment not in masked
    assert masked.count("***") >= len(_spellings(PASSWORD)) + 3
    assert "me:***@db.example/hp" in masked


def test_credential_bearing_urls_that_were_not_given_are_masked() -> None:
    text = (
        "could not reach postgresql://alice:hunter22@db1/hp, mysql+pymysql://root:s3cr%40t@db2:3306/x "
        "or 'postgresql+psycopg2://bob:raw@pass@db3/y'; dsn host=db4 password=letmein user=carol"
    )
    masked = mask_credentials(text)
    for secret in ("hunter22", "s3cr%40t", "raw@pass", "letmein"):
        assert secret not in masked
    assert "postgresql://alice:***@db1/hp" in masked
    assert "mysql+pymysql://root:***@db2:3306/x" in masked
    assert "postgresql+psycopg2://bob:***@db3/y" in masked
    assert "password=*** user=carol" in masked


def test_a_url_with_a_raw_at_sign_in_its_password_is_masked_in_both_readings() -> None:
    url = "postgresql://me:p@ss@db.example/hp"  # typed unencoded: SQLAlchemy reads the password "p"
    assert mask_url(url) == "postgresql://me:***@db.example/hp"
    assert mask_credentials("auth failed for p@ss", url) == "auth failed for ***"


def test_text_without_credentials_is_unchanged() -> None:
    text = "no study 'x' in runs/hp.db; existing studies: a, b (postgres user=me)"
    assert mask_credentials(text) == text
    assert mask_credentials(text, "sqlite:///runs/hp.db", "postgresql://me@h/hp") == text
    assert mask_url("sqlite:///runs/hp.db") == "sqlite:///runs/hp.db"
    assert mask_url("sqlite:////home/a:b@c/x.db") == "sqlite:////home/a:b@c/x.db"  # a path, no password
    assert mask_url("postgresql://me@db.example/hp") == "postgresql://me@db.example/hp"
    assert mask_credentials("", "postgresql://me:pw@h/d") == ""


def test_a_short_password_is_masked_where_it_stands_alone_not_inside_words() -> None:
    url = "postgresql://me:pw@db.example/hp"
    assert mask_credentials("pw was refused by postgresql at db.example", url) == (
        "*** was refused by postgresql at db.example")


def test_mask_url_keeps_the_users_spelling_and_the_query() -> None:
    url = "postgresql+psycopg://me:" + quote(PASSWORD, safe="") + "@db.example:5432/hp?sslmode=require"
    assert mask_url(url) == "postgresql+psycopg://me:***@db.example:5432/hp?sslmode=require"


def test_the_display_helpers_use_the_one_mask() -> None:
    url = "postgresql://me:" + quote(PASSWORD, safe="").lower() + "@db.example/hp"
    for shown in (display_name(url), safe_url(url)):
        assert shown == "postgresql://me:***@db.example/hp"
    assert masker(url)(PASSWORD) == "***"


def test_compare_names_the_database_without_its_password(tmp_path) -> None:
    """The unknown-study sentence of ``compare`` (no PostgreSQL server needed: a PostgreSQL URL over an
    SQLite engine; tests/test_storage_postgres_url.py runs the real command against the test server)."""
    from hpsearch.results.compare import UnknownStudyError, compare_studies
    from hpsearch.storage import Storage, open_storage

    url = "postgresql+psycopg://me:" + quote(PASSWORD, safe="").lower() + "@db.example:5432/hp"
    real = open_storage(str(tmp_path / "hp.db"))
    try:
        with pytest.raises(UnknownStudyError) as e:
            compare_studies(Storage(real._engine, url), ["nope"])
    finally:
        real.close()
    message = str(e.value)
    assert message == (
        "no study 'nope' in postgresql+psycopg://me:***@db.example:5432/hp; existing studies: none")
    for form in _spellings(PASSWORD):
        assert form not in message
