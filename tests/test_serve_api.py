"""``hpsearch serve``'s JSON API over HTTP, against a real server process on a free loopback port."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hpsearch.service.app import password_mask

from tests.conftest import hpsearch_command
from tests.serve_support import (
    FAKE_STUDIES,
    free_port,
    launch_body,
    populate,
    running_server,
    studies_named,
    wait_json,
)

TOKEN = "test-token-0123456789abcdef"


def _mapped_libraries(pid: int) -> str:
    """The files a process has mapped: an imported TensorFlow shows as its shared libraries."""
    return Path(f"/proc/{pid}/maps").read_text()


def _cli_json(db_url: str, *args: str) -> object:
    from hpsearch.cli import main

    out, err = io.StringIO(), io.StringIO()
    assert main([*args, "--storage", db_url, "--json"], out=out, err=err) == 0, err.getvalue()
    return json.loads(out.getvalue())


@pytest.mark.slow
@pytest.mark.xdist_group("serve-api")
def test_launch_watch_stop_resume_best_compare(tmp_path: Path, db_url: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with running_server(tmp_path, db_url, "--data-dir", str(data_dir)) as server, server.client() as api:
        # Launch: a study that would run long (stopped below), and a short one of another engine.
        launched = api.post("/api/studies", json=launch_body("api-optuna", trials=40, pruner="none"))
        assert launched.status_code == 202, launched.text
        assert launched.json()["running"] is True
        # The storage reaches the child through its environment, never its command line.
        cmdline = Path(f"/proc/{launched.json()['pid']}/cmdline").read_bytes().decode()
        assert "hp.db" not in cmdline and "run" in cmdline
        again = api.post("/api/studies", json=launch_body("api-optuna"))
        assert again.status_code == 409 and "already running" in again.json()["error"]
        other = api.post("/api/studies", json=launch_body("api-keras-tuner", engine="keras-tuner", trials=2))
        assert other.status_code == 202, other.text

        # Watch it run.
        study = wait_json(api, "/api/studies/api-optuna", lambda s: s["states"]["COMPLETE"] >= 2)
        assert study["run"]["running"] and study["run"]["launched_here"]
        assert study["engine"] == "optuna" and study["algorithm"] == "random"
        assert study["space"]["params"]["n_neurons"] == {"type": "int", "low": 4, "high": 16}
        assert "150 rows" in study["dataset"]["summary"]

        # Stop, as Ctrl-C: the run ends with 130, nothing stays RUNNING, an interrupted trial is resumable.
        stopped = api.post("/api/studies/api-optuna/stop", json={})
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["stopped"] is True and stopped.json()["exit_code"] == 130
        after_stop = api.get("/api/studies/api-optuna").json()
        assert after_stop["run"]["last_launch"]["exit_code"] == 130
        assert after_stop["run"]["running"] is False and after_stop["states"]["RUNNING"] == 0
        failed = api.get("/api/studies/api-optuna/trials", params={"state": "failed"}).json()["trials"]
        assert [t["number"] for t in failed if t["interrupted"]] == stopped.json()["interrupted_trials"]
        assert api.post("/api/studies/api-optuna/stop", json={}).status_code == 409

        wait_json(api, "/api/studies/api-keras-tuner", lambda s: not s["run"]["running"])
        final = api.get("/api/studies/api-optuna").json()

        # Read: trials with the CLI's filters, sorting and paging; one trial with its curves; best.
        page = api.get("/api/studies/api-optuna/trials",
                       params={"state": "complete", "sort": "value", "desc": "true", "limit": 2, "offset": 1})
        assert page.status_code == 200
        body = page.json()
        everything = api.get("/api/studies/api-optuna/trials",
                             params={"state": "complete", "sort": "value", "desc": "true"}).json()
        assert body["total"] == final["states"]["COMPLETE"] == len(everything["trials"])
        assert body["trials"] == everything["trials"][1:3]
        one = api.get(f"/api/studies/api-optuna/trials/{everything['trials'][0]['number']}").json()
        assert len(one["curves"]["val_accuracy"]) == one["epochs_run"] == 3
        best = api.get("/api/studies/api-optuna/best", params={"top": 2, "curves": "true"}).json()
        assert best["value"] == everything["trials"][0]["value"] == final["best_value"]
        assert len(best["top"]) == 2 and best["top"][0]["objective_curve"][-1] is not None

        # The API and the CLI agree: same listing, same best.
        cli_studies = {row["name"]: row for row in _cli_json(db_url, "studies")}
        for row in api.get("/api/studies").json():
            row.pop("run")
            assert row == cli_studies[row["name"]]
        cli_best = _cli_json(db_url, "best", "api-optuna", "--top", "2")
        api_best = api.get("/api/studies/api-optuna/best", params={"top": 2}).json()
        assert {k: v for k, v in api_best.items() if k != "models"} == {
            k: v for k, v in cli_best.items() if k != "models"}

        # Compare: two engines side by side, with their histories at equal epochs and seconds.
        compared = api.get("/api/compare", params=[("study", "api-optuna"), ("study", "api-keras-tuner")])
        assert compared.status_code == 200, compared.text
        result = compared.json()
        assert [row["engine"] for row in result["studies"]] == ["optuna", "keras-tuner"]
        assert {h["study"] for h in result["histories"]} == {"api-optuna", "api-keras-tuner"}
        assert set(result["equal_budget"]) == {"epochs", "seconds"}

        # The server process never loaded TensorFlow, though it launched and read training runs.
        assert "tensorflow" not in _mapped_libraries(server.process.pid).lower()

        # Resume; a second resume while it runs is refused; it trains new trials.
        resumed = api.post("/api/studies/api-optuna/resume", json={"trials": 60})
        assert resumed.status_code == 202, resumed.text
        assert api.post("/api/studies/api-optuna/resume", json={}).status_code == 409
        done = final["states"]["COMPLETE"]
        wait_json(api, "/api/studies/api-optuna",
                  lambda s: s["states"]["COMPLETE"] > done and s["states"]["RUNNING"] >= 1)
        child = resumed.json()["pid"]
    # SIGTERM (leaving the block) while the resumed study runs: the server stops cleanly and
    # interrupts the study it launched.
    assert server.process.returncode == 0, server.output()
    assert "stopped study 'api-optuna'" in server.output()
    assert not Path(f"/proc/{child}").exists(), "the launched run outlived the server"
    rows = _cli_json(db_url, "trials", "api-optuna")
    assert not [row for row in rows if row["state"] == "RUNNING"]


@pytest.mark.xdist_group("serve-api")
def test_bad_input_gets_400_404_409(tmp_path: Path, db_url: str) -> None:
    populate(db_url, tmp_path / "models")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (tmp_path / "outside.csv").write_text("a,b\n1,2\n")
    (data_dir / "escape.csv").symlink_to(tmp_path / "outside.csv")
    with running_server(tmp_path, db_url, "--data-dir", str(data_dir)) as server, server.client() as api:
        def error(response: httpx.Response, status: int) -> str:
            assert response.status_code == status, response.text
            return response.json()["error"]

        assert "engine must be one of optuna, keras-tuner, sklearn" in error(
            api.post("/api/studies", json=launch_body("x", engine="nope")), 400)
        assert "`low` must be < `high`" in error(api.post("/api/studies", json={
            "study": "x", "data": "iris", "space": "params: {n_neurons: {type: int, low: 5, high: 2}}"}), 400)
        assert "not a bundled preset" in error(api.post("/api/studies", json={"preset": "nope"}), 400)
        assert "outside the server's --data-dir" in error(
            api.post("/api/studies", json={"data": "../outside.csv"}), 400)
        assert "outside the server's --data-dir" in error(
            api.post("/api/studies", json={"data": "escape.csv"}), 400)
        assert "absolute path" in error(api.post("/api/studies", json={"data": str(tmp_path / "x.csv")}), 400)
        assert "trials must be an integer" in error(api.post("/api/studies", json={"trials": "3"}), 400)
        assert "unknown field 'epochs'" in error(api.post("/api/studies", json={"epochs": 3}), 400)
        assert "must be JSON" in error(api.post("/api/studies", content=b"study=x"), 400)
        both = {"space": "a: 1", "preset": "default"}
        assert "either space" in error(api.post("/api/studies", json=both), 400)
        no_trials = launch_body("x", trials=0)
        assert "trials must be at least 1" in error(api.post("/api/studies", json=no_trials), 400)
        assert "limit must be between" in error(api.get("/api/studies/iris-optuna/trials?limit=0"), 400)
        assert "--state must be one of" in error(api.get("/api/studies/iris-optuna/trials?state=done"), 400)

        assert "no study 'nope'" in error(api.get("/api/studies/nope"), 404)
        assert "existing studies: " in error(api.get("/api/studies/nope/trials"), 404)
        assert error(api.get("/api/studies/nope/best"), 404)
        assert error(api.post("/api/studies/nope/stop", json={}), 404)
        assert error(api.post("/api/studies/nope/resume", json={}), 404)
        assert "no study 'nope'" in error(api.get("/api/compare?study=iris-optuna&study=nope"), 404)
        assert "has no trial 99" in error(api.get("/api/studies/iris-optuna/trials/99"), 404)
        assert "no retrained model 999" in error(api.get("/api/studies/iris-optuna/models/999"), 404)
        assert error(api.get("/api/nothing-here"), 404)

        assert "already exists" in error(api.post("/api/studies", json=launch_body("iris-sklearn")), 409)
        assert "is not running" in error(api.post("/api/studies/iris-sklearn/stop", json={}), 409)

        # Reads of the populated store: the known best values and the model's files.
        rows = studies_named(api.get("/api/studies").json())
        assert set(rows) == set(FAKE_STUDIES)
        assert rows["iris-optuna"]["best_value"] == 0.9 and rows["iris-optuna"]["states"]["FAILED"] == 1
        models = api.get("/api/studies/iris-optuna/models").json()
        assert models[0]["test_metrics"] == {"accuracy": 0.9333, "loss": 0.21}
        download = api.get(f"/api/studies/iris-optuna/models/{models[0]['id']}/model.keras")
        assert download.status_code == 200 and download.content.startswith(b"PK")
        card = api.get(f"/api/studies/iris-optuna/models/{models[0]['id']}/model.json").json()
        assert card["trial"] == 3

        document = api.get("/api/openapi.json").json()
        assert document["openapi"].startswith("3.")


def test_openapi_describes_every_route() -> None:
    from hpsearch.service.api import routes
    from hpsearch.service.openapi import openapi_document

    served = {route.path.replace(":int", "").replace(":str", "") for route in routes(None)}  # type: ignore[arg-type]
    assert served == set(openapi_document()["paths"])


@pytest.mark.xdist_group("serve-api")
def test_non_loopback_host_needs_the_token(tmp_path: Path, db_url: str) -> None:
    command = hpsearch_command("serve", "--storage", db_url, "--host", "0.0.0.0", "--port", str(free_port()))
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "HPSEARCH_TOKEN": ""})
    assert refused.returncode == 2
    assert "--host 0.0.0.0 is reachable from other machines, so it needs a token" in refused.stderr
    short = subprocess.run(hpsearch_command("serve", "--storage", db_url, "--token", "short"),
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "at least 16 characters" in short.stderr

    # Bound to every interface, with the token from the environment; reached through loopback.
    with running_server(tmp_path, db_url, host="0.0.0.0", token=TOKEN,
                        env={"HPSEARCH_TOKEN": TOKEN}) as server:
        assert httpx.get(f"{server.url}/api/studies").status_code == 401
        assert httpx.get(f"{server.url}/").status_code == 401
        wrong = httpx.get(f"{server.url}/api/studies",
                          headers={"Authorization": "Bearer " + "x" * len(TOKEN)})
        assert wrong.status_code == 401 and "token" in wrong.json()["error"]
        assert httpx.post(f"{server.url}/api/studies", json={}).status_code == 401
        ok = httpx.get(f"{server.url}/api/studies", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json() == []
        # A page opened once with ?token= keeps it in a cookie and drops it from the address.
        with httpx.Client(base_url=server.url) as browser:
            first = browser.get(f"/?token={TOKEN}")
            assert first.status_code == 303 and first.headers["location"] == "/"
            assert browser.get("/").status_code == 200
            assert browser.get("/api/studies").status_code == 200
    assert TOKEN not in server.output()

    # On loopback, a Host header naming another site is refused (DNS rebinding).
    with running_server(tmp_path, db_url) as server:
        assert httpx.get(f"{server.url}/api/studies", headers={"Host": "evil.example"}).status_code == 400
        assert httpx.get(f"{server.url}/api/studies").status_code == 200


def test_postgresql_password_never_shown(tmp_path: Path) -> None:
    url = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("HPSEARCH_TEST_POSTGRES=0 declined the PostgreSQL server")
    from sqlalchemy.engine import make_url

    # The test server trusts loopback connections, so any password is accepted and must never show.
    secret = "pw-Sh0uld-N3ver-Show"
    with_password = make_url(url).set(password=secret).render_as_string(hide_password=False)
    with running_server(tmp_path, with_password) as server, server.client() as api:
        answers = [api.get("/api/health"), api.get("/api/studies/nope"),
                   api.get("/api/compare?study=nope"), api.post("/api/studies/nope/stop", json={})]
        for answer in answers:
            assert secret not in answer.text
        assert "***" in api.get("/api/compare?study=nope").json()["error"]
        page = api.get("/")
        assert page.status_code == 200 and secret not in page.text
    assert secret not in server.output()


def test_password_mask_hides_raw_and_quoted_forms() -> None:
    mask = password_mask("postgresql://me:p%40ss%2Fw0rd@db.example/hp")
    assert mask("postgresql://me:p%40ss%2Fw0rd@db.example/hp, p@ss/w0rd") == (
        "postgresql://me:***@db.example/hp, ***")
    assert password_mask("sqlite:///hp.db")("sqlite:///hp.db") == "sqlite:///hp.db"


def test_help_imports_neither_the_server_nor_tensorflow() -> None:
    check = ("import io, sys\n"
             "from hpsearch.cli import main\n"
             "assert main(['--help'], out=io.StringIO()) == 0\n"
             "loaded = [m for m in ('starlette', 'uvicorn', 'tensorflow') if m in sys.modules]\n"
             "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
