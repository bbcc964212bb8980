"""``hpsearch serve``'s JSON API fuzzed from its own OpenAPI document (Schemathesis), against a real server.

Every operation of the document served at ``/api/openapi.json`` gets requests generated from its schema:
valid ones (on unknown studies and on studies that exist, so the queries run over real rows) and, where
the operation takes input, ones that break the schema. Whatever comes, the server must answer without a
500, and the storage password (the store is PostgreSQL with a password when the test server runs) must
never appear in an answer.

No request may start training: launches and resumes get schema-breaking bodies only, which the server
must refuse (4xx) before any child process exists; a 202 would fail the test (and the server stops what
it started on the way out). Generation is derandomized, so every run sends the same few hundred requests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.serve_support import populate, running_server

#: The storage password of the fuzzed server; trust authentication on the test server accepts any.
SECRET = "Fz/p@ss w0rd-Sh0uld-N3ver-Show"
#: Existing studies the generated requests also name (beside the random names the schema allows).
EXISTING = ("iris-optuna", "iris-sklearn", "team/a")
#: Generated requests per operation and kind: few, so the test stays well under a minute on two cores.
VALID_CASES = 12
BROKEN_CASES = 10


def _postgres_database() -> tuple[str, str] | None:
    """A fresh database of this test's own on the test PostgreSQL server (URL with the password, and the
    plain URL that created it), or None when the suite runs without PostgreSQL."""
    url = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")
    if not url:
        return None
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import DBAPIError

    base = make_url(url)
    name = f"hpsearch_fuzz_{os.getpid()}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError:
        return None  # a user who may not create databases: fuzz over SQLite instead
    finally:
        engine.dispose()
    own = base.set(database=name)
    # Percent-encoded by hand, lower-case hex, the way a user may type it (not quote()'s spelling).
    encoded = quote(SECRET, safe="").lower().replace("%20", "+")
    with_password = (f"{own.drivername}://{own.username or 'postgres'}:{encoded}@{own.host}:{own.port}"
                     f"/{own.database}")
    return with_password, own.render_as_string(hide_password=False)


def _drop(url: str) -> None:
    from sqlalchemy import create_engine, make_url, text

    parsed = make_url(url)
    engine = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    except Exception:  # noqa: BLE001 - a database left behind costs nothing but disk on a throwaway server
        pass
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real server over a populated store; yields its address and the storage password's forms."""
    tmp_path = tmp_path_factory.mktemp("serve-fuzz")
    postgres = _postgres_database()
    served_url, plain_url = postgres if postgres else (f"sqlite:///{tmp_path / 'hp.db'}",) * 2
    populate(plain_url, tmp_path / "models")
    from tests.test_serve_security import _named_study

    _named_study(plain_url, "team/a")
    data_dir = tmp_path / "data"  # empty: a launch could only name bundled data anyway
    data_dir.mkdir()
    try:
        with running_server(tmp_path, served_url, "--data-dir", str(data_dir)) as server:
            yield server.url, served_url
            log = server.output()
        for form in _secret_forms():
            assert form not in log, "the storage password reached the server's log"
    finally:
        if postgres:
            _drop(plain_url)


def _secret_forms() -> list[str]:
    return [SECRET, quote(SECRET, safe=""), quote(SECRET, safe="").lower(), quote(SECRET), "Sh0uld-N3ver"]


def _check(response: Any, case: Any, *, refused: bool) -> None:
    where = f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r}"[:300]
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    if refused:  # a body that breaks the schema never reaches a child process
        assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    # Schemathesis gives each header as the list of its values.
    headers = {name.lower(): ", ".join(values) for name, values in response.headers.items()}
    text = response.text + "".join(f"{name}: {value}\n" for name, value in headers.items())
    for form in _secret_forms():
        assert form not in text, f"{where}: the storage password is in the answer"
    is_json = headers.get("content-type", "").startswith("application/json")
    if is_json and response.status_code >= 400:
        message = response.json()["error"]
        assert "\n" not in message and "Traceback" not in message, f"{where}: {message}"


def _breakable(operation: dict[str, Any]) -> bool:
    """Whether a request can break the operation's schema: a query parameter (its type, range or
    choices) or a path parameter that is not any string (a study name is any string)."""
    return any(parameter["in"] == "query" or parameter["schema"].get("type") != "string"
               or "enum" in parameter["schema"] for parameter in operation.get("parameters", []))


def test_api_fuzzed_from_its_openapi_document(fuzzed: tuple[str, str]) -> None:
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    base_url, _ = fuzzed
    with requests.Session() as session:
        document = session.get(f"{base_url}/api/openapi.json", timeout=60).json()
        schema = schemathesis.openapi.from_dict(document)
        tried: dict[str, int] = {}

        def fuzz(label: str, strategy: object, examples: int, *, refused: bool) -> None:
            @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def one(case: object) -> None:
                response = case.call(base_url=base_url, session=session)  # type: ignore[attr-defined]
                tried[label] = tried.get(label, 0) + 1
                _check(response, case, refused=refused)

            one()

        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            parameters = [p.name for p in operation.iter_parameters()]
            if operation.method == "post":
                if operation.body:  # launch and resume: schema-breaking bodies only, never a run
                    broken = operation.as_strategy(GenerationMode.NEGATIVE)
                    fuzz(label + " (broken)", broken, BROKEN_CASES * 3, refused=True)
                    if "name" in parameters:
                        fuzz(label + " (broken, existing)", operation.as_strategy(
                            GenerationMode.NEGATIVE, path_parameters={"name": "iris-optuna"}), BROKEN_CASES,
                            refused=True)
                else:  # stop: nothing here runs, so every stop is refused or 404
                    fuzz(label, operation.as_strategy(), VALID_CASES, refused=True)
                continue
            fuzz(label, operation.as_strategy(), VALID_CASES if parameters else 2, refused=False)
            if "name" in parameters:
                for name in EXISTING:
                    fuzz(f"{label} ({name})", operation.as_strategy(path_parameters={"name": name}),
                         VALID_CASES // 2, refused=False)
            if _breakable(document["paths"][operation.path]["get"]):
                fuzz(label + " (broken)", operation.as_strategy(GenerationMode.NEGATIVE), BROKEN_CASES,
                     refused=False)
    total = sum(tried.values())
    print(f"fuzzed {total} requests over {len(tried)} operation kinds")
    assert total >= 200, tried
