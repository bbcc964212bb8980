"""Shared fixtures: the CLI run in-process against a fresh SQLite file, and small, fast spaces."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent

#: A space small enough that a trial trains in well under a second on two cores.
TINY_SPACE = """\
task: auto
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 16}
  learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  activation: {type: categorical, choices: [relu, tanh]}
fixed:
  n_hidden: 1
  epochs: 3
  batch_size: 64
"""


_POSTGRES_DIR: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Start a real PostgreSQL server for the session unless one is given or explicitly declined.

    ``HPSEARCH_TEST_POSTGRES_URL`` points at an existing server; ``HPSEARCH_TEST_POSTGRES=0`` skips the
    PostgreSQL cases (a quick local run). ``make test`` sets neither, so CI always runs them.
    """
    global _POSTGRES_DIR
    if os.environ.get("HPSEARCH_TEST_POSTGRES_URL") or os.environ.get("HPSEARCH_TEST_POSTGRES") == "0":
        return
    import tempfile

    _POSTGRES_DIR = tempfile.mkdtemp(prefix="hpsearch-pg-")
    started = subprocess.run(
        ["bash", str(REPO / "scripts" / "postgres.sh"), "start", _POSTGRES_DIR],
        capture_output=True, text=True,
    )
    if started.returncode != 0:
        raise pytest.UsageError(f"could not start the test PostgreSQL server: {started.stderr.strip()}")
    os.environ["HPSEARCH_TEST_POSTGRES_URL"] = started.stdout.strip().splitlines()[-1]
    # The URL is the script's own (the documented postgresql:// form), not one a developer gave.
    os.environ["HPSEARCH_TEST_POSTGRES_STARTED"] = "1"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _POSTGRES_DIR is not None:
        subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), "stop", _POSTGRES_DIR],
                       capture_output=True)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hp.db'}"


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch):
    """Run ``hpsearch ARGS`` in this process against the test's own database."""
    from hpsearch.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPSEARCH_STORAGE", db_url)

    def run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        code = main([str(arg) for arg in args], out=out, err=err)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def hpsearch_command(*args: str) -> list[str]:
    """The installed console script, as a user would type it."""
    script = Path(sys.executable).with_name("hpsearch")
    return [str(script), *map(str, args)]


def spawn_hpsearch(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        hpsearch_command(*args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def trials_by_config(cli, study: str) -> dict[str, dict]:
    """``hpsearch trials STUDY --json``, keyed by each trial's parameters (as sorted JSON): the same
    configuration in two studies has the same key."""
    trials = json.loads(cli("trials", study, "--json").out)
    return {json.dumps(t["params"], sort_keys=True): t for t in trials}


def curves_by_config(db_path: Path, study: str) -> dict[str, list[dict]]:
    """Each trial's stored epochs (metrics, in order) read from the database, keyed as
    ``trials_by_config``."""
    sql = ("SELECT t.params, e.metrics FROM hp_trials t JOIN hp_studies s ON s.id = t.study_id "
           "JOIN hp_trial_epochs e ON e.trial_id = t.id WHERE s.name = ? ORDER BY t.id, e.epoch")
    rows = query(db_path, sql, (study,))
    curves: dict[str, list[dict]] = {}
    for params, metrics in rows:
        curves.setdefault(json.dumps(json.loads(params), sort_keys=True), []).append(json.loads(metrics))
    return curves


def query(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read our tables with the sqlite3 module, independently of hpsearch's own code."""
    connection = sqlite3.connect(db_path, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def pause_worker_mid_trial(db_path: Path, sql: str) -> tuple[int, int] | None:
    """SIGSTOP the worker of the first ``(number, worker)`` row ``sql`` finds, and return ``(number, pid)``
    when that trial is still RUNNING once the worker is stopped; otherwise let the worker go on (SIGCONT)
    and return None. Epochs reach the store in batches, so a short trial seen mid-way may have ended
    before the signal landed, or the worker may have stopped while writing; use with ``wait_for`` to try
    again."""
    rows = query(db_path, sql)
    if not rows:
        return None
    number, worker = rows[0]
    pid = int(worker.rpartition(":")[2])
    os.kill(pid, signal.SIGSTOP)
    if (query(db_path, "SELECT state FROM hp_trials WHERE number = ?", (number,)) == [("RUNNING",)]
            and _writable(db_path)):
        return number, pid
    os.kill(pid, signal.SIGCONT)
    return None


def _writable(db_path: Path) -> bool:
    """Whether a writer can start on the SQLite file: a worker stopped in the middle of a write (an
    epoch batch, a heartbeat) holds SQLite's one write lock, and nobody could fail its trial then."""
    connection = sqlite3.connect(db_path, timeout=3)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


#: Four configurations in two groups of two (one per batch size), 20 epochs of small batches: the second
#: group trains long enough for a poll to find it running.
TWO_GROUPS_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: categorical, choices: [8, 16]}
  batch_size: {type: categorical, choices: [8, 16]}
fixed: {n_hidden: 1, epochs: 20}
"""


def kill_9_then_resume_two_groups(tmp_path: Path, *run_args: str) -> tuple[list[tuple], list[tuple]]:
    """``hpsearch run`` of ``TWO_GROUPS_SPACE`` on digits (study ``k``, four trials, ``run_args`` saying how
    they train together) killed with SIGKILL once the first group has completed and both trials of the
    second have trained an epoch; then ``hpsearch resume``, which must exit 0.

    Returns:
        ``(number, state)`` of every trial at the kill, and ``(number, state, retry_of, epochs_run, params)``
        of every trial after the resume.
    """
    space = tmp_path / "slow.yaml"
    space.write_text(TWO_GROUPS_SPACE)
    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    process = spawn_hpsearch("run", space, "--data", "digits", "--trials", "4", "--study", "k", *run_args,
                             "--storage", url, "--quiet", "--in-process", cwd=tmp_path)

    def second_group_training() -> bool:
        if not db.exists():
            return False
        rows = query(db, "SELECT t.state, COUNT(e.epoch) FROM hp_trials t LEFT JOIN hp_trial_epochs e "
                         "ON e.trial_id = t.id GROUP BY t.id")
        return (sum(state == "COMPLETE" for state, _ in rows) == 2
                and sum(state == "RUNNING" and epochs >= 1 for state, epochs in rows) == 2)

    try:
        wait_for(second_group_training, interval_s=0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = query(db, "SELECT number, state FROM hp_trials ORDER BY number")
    resumed = subprocess.run(hpsearch_command("resume", "k", "--storage", url, "--quiet", "--in-process"),
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = query(db, "SELECT number, state, retry_of, epochs_run, params FROM hp_trials ORDER BY number")
    return before, after


def wait_for(condition, timeout_s: float = 180.0, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sqlite3.OperationalError:
            pass  # tables not created yet
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s")
