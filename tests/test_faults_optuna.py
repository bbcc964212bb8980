"""Faults users rely on hpsearch to survive: kill -9, Ctrl-C, diverging and failing trials."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.conftest import hpsearch_command, query, spawn_hpsearch, wait_for
from tests.helpers import SLOW_SPACE, assert_budget_reached_cleanly, trial_rows

pytestmark = pytest.mark.slow

def _trials(db) -> list[tuple]:
    return trial_rows(db, "value", "ended_at")


def _mid_trial(db, completed: int) -> bool:
    rows = query(db, "SELECT t.state, t.epochs_run FROM hp_trials t")
    done = sum(1 for state, _ in rows if state == "COMPLETE")
    return done >= completed and any(state == "RUNNING" and epochs >= 1 for state, epochs in rows)


def _assert_budget_reached_cleanly(db, budget: int) -> list[tuple]:
    # Optuna's own table agrees: nothing left running there either.
    return assert_budget_reached_cleanly(_trials(db), budget, optuna_db=db)


def test_kill_9_mid_trial_then_resume_reaches_budget(tmp_path):
    space = tmp_path / "slow.yaml"
    space.write_text(SLOW_SPACE)
    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    process = spawn_hpsearch("run", space, "--data", "digits", "--trials", "5", "--study", "k",
                             "--storage", url, "--quiet", "--pruner", "none", cwd=tmp_path)
    try:
        wait_for(lambda: _mid_trial(db, completed=2))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = _trials(db)
    killed = [row for row in before if row[1] == "RUNNING"]
    assert len(killed) == 1
    completed_before = {row[0]: row for row in before if row[1] == "COMPLETE"}

    resumed = subprocess.run(hpsearch_command("resume", "k", "--storage", url, "--quiet"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "marked 1 interrupted trial(s) as FAILED" in resumed.stdout

    rows = _assert_budget_reached_cleanly(db, budget=5)
    by_number = {row[0]: row for row in rows}
    number = killed[0][0]
    assert by_number[number][1] == "FAILED" and by_number[number][2]
    retries = [row for row in rows if row[3] == number]
    assert len(retries) == 1, "the interrupted config is retried exactly once"
    assert json.loads(retries[0][4]) == json.loads(killed[0][4])
    for completed_number, row in completed_before.items():
        assert by_number[completed_number] == row, "completed trials are kept as they were"


def test_ctrl_c_marks_trial_and_prints_resume_command(tmp_path):
    space = tmp_path / "slow.yaml"
    # 40 epochs: the store sees a trial's first epochs only when the recorder's first batch lands (about
    # a second in), and Ctrl-C must still find that trial running.
    space.write_text(SLOW_SPACE.replace("epochs: 12", "epochs: 40"))
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    process = spawn_hpsearch("run", space, "--data", "digits", "--trials", "2", "--study", "c",
                             "--storage", url, "--quiet", "--pruner", "none", cwd=tmp_path)
    wait_for(lambda: _mid_trial(db, completed=1))
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"resume with: hpsearch resume c --storage {url}" in err
    assert "Traceback" not in err
    rows = _trials(db)
    assert not [row for row in rows if row[1] == "RUNNING"]
    interrupted = [row for row in rows if row[2]]
    assert len(interrupted) == 1 and interrupted[0][1] == "FAILED", (rows, err)

    resumed = subprocess.run(hpsearch_command("resume", "c", "--storage", url, "--quiet"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    rows = _assert_budget_reached_cleanly(db, budget=2)
    assert [row[3] for row in rows].count(interrupted[0][0]) == 1


DIVERGING_SPACE = """\
objective: val_loss
params:
  n_neurons: {type: int, low: 4, high: 8}
fixed: {n_hidden: 1, epochs: 3, optimizer: sgd, learning_rate: 1.0e+8}
"""


def test_every_trial_diverging_fails_the_search_with_one_message(cli, tmp_path):
    space = tmp_path / "nan.yaml"
    space.write_text(DIVERGING_SPACE)
    result = cli("run", space, "--data", "diabetes", "--trials", "3", "--study", "n", "--quiet",
                 "--in-process")
    assert result.code == 1
    assert result.err.count("\n") == 1 and result.err.startswith("error: every trial failed (3 of 3)")
    assert "loss became" in result.err
    trials = json.loads(cli("trials", "n", "--json").out)
    assert [t["state"] for t in trials] == ["FAILED"] * 3
    assert all("loss became" in t["error"] for t in trials)
    best = cli("best", "n")
    assert best.code == 1 and "no completed trial" in best.err


def test_consecutive_failures_stop_the_search_early(cli, tmp_path):
    space = tmp_path / "nan.yaml"
    space.write_text(DIVERGING_SPACE)
    result = cli("run", space, "--data", "diabetes", "--trials", "20", "--max-failures", "2", "--study", "m",
                 "--quiet", "--in-process")
    assert result.code == 1
    assert "stopped after 2 consecutive failed trials" in result.err
    assert len(json.loads(cli("trials", "m", "--json").out)) == 2


def test_nan_trial_fails_but_search_continues_and_is_never_best(cli, tmp_path):
    space = tmp_path / "mixed.yaml"
    space.write_text(
        "objective: val_loss\n"
        "params:\n"
        "  learning_rate: {type: categorical, choices: [1.0e+8, 3.0e-3]}\n"
        "fixed: {n_hidden: 1, n_neurons: 8, epochs: 2, optimizer: sgd}\n"
    )
    result = cli("run", space, "--algorithm", "grid", "--data", "diabetes", "--trials", "2", "--study", "g",
                 "--quiet", "--in-process")
    assert result.code == 0, result.err
    trials = {t["params"]["learning_rate"]: t for t in json.loads(cli("trials", "g", "--json").out)}
    diverged, sane = trials[1.0e8], trials[3.0e-3]
    assert diverged["state"] == "FAILED" and "loss became" in diverged["error"]
    assert sane["state"] == "COMPLETE"
    # The diverged trial carries no value at all, so no reader can rank it: not the run's summary, not a
    # sort by value (which puts missing values last), not compare, not best.
    assert diverged["value"] is None
    assert f"best trial #{sane['number']}:" in result.out
    by_value = json.loads(cli("trials", "g", "--sort", "value", "--json").out)
    assert [t["number"] for t in by_value] == [sane["number"], diverged["number"]]
    assert json.loads(cli("compare", "g", "--json").out)[0]["best_value"] == sane["value"]
    assert json.loads(cli("best", "g", "--json").out)["params"]["learning_rate"] == 3.0e-3


def test_optuna_tables_created_by_another_study_at_the_same_moment(tmp_path, monkeypatch):
    """Two studies started together on a fresh database: Optuna checks for its tables, the other process
    creates them, and Optuna's CREATE TABLE then fails. hpsearch opens the storage again instead of
    failing the whole run with "table studies already exists"."""
    import optuna
    from hpsearch.engines.optuna.engine import open_optuna_storage
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect
    from sqlalchemy.exc import OperationalError

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    optuna.storages.RDBStorage(url)  # the other process, a moment earlier
    real_has_table = SQLiteDialect.has_table
    stale_checks = []

    def has_table_checked_before_the_other_created_it(self, connection, table_name, *args, **kwargs):
        if table_name == "studies" and not stale_checks:
            stale_checks.append(table_name)
            return False
        return real_has_table(self, connection, table_name, *args, **kwargs)

    monkeypatch.setattr(SQLiteDialect, "has_table", has_table_checked_before_the_other_created_it)
    with pytest.raises(OperationalError, match="already exists"):
        optuna.storages.RDBStorage(url)  # the race, as Optuna alone meets it

    stale_checks.clear()
    storage = open_optuna_storage(lambda: optuna.storages.RDBStorage(url))
    assert stale_checks == ["studies"], "the first attempt must have met the race"
    study = optuna.create_study(study_name="after-the-race", storage=storage)
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == [study.study_name]


def test_optuna_connections_flush_sqlite_at_checkpoints_not_every_commit(tmp_path):
    """Optuna commits every reported epoch. With SQLite's default (synchronous=FULL) each of those commits
    waited for a disk flush while holding the database's one write lock (two flushes per epoch measured
    with strace: 153 fsyncs for 6 ten-epoch trials, 27 with NORMAL). Optuna's connections get the
    ``synchronous=NORMAL`` of hpsearch's own: a killed process still loses nothing committed."""
    from types import SimpleNamespace

    from hpsearch.engines.optuna.engine import OptunaEngine
    from hpsearch.storage.locator import StoreLocation

    url = f"sqlite:///{tmp_path / 'sync.db'}"
    store = SimpleNamespace(url=url, location=StoreLocation.parse(url))
    storage = OptunaEngine()._storage(SimpleNamespace(storage=store))
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (FULL is 2)
