"""``hpsearch serve`` against hostile input: request fields that look like options or paths, oversized and
deeply nested bodies, names and numbers a URL can carry, and storage passwords in any spelling.

Most checks go through one real server (a subprocess on a free loopback port) whose launches are all
refused before any child starts, so the module trains nothing; the argument list a launch would give
its child is checked by parsing it with the CLI's own parser.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hpsearch.cli import build_parser
from hpsearch.errors import UsageError

from tests.serve_support import Server, populate, running_server

#: The body limit of the module's server: small, so a test body over it stays small too.
BODY_LIMIT = 8192
#: Options of ``hpsearch run`` that a value must never turn into (each was reached through the API).
DANGEROUS = ("--storage=sqlite:///{tmp}/elsewhere.db", "--dask=tcp://127.0.0.1:9",
             "--checkpoint-dir={tmp}/out", "--in-process", "-h")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp_path = tmp_path_factory.mktemp("serve-security")
    db_url = f"sqlite:///{tmp_path / 'hp.db'}"
    populate(db_url, tmp_path / "models")
    _named_study(db_url, "team/a")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (tmp_path / "secret.yaml").write_text("password: hunter2-not-for-you\n")
    (data_dir / "leak.yaml").symlink_to(tmp_path / "secret.yaml")
    limits = {"HPSEARCH_MAX_REQUEST_BYTES": str(BODY_LIMIT), "HPSEARCH_MAX_WORKERS": "4"}
    with running_server(tmp_path, db_url, "--data-dir", str(data_dir), env=limits) as served:
        yield served, tmp_path


def _named_study(db_url: str, name: str) -> None:
    """A study the CLI may create but a launch may not name (``a/b``), written through the storage API."""
    from hpsearch.storage import open_storage

    storage = open_storage(db_url)
    study = storage.create_study(
        name, engine="optuna", algorithm="tpe", objective="val_accuracy", direction="maximize", space={},
        dataset={"kind": "builtin", "source": "iris", "fingerprint": "f" * 64}, settings={"seed": 0},
        versions={})
    from hpsearch.storage import TrialState

    trial = storage.start_trial(study.id, {"n_neurons": 4}, worker="test-host:1")
    storage.finish_trial(trial.id, TrialState.COMPLETE, value=0.5, metrics={"val_accuracy": 0.5})
    storage.close()


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    return message


def _nothing_launched(api: httpx.Client, tmp_path: Path) -> None:
    names = {row["name"] for row in api.get("/api/studies").json()}
    assert names == {"iris-optuna", "iris-sklearn", "iris-keras-tuner", "team/a"}
    assert not (tmp_path / "elsewhere.db").exists() and not (tmp_path / "out").exists()


# -- 1. option injection ----------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["preset", "data", "target", "sample_weight", "warm_start", "algorithm",
                                   "study", "engine", "pruner"])
def test_a_value_that_looks_like_an_option_is_refused(server: tuple[Server, Path], field: str) -> None:
    served, tmp_path = server
    with served.client() as api:
        for value in DANGEROUS:
            message = _error(api.post("/api/studies", json={field: value.format(tmp=tmp_path)}), 400)
            assert message.startswith(f"{field} must "), message
        _nothing_launched(api, tmp_path)


def test_resume_fields_are_typed_values(server: tuple[Server, Path]) -> None:
    served, tmp_path = server
    with served.client() as api:
        for body, wanted in [({"trials": "--storage=x"}, "trials must be an integer"),
                             ({"timeout": "1 --dask=x"}, "timeout must be a number"),
                             ({"workers": 5}, "workers asks for 5 worker processes, over the limit of 4"),
                             ({"study": "x"}, "unknown field 'study'")]:
            assert wanted in _error(api.post("/api/studies/iris-optuna/resume", json=body), 400)
        _nothing_launched(api, tmp_path)


def test_preset_files_outside_the_data_dir_are_not_read_nor_told_apart(server: tuple[Server, Path]) -> None:
    served, tmp_path = server
    with served.client() as api:
        answers = {}
        for preset in (str(tmp_path / "secret.yaml"), str(tmp_path / "missing.yaml"), "../secret.yaml",
                       "../missing.yaml", "leak.yaml", "/etc/passwd"):
            message = _error(api.post("/api/studies", json={"study": "x", "preset": preset}), 400)
            assert "hunter2" not in message and "root:" not in message
            answers[preset] = message.replace(repr(preset), "P")
        # The same sentence whether the file outside exists or not, so a request cannot probe for files.
        assert len(set(answers.values())) == 1, answers
        assert "not a bundled preset" in answers["leak.yaml"]
        _nothing_launched(api, tmp_path)


def test_data_outside_the_data_dir_is_told_apart_only_by_the_path(server: tuple[Server, Path]) -> None:
    served, tmp_path = server
    with served.client() as api:
        exists = _error(api.post("/api/studies", json={"data": "../secret.yaml"}), 400)
        missing = _error(api.post("/api/studies", json={"data": "../missing.yaml"}), 400)
        assert exists.replace("secret", "X") == missing.replace("missing", "X")


def test_the_child_gets_options_as_values() -> None:
    """Even values the field rules let through reach ``hpsearch run`` as the values they are."""
    from hpsearch.service.launch_fields import LaunchRequest, ResumeRequest, resume_arguments, run_arguments

    request = LaunchRequest.parse({"target": "a --storage=x", "sample_weight": "w=1", "algorithm": "tpe",
                                   "warm_start": "s1,s2", "timeout": 1.5e-3, "seed": 2**32 - 1, "workers": 2})
    args = run_arguments(request, study="s", space="-looks-like-an-option.yaml", data="iris")
    options = [arg for arg in args[1:-2] if arg != "--quiet"]
    assert args[-2] == "--" and all(arg.startswith("--") and "=" in arg for arg in options)
    parsed = build_parser().parse_args(args)
    assert (parsed.target, parsed.sample_weight, parsed.warm_start) == ("a --storage=x", "w=1", "s1,s2")
    assert parsed.space == "-looks-like-an-option.yaml"
    assert (parsed.timeout, parsed.seed, parsed.workers) == (1.5e-3, 2**32 - 1, 2)
    assert parsed.storage is None and parsed.dask is None and parsed.checkpoint_dir is None
    resumed = build_parser().parse_args(resume_arguments(ResumeRequest.parse({"trials": 3}), "-odd name"))
    assert (resumed.study, resumed.trials, resumed.storage) == ("-odd name", 3, None)


@pytest.mark.parametrize("body, wanted", [
    ({"seed": 2**32}, "seed must be at most 4294967295"),
    ({"seed": -1}, "seed must be at least 0"),
    ({"seed": True}, "seed must be an integer"),
    ({"trials": 3.0}, "trials must be an integer"),
    ({"timeout": 0}, "timeout must be greater than 0"),
    ({"cv": 1}, "cv must be at least 2"),
    ({"task": "auto\n"}, "task must not hold control characters"),
    ({"space": "a: 1", "preset": "default"}, "either space"),
    ({"epochs": 3}, "unknown field 'epochs'"),
    ({"warm_start": "a,,b"}, "warm_start must name studies"),
])
def test_fields_are_checked_one_by_one(body: dict, wanted: str) -> None:
    from hpsearch.service.launch_fields import LaunchRequest, RequestError

    with pytest.raises(RequestError, match=wanted):
        LaunchRequest.parse(body)
    assert issubclass(RequestError, UsageError)


# -- 2. limits ---------------------------------------------------------------------------------------

def test_a_body_over_the_limit_is_refused_413(server: tuple[Server, Path]) -> None:
    served, tmp_path = server
    big = json.dumps({"space": "#" * (BODY_LIMIT * 4)}).encode()
    with served.client() as api:
        sent = api.post("/api/studies", content=big, headers={"Content-Type": "application/json"})
        message = _error(sent, 413)
        assert f"over the limit of {BODY_LIMIT}" in message and "HPSEARCH_MAX_REQUEST_BYTES" in message

        def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes are counted as they come
            yield b'{"space": "'
            for _ in range(8):
                yield b"#" * 4096
            yield b'"}'

        chunked = api.post("/api/studies", content=chunks(), headers={"Content-Type": "application/json"})
        assert "HPSEARCH_MAX_REQUEST_BYTES" in _error(chunked, 413)
        _nothing_launched(api, tmp_path)


def test_workers_and_trials_over_their_limits_are_refused(server: tuple[Server, Path]) -> None:
    served, tmp_path = server
    with served.client() as api:
        message = _error(api.post("/api/studies", json={"workers": 5}), 400)
        assert "over the limit of 4; set HPSEARCH_MAX_WORKERS to raise it" in message
        message = _error(api.post("/api/studies", json={"trials": 10**7}), 400)
        assert "over the limit of 1000000; set HPSEARCH_MAX_TRIALS" in message
        assert "seed must be at most" in _error(api.post("/api/studies", json={"seed": 2**40}), 400)
        _nothing_launched(api, tmp_path)


# -- 3. credentials -----------------------------------------------------------------------------------

def test_password_masked_whatever_its_percent_encoding() -> None:
    from hpsearch.service.app import password_mask

    # quote() writes "%2F" and "%40"; a user may have typed lower-case hex, or "+" for a space.
    url = "postgresql://me:p%40ss%2fw0rd+x@db.example/hp"
    mask = password_mask(url)
    for shown in (url, "p@ss/w0rd x", "p%40ss%2Fw0rd%20x", "p%40ss%2fw0rd+x", "p%2540ss"):
        assert "w0rd" not in mask(f"cannot reach {shown}: refused"), shown
    other = "mysql+pymysql://u:other-secret@h/db"
    assert "other-secret" not in mask(f"also {other}")


def test_postgresql_password_oddly_encoded_never_shown(tmp_path: Path) -> None:
    url = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("HPSEARCH_TEST_POSTGRES=0 declined the PostgreSQL server")
    from sqlalchemy.engine import make_url

    # Lower-case hex where quote() writes upper case: the old mask missed exactly this spelling.
    encoded = "s3cr%2ft-p%40ss"
    parsed = make_url(url)
    user = parsed.username or "postgres"
    spelled = f"{parsed.drivername}://{user}:{encoded}@{parsed.host}:{parsed.port}/{parsed.database}"
    with running_server(tmp_path, spelled) as served, served.client() as api:
        answers = [api.get("/api/health"), api.get("/api/studies/nope"), api.get("/api/compare?study=nope"),
                   api.post("/api/studies/nope/resume", json={})]
        for answer in answers:
            assert "s3cr" not in answer.text and "p%40ss" not in answer.text and "p@ss" not in answer.text
    assert "s3cr" not in served.output()


# -- 4. names, numbers, bodies ------------------------------------------------------------------------

def test_a_study_name_with_a_trailing_newline_is_refused(server: tuple[Server, Path]) -> None:
    served, tmp_path = server
    with served.client() as api:
        message = _error(api.post("/api/studies", json={"study": "fine-name\n", "preset": "default"}), 400)
        assert message.startswith("study must not hold control characters")
        _nothing_launched(api, tmp_path)


def test_a_study_named_with_a_slash_is_reachable(server: tuple[Server, Path]) -> None:
    served, _ = server
    with served.client() as api:
        study = api.get("/api/studies/team%2Fa")
        assert study.status_code == 200, study.text
        assert study.json()["name"] == "team/a"
        trials = api.get("/api/studies/team%2Fa/trials").json()
        assert trials["study"] == "team/a" and trials["total"] == 1
        assert api.get("/api/studies/team%2Fa/trials/0").json()["value"] == 0.5
        assert api.get("/api/studies/team%2Fa/best").json()["value"] == 0.5
        assert api.get("/api/studies/team%2Fa/history").status_code == 200
        assert api.get("/api/studies/team%2Fa/models").json() == []
        assert "is not running" in _error(api.post("/api/studies/team%2Fa/stop", json={}), 409)
        assert api.get("/studies/team%2Fa").status_code == 200
        assert "no study 'team/b'" in _error(api.get("/api/studies/team%2Fb"), 404)


def test_nul_bytes_and_huge_numbers_get_4xx(server: tuple[Server, Path]) -> None:
    served, _ = server
    with served.client() as api:
        assert "control characters" in _error(api.post("/api/studies", json={"data": "a\x00b.csv"}), 400)
        assert "control characters" in _error(api.get("/api/studies/a%00b"), 400)
        assert "control characters" in _error(api.get("/api/compare", params={"study": "a\x00"}), 400)
        assert "at most" in _error(api.get("/api/studies/iris-optuna/trials/" + "1" + "0" * 21), 404)
        assert "at most" in _error(api.get("/api/studies/iris-optuna/models/" + "9" * 30), 404)
        deep = b"[" * 3000 + b"]" * 3000  # deeper than the parser's recursion, under the body limit
        assert "nests too deeply" in _error(
            api.post("/api/studies", content=deep, headers={"Content-Type": "application/json"}), 400)


def test_the_bundled_imbalanced_data_is_accepted(tmp_path: Path) -> None:
    from hpsearch.service.launcher import Launcher

    launcher = Launcher(None, data_dir=None, mask=str, workdir=tmp_path)  # type: ignore[arg-type]
    assert launcher.resolve_data("imbalanced") == "imbalanced"
    assert launcher.resolve_data("iris") == "iris"
    with pytest.raises(UsageError, match="bundled dataset"):
        launcher.resolve_data("nope.csv")
