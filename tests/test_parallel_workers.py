"""K workers of one study: new work each, exactly the budget, liveness by heartbeat, the database's trouble
kept apart from the configuration's, and no password anywhere a user or another user could read it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import hpsearch_command, pause_worker_mid_trial, query, spawn_hpsearch, wait_for
from tests.helpers import run_hpsearch, trial_rows, write_space

pytestmark = pytest.mark.slow

#: A continuous learning rate: two proposals coincide only if two workers draw the same random numbers.
CONTINUOUS_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 16}
  learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 2, batch_size: 64}
"""

#: Trials of a few seconds, so a test can catch one in the middle of training.
LONG_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 8, high: 32}
  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 25, batch_size: 32}
"""


def _trials(db: Path) -> list[tuple]:
    return trial_rows(db, "worker", "error", "epochs_run", "id")


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_two_workers_train_different_configurations_and_stop_at_the_budget(tmp_path, algorithm):
    db = tmp_path / "p.db"
    done = run_hpsearch(tmp_path, "run", write_space(tmp_path, CONTINUOUS_SPACE), "--data", "iris",
                        "--trials", "8", "--algorithm", algorithm, "--pruner", "none", "--study", "p",
                        "--storage", db, "--quiet", "--workers", "2")
    assert "locked" not in done.stderr
    rows = _trials(db)
    assert [row[0] for row in rows] == list(range(8)), "exactly the budget, numbered without gaps"
    assert {row[1] for row in rows} == {"COMPLETE"}
    configs = [json.dumps(json.loads(row[4]), sort_keys=True) for row in rows]
    assert len(set(configs)) == 8, "two workers never train one configuration twice"
    assert len({row[5] for row in rows}) == 2, "both workers trained"
    # The samplers drew different configurations: none had to be refused as a repeat. (A worker that lost
    # the race for the last trial of the budget leaves one Optuna trial marked as not trained.)
    not_trained = query(db, "SELECT value_json FROM trial_user_attributes WHERE key = 'hp_not_trained'")
    assert not [value for (value,) in not_trained if "same configuration" in value]
    optuna_states = query(db, "SELECT state, COUNT(*) FROM trials GROUP BY state")
    assert dict(optuna_states)["COMPLETE"] == 8
    assert sum(count for _, count in optuna_states) == 8 + len(not_trained)


def test_a_paused_worker_loses_its_trial_and_its_late_result_is_refused(tmp_path):
    db = tmp_path / "s.db"
    process = spawn_hpsearch(
        "run", write_space(tmp_path, LONG_SPACE), "--data", "digits", "--trials", "5", "--algorithm",
        "random", "--pruner", "none", "--study", "s", "--storage", db, "--quiet", "--workers", "2",
        "--stale-after", "4", cwd=tmp_path,
    )
    running = "SELECT number, worker FROM hp_trials WHERE state = 'RUNNING' AND epochs_run >= 2"
    state = "SELECT state FROM hp_trials WHERE number = ?"
    paused: list[tuple[int, int]] = []
    wait_for(lambda: paused.append(pause_worker_mid_trial(db, running)) or paused[-1] is not None)
    number, pid = paused[-1]
    try:
        # Paused past the grace period: the trial is failed and another worker retries its configuration.
        wait_for(lambda: query(db, state, (number,)) == [("FAILED",)], timeout_s=60)
        retried = "SELECT COUNT(*) FROM hp_trials WHERE retry_of = ?"
        wait_for(lambda: query(db, retried, (number,))[0][0] == 1, timeout_s=120)
    finally:
        os.kill(pid, signal.SIGCONT)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    rows = _trials(db)
    paused = rows[number]
    assert paused[1] == "FAILED" and paused[2] == 1 and "no heartbeat" in paused[6]
    # Its worker went on training after SIGCONT, but nothing more was written to the failed trial.
    epochs = query(db, "SELECT COUNT(*) FROM hp_trial_epochs WHERE trial_id = ?", (paused[8],))[0][0]
    assert epochs == paused[7]
    assert f"late result of trial #{number}" in err
    retries = [row for row in rows if row[3] == number]
    assert len(retries) == 1 and retries[0][1] == "COMPLETE"
    assert json.loads(retries[0][4]) == json.loads(paused[4])
    counted = [row for row in rows if not row[2]]
    assert len(counted) == 5, "the study ends at its budget"
    assert not [row for row in rows if row[1] == "RUNNING"]
    configs = [json.dumps(json.loads(row[4]), sort_keys=True) for row in counted]
    assert len(set(configs)) == len(configs), "no configuration both retried and completed twice"


#: A ``sitecustomize`` module loaded by every Python process of the run (through PYTHONPATH): the first
#: worker to write an epoch batch after its first epoch stops itself (SIGSTOP) inside that write
#: transaction, holding SQLite's one write lock, as a worker paused by a user or a debugger at the wrong
#: moment would.
STOP_WHILE_WRITING = """\
import os
import signal

flag = os.environ.get("TEST_STOP_WHILE_WRITING")
if flag:
    from hpsearch.storage.repository import Storage

    original = Storage._add_epochs

    def _add_epochs(self, connection, trial_id, epochs):
        if max(epoch for epoch, _, _ in epochs) >= 1:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGSTOP)
        return original(self, connection, trial_id, epochs)

    Storage._add_epochs = _add_epochs
"""


def test_a_worker_stopped_while_it_writes_is_killed_so_the_study_goes_on(tmp_path):
    db = tmp_path / "w.db"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STOP_WHILE_WRITING)
    stopped = tmp_path / "stopped"
    # A 9 s busy timeout: the other worker's writes fail after 9 s of waiting; the stopped worker must be
    # gone before (a third of it, 3 s).
    env = {"PYTHONPATH": str(hook), "TEST_STOP_WHILE_WRITING": str(stopped),
           "HPSEARCH_SQLITE_BUSY_TIMEOUT_S": "9"}
    done = run_hpsearch(tmp_path, "run", write_space(tmp_path, LONG_SPACE), "--data", "digits",
                        "--trials", "4", "--algorithm", "random", "--pruner", "none", "--study", "w",
                        "--storage", db, "--workers", "2", check=False, env=env)
    assert stopped.exists(), "a worker stopped itself while writing"
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "locked" not in done.stderr.replace("stayed locked", "")
    rows = _trials(db)
    killed = [row for row in rows if row[2]]
    assert len(killed) == 1, rows
    number, error = killed[0][0], killed[0][6]
    assert "was stopped (SIGSTOP or a debugger) while the SQLite database stayed locked" in error
    assert f"trial #{number} marked FAILED and will be retried (up to 3 attempts in all)" in done.stderr
    retries = [row for row in rows if row[3] == number]
    assert len(retries) == 1 and retries[0][1] == "COMPLETE"
    counted = [row for row in rows if not row[2]]
    assert len(counted) == 4 and {row[1] for row in counted} == {"COMPLETE"}


def test_a_database_error_during_a_trial_is_not_the_trials_failure(tmp_path):
    db = tmp_path / "lock.db"
    env = {"HPSEARCH_SQLITE_BUSY_TIMEOUT_S": "1"}
    process = subprocess.Popen(
        hpsearch_command("run", write_space(tmp_path, LONG_SPACE), "--data", "digits", "--trials", "3",
                         "--pruner", "none", "--study", "lock", "--storage", db, "--quiet",
                         "--max-failures", "1"),
        cwd=tmp_path, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: query(db, "SELECT number FROM hp_trials WHERE state = 'RUNNING' AND epochs_run >= 1"))
    # Another program holds the write lock for longer than the busy timeout: the trial's next write fails.
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        _, err = process.communicate(timeout=20)
    finally:
        time.sleep(1)
        blocker.execute("ROLLBACK")
        blocker.close()
    assert process.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the database failed during trial #0 of study 'lock'"), last
    assert "locked" in last and "not counted as a failed trial" in last and "hpsearch resume lock" in last
    assert "Traceback" not in err

    resumed = run_hpsearch(tmp_path, "resume", "lock", "--storage", db, "--quiet", env=env)
    assert "retrying the configuration of trial(s) #0" in resumed.stdout
    rows = _trials(db)
    assert rows[0][1] == "FAILED" and rows[0][2] == 1, "interrupted, so retried and not counted"
    assert [row for row in rows if row[3] == 0][0][1] == "COMPLETE"
    assert len([row for row in rows if not row[2]]) == 3
    assert not [row for row in rows if row[1] == "FAILED" and not row[2]], "--max-failures 1 never tripped"


def _password_url(url: str, password: str) -> str:
    scheme, _, rest = url.partition("://")
    user, _, host = rest.partition("@")
    return f"{scheme}://{user}:{password}@{host}"


def test_a_storage_password_never_leaks(tmp_path):
    base = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("HPSEARCH_TEST_POSTGRES=0 declined the PostgreSQL server")
    import sqlalchemy

    secret = "Pw-4f1c-never-shown"
    url = _password_url(base, secret)  # the test server trusts loopback, so any password connects
    space = write_space(tmp_path, LONG_SPACE)
    outputs: list[str] = []
    process = spawn_hpsearch("run", space, "--data", "iris", "--trials", "3", "--study", "postgresql-pw",
                             "--storage", url, "--workers", "2", cwd=tmp_path)
    engine = sqlalchemy.create_engine(base)

    def running() -> int:
        try:
            with engine.connect() as connection:
                return connection.execute(sqlalchemy.text(
                    "SELECT COUNT(*) FROM hp_trials t JOIN hp_studies s ON s.id = t.study_id "
                    "WHERE s.name = 'postgresql-pw' AND t.state = 'RUNNING'")).scalar_one()
        except sqlalchemy.exc.ProgrammingError:
            return 0

    wait_for(lambda: running() >= 1)
    worker_commands = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "hpsearch.worker" in command:
                worker_commands.append(command)
    assert worker_commands, "the run's workers were found"
    assert not [command for command in worker_commands if secret in command]
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    outputs += [out, err]

    model_dir = tmp_path / "model"
    for args in (("best", "postgresql-pw"), ("studies",), ("trials", "postgresql-pw", "--json"),
                 ("retrain", "postgresql-pw", "--epochs", "2", "--out", model_dir, "--quiet")):
        done = run_hpsearch(tmp_path, *args, "--storage", url)
        outputs += [done.stdout, done.stderr]
    resumed = run_hpsearch(tmp_path, "resume", "postgresql-pw", "--trials", "4", "--quiet",
                           env={"HPSEARCH_STORAGE": url})
    outputs += [resumed.stdout, resumed.stderr]
    unreachable = run_hpsearch(tmp_path, "studies", "--storage", url.replace(url.split("@")[1].split("/")[0],
                                                                      "127.0.0.1:9"), check=False)
    assert unreachable.returncode != 0
    outputs += [unreachable.stdout, unreachable.stderr]
    assert not [text for text in outputs if secret in text]
    assert "***" in out, "the printed resume hint masks the password"
    files = [path for path in model_dir.rglob("*") if path.is_file()]
    assert files and not [path for path in files if secret.encode() in path.read_bytes()]

    with engine.connect() as connection:
        tables = connection.execute(sqlalchemy.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")).scalars().all()
        for table in tables:
            dumped = connection.execute(sqlalchemy.text(f'SELECT CAST(t AS text) FROM "{table}" t')).scalars()
            assert not [row for row in dumped if secret in row], table
    engine.dispose()
