"""Worker isolation: dying, recycled and parallel workers never lose, duplicate or strand a trial."""

from __future__ import annotations

import itertools
import json
import os
import resource
import signal
from datetime import UTC, datetime

import pytest

from tests.conftest import pause_worker_mid_trial, query, spawn_hpsearch, wait_for
from tests.helpers import SLOW_SPACE, assert_budget_reached_cleanly, run_hpsearch, trial_rows, write_space

pytestmark = pytest.mark.slow

QUICK_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 16}
fixed: {n_hidden: 1, epochs: 2, batch_size: 64}
"""


def _rows(db):
    return trial_rows(db, "worker", "error", "peak_memory_mb")


RUNNING_WITH_EPOCH = "SELECT number, worker FROM hp_trials WHERE state = 'RUNNING' AND epochs_run >= 1"


def _running_with_epoch(db) -> list[tuple]:
    return query(db, RUNNING_WITH_EPOCH)


def _assert_clean(db, budget: int) -> list[tuple]:
    return assert_budget_reached_cleanly(_rows(db), budget, optuna_db=db)


def test_kill_9_of_a_worker_costs_only_its_trial(tmp_path):
    db = tmp_path / "w.db"
    process = spawn_hpsearch("run", write_space(tmp_path, SLOW_SPACE), "--data", "digits", "--trials", "4",
                             "--study", "w", "--storage", db, "--quiet", "--pruner", "none", cwd=tmp_path)
    paused: list[tuple[int, int]] = []

    def worker_paused_mid_trial() -> bool:
        if query(db, "SELECT COUNT(*) FROM hp_trials WHERE state = 'COMPLETE'")[0][0] < 1:
            return False
        paused.append(pause_worker_mid_trial(db, RUNNING_WITH_EPOCH))
        return paused[-1] is not None

    wait_for(worker_paused_mid_trial)
    number, pid = paused[-1]
    os.kill(pid, signal.SIGKILL)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "killed by SIGKILL" in err
    rows = _assert_clean(db, budget=4)
    killed = rows[number]
    assert killed[1] == "FAILED" and killed[2] and "killed by SIGKILL" in killed[6]
    retry = [row for row in rows if row[3] == number]
    assert len(retry) == 1 and json.loads(retry[0][4]) == json.loads(killed[4])
    assert not retry[0][5].endswith(f":{pid}"), "a new worker process took over"
    assert all(row[7] and row[7] > 50 for row in rows if row[1] == "COMPLETE"), "peak memory recorded"


def test_kill_9_of_the_supervisor_takes_its_workers_then_resume(tmp_path):
    db = tmp_path / "s.db"
    process = spawn_hpsearch("run", write_space(tmp_path, SLOW_SPACE), "--data", "digits", "--trials", "3",
                             "--study", "s", "--storage", db, "--quiet", "--pruner", "none", cwd=tmp_path)
    wait_for(lambda: _running_with_epoch(db))
    _, worker = _running_with_epoch(db)[0]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    worker_pid = int(worker.rpartition(":")[2])
    wait_for(lambda: not _pid_alive(worker_pid), timeout_s=30)
    assert query(db, "SELECT COUNT(*) FROM hp_trials WHERE state = 'RUNNING'") == [(1,)]
    resumed = run_hpsearch(tmp_path, "resume", "s", "--storage", db, "--quiet")
    assert "marked 1 interrupted trial(s) as FAILED" in resumed.stdout
    _assert_clean(db, budget=3)
    studies = json.loads(run_hpsearch(tmp_path, "studies", "--storage", db, "--json").stdout)
    assert studies[0]["states"]["RUNNING"] == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped) is not alive for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_sigterm_stops_cleanly_with_resume_command(tmp_path):
    db = tmp_path / "t.db"
    process = spawn_hpsearch("run", write_space(tmp_path, SLOW_SPACE), "--data", "digits", "--trials", "3",
                             "--study", "t", "--storage", db, "--quiet", "--pruner", "none", cwd=tmp_path)
    wait_for(lambda: _running_with_epoch(db))
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "resume with: hpsearch resume t --storage" in err and "Traceback" not in err
    rows = _rows(db)
    assert [row[1] for row in rows] == ["FAILED"] and rows[0][2], "the in-flight trial is interrupted"
    assert "interrupted" in rows[0][6]


def test_recycling_replaces_workers_and_keeps_every_trial(tmp_path):
    db = tmp_path / "r.db"
    run_hpsearch(tmp_path, "run", write_space(tmp_path, QUICK_SPACE), "--data", "iris", "--trials", "5",
                 "--study", "r", "--storage", db, "--quiet", "--recycle-after", "2")
    rows = _assert_clean(db, budget=5)
    workers = [row[5] for row in rows]
    assert len(set(workers)) == 3 and workers[0] == workers[1] != workers[2] == workers[3] != workers[4]
    assert {row[1] for row in rows} <= {"COMPLETE", "PRUNED"}


def _optuna_random_study_with_complete_trials(tmp_path, workers: list[str]):
    """A store holding one Optuna random-search study, with a completed trial by each of ``workers``."""
    from hpsearch.storage import TrialState, open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'store.db'}")
    study = storage.create_study("s", engine="optuna", algorithm="random", objective="val_loss",
                                 direction="minimize", space={}, dataset={}, settings={"algorithm": "random"},
                                 versions={})
    for number, worker in enumerate(workers):
        trial = storage.start_trial(study.id, {"n": number}, worker=worker)
        storage.finish_trial(trial.id, TrialState.COMPLETE, value=1.0)
    return storage, study


@pytest.mark.parametrize(("budget", "standby"), [(6, False), (8, True)])
def test_a_trial_claimed_while_the_supervisor_reads_starts_no_standby_that_no_trial_is_left_for(
        tmp_path, budget, standby):
    """--recycle-after 2: workers 1 and 2 trained 4 trials and retired; worker 3, live, claims its first
    trial while the supervisor reads its counts. With a budget of 6 it trains the last two itself, so no
    warm replacement may start (one did when the claim fell between the supervisor's reads, on a loaded
    machine); with 8, two trials are left for a successor, which is started warm."""
    import socket
    from types import SimpleNamespace

    from hpsearch.engines.registry import get_engine
    from hpsearch.executors.supervisor import Supervisor, Worker
    from hpsearch.training.context import Budget

    host = socket.gethostname()
    retired = [f"{host}:{pid}" for pid in (1, 1, 2, 2)]
    storage, study = _optuna_random_study_with_complete_trials(tmp_path, retired)
    optuna = get_engine("optuna")
    supervisor = Supervisor(storage, study, Budget(trials=budget), recover=lambda failed: None,
                            parallel_workers=optuna.parallel_workers, workers=1, recycle_after=2,
                            memory_limit_mb=None, progress=False, retries_pending=False)
    supervisor.live = [Worker(process=SimpleNamespace(pid=3, poll=lambda: None), stderr=None,
                              finished_at_start=4)]
    started: list[bool] = []
    supervisor._spawn = lambda *, standby=False: started.append(standby)
    counts = storage.finished_by_worker

    def counts_then_a_claim(study_id, workers):
        answer = counts(study_id, workers)
        storage.start_trial(study.id, {"n": 4}, worker=f"{host}:3")
        return answer

    storage.finished_by_worker = counts_then_a_claim
    supervisor._keep_standby(done=False)
    assert started == ([True] if standby else [])


@pytest.mark.parametrize(("running_elsewhere", "ended_short"), [(True, False), (False, True)])
def test_a_run_says_its_search_ended_short_only_when_no_trial_is_left_running(tmp_path, running_elsewhere,
                                                                                ended_short):
    """Two of 3 trials done when this command's workers stop: with the third still training in another
    command (a second machine) the budget is spoken for; with none, the engine ran out of proposals."""
    import io

    from hpsearch.engines.registry import get_engine
    from hpsearch.spaces import load_space
    from hpsearch.study_report import print_summary as _print_summary
    from hpsearch.training.context import Budget

    storage, study = _optuna_random_study_with_complete_trials(tmp_path, ["here:1", "here:1"])
    if running_elsewhere:
        storage.start_trial(study.id, {"n": 2}, worker="elsewhere:1")
    out = io.StringIO()
    _print_summary(storage, study, load_space(write_space(tmp_path, QUICK_SPACE)), 1.0, out, Budget(trials=3),
                   get_engine("optuna"))
    said = "the optuna random search ended after 2 of its 3 trials: it proposed no further configuration"
    assert (said in out.getvalue()) == ended_short, out.getvalue()


def test_a_warm_worker_replaces_a_recycled_one_and_never_trains_beside_it(tmp_path):
    import time

    import psutil

    db = tmp_path / "warm.db"
    process = spawn_hpsearch("run", write_space(tmp_path, QUICK_SPACE), "--data", "iris", "--trials", "6",
                             "--study", "warm", "--storage", db, "--quiet", "--recycle-after", "2",
                             cwd=tmp_path)
    supervisor = psutil.Process(process.pid)
    started_as_standby: dict[int, float] = {}  # pid: when it started
    while process.poll() is None:
        try:
            for child in supervisor.children():
                if "--standby" in child.cmdline():
                    started_as_standby.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass  # a worker ended between listing and reading it
        time.sleep(0.05)
    _, err = process.communicate()
    assert process.returncode == 0, err
    rows = _assert_clean(db, budget=6)
    trained_by = [int(row[5].rsplit(":", 1)[1]) for row in rows]
    assert len(set(trained_by)) == 3, "a worker per two trials"
    # The replacements were started warm, before their predecessors retired, and took over; the first
    # worker was started warm too, before the study was even created (its imports overlap the set-up).
    # None was started that did not train: the last worker's two trials end the budget, so it has no
    # replacement to prepare.
    assert set(trained_by) == set(started_as_standby)
    [[created_at]] = query(db, "SELECT created_at FROM hp_studies")
    created = datetime.fromisoformat(created_at).replace(tzinfo=UTC).timestamp()
    assert started_as_standby[trained_by[0]] < created
    # ...but never trained beside them: one worker means one trial at a time.
    spans = query(db, "SELECT started_at, ended_at FROM hp_trials ORDER BY started_at")
    assert all(ended <= next_started for (_, ended), (next_started, _) in itertools.pairwise(spans))
    # A standby no longer needed is not left behind.
    assert not [pid for pid in started_as_standby if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def test_memory_ceiling_recycles_after_each_trial(tmp_path):
    db = tmp_path / "m.db"
    run_hpsearch(tmp_path, "run", write_space(tmp_path, QUICK_SPACE), "--data", "iris", "--trials", "2",
                 "--study", "m", "--storage", db, "--quiet", "--max-worker-memory", "1")
    rows = _assert_clean(db, budget=2)
    assert len({row[5] for row in rows}) == 2


def test_workers_on_postgresql_from_two_commands(tmp_path):
    url = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("HPSEARCH_TEST_POSTGRES=0 declined the PostgreSQL server")
    import sqlalchemy

    space = write_space(tmp_path, QUICK_SPACE)
    first = spawn_hpsearch("run", space, "--data", "iris", "--trials", "10", "--study", "pg-shared",
                           "--storage", url, "--quiet", "--workers", "2", cwd=tmp_path)
    engine = sqlalchemy.create_engine(url)

    def count(sql: str) -> int:
        try:
            with engine.connect() as connection:
                return connection.execute(sqlalchemy.text(sql)).scalar_one()
        except sqlalchemy.exc.ProgrammingError:  # tables not created yet
            return 0

    wait_for(lambda: count("SELECT COUNT(*) FROM hp_studies WHERE name = 'pg-shared'") == 1)
    second = run_hpsearch(tmp_path, "worker", "pg-shared", "--storage", url, "--quiet", "--workers", "1")
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    # The other command's last trials may still run when this one ends: that is not a search ended short.
    assert "search ended after" not in out
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT t.number, t.state, t.worker, t.params FROM hp_trials t JOIN hp_studies s "
            "ON s.id = t.study_id WHERE s.name = 'pg-shared' ORDER BY t.number")).all()
    assert [row[0] for row in rows] == list(range(len(rows)))
    assert {row[1] for row in rows} <= {"COMPLETE", "PRUNED"}
    # The budget is checked in the transaction that claims a trial: three workers stop at exactly 10.
    assert len(rows) == 10
    assert len({row[2] for row in rows}) >= 2
    assert len({json.dumps(row[3], sort_keys=True) for row in rows}) == 10, "no configuration twice"
    assert "error" not in second.stderr
    engine.dispose()


def test_build_error_fails_that_trial_only(cli, tmp_path, monkeypatch):
    from hpsearch import spaces

    real_build = spaces.build_model

    def fragile_build(config, task, **options):
        if config["n_neurons"] > 10:
            raise RuntimeError(f"cannot build {config['n_neurons']} neurons")
        return real_build(config, task, **options)

    monkeypatch.setattr(spaces, "build_model", fragile_build)
    space = write_space(tmp_path, QUICK_SPACE)
    result = cli("run", space, "--data", "iris", "--trials", "6", "--study", "b", "--quiet", "--in-process",
                 "--algorithm", "random", "--pruner", "none")
    assert result.code == 0, result.err
    trials = json.loads(cli("trials", "b", "--json").out)
    assert len(trials) == 6
    for trial in trials:
        if trial["params"]["n_neurons"] > 10:
            assert trial["state"] == "FAILED" and "RuntimeError: cannot build" in trial["error"]
        else:
            assert trial["state"] == "COMPLETE"
    assert {t["state"] for t in trials} == {"FAILED", "COMPLETE"}


def _limit_file_size(limit: int):
    def apply() -> None:
        # Writes past the limit fail with EFBIG instead of killing the process: a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_stops_with_a_clear_error_and_keeps_completed_trials(tmp_path):
    db = tmp_path / "d.db"
    space = write_space(tmp_path, QUICK_SPACE)
    run_hpsearch(tmp_path, "run", space, "--data", "iris", "--trials", "2", "--study", "d", "--storage", db,
                 "--quiet", "--pruner", "none")
    wal = tmp_path / "d.db-wal"
    size = db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    done = run_hpsearch(tmp_path, "resume", "d", "--storage", db, "--trials", "400", "--quiet", check=False,
                        preexec_fn=_limit_file_size(size + 64 * 1024))
    assert done.returncode == 1, done.stderr
    # The cause in words (the test fills the file size limit; a real disk reads "the disk is full"),
    # not the study's or the file's name.
    last = done.stderr.splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in done.stderr
    assert "the file size limit is reached" in last or "disk is full" in last, last
    rows = query(db, "SELECT number, state, interrupted FROM hp_trials ORDER BY number")
    assert rows[:2] == [(0, "COMPLETE", 0), (1, "COMPLETE", 0)]
    # The database's trouble is never a trial's own failure.
    assert not [row for row in rows if row[1] == "FAILED" and not row[2]]
    repaired = run_hpsearch(tmp_path, "resume", "d", "--storage", db, "--quiet", "--trials",
                            str(len(rows) + 1))
    assert repaired.returncode == 0
    assert not query(db, "SELECT number FROM hp_trials WHERE state = 'RUNNING'")


def test_read_only_database_is_refused_clearly(tmp_path):
    space = write_space(tmp_path, QUICK_SPACE)
    db = tmp_path / "ro.db"
    run_hpsearch(tmp_path, "run", space, "--data", "iris", "--trials", "1", "--study", "ro", "--storage", db,
                 "--quiet")
    # root ignores file modes, so open the database read-only the way SQLite itself allows.
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    done = run_hpsearch(tmp_path, "resume", "ro", "--storage", read_only, "--trials", "2", "--quiet",
                        check=False)
    assert done.returncode in (1, 2), done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "read" in last and "Traceback" not in done.stderr
    assert query(db, "SELECT state FROM hp_trials") == [("COMPLETE",)]
    listed = run_hpsearch(tmp_path, "trials", "ro", "--storage", read_only, "--json")
    assert len(json.loads(listed.stdout)) == 1, "a read-only database can still be queried"


def test_two_runs_racing_for_one_study_name(tmp_path):
    space = write_space(tmp_path, QUICK_SPACE)
    db = tmp_path / "race.db"
    racers = [spawn_hpsearch("run", space, "--data", "iris", "--trials", "1", "--study", "race",
                             "--storage", db, "--quiet", cwd=tmp_path) for _ in range(2)]
    results = [(racer.wait(timeout=600), racer.stderr.read()) for racer in racers]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "already exists" in loser
    assert query(db, "SELECT COUNT(*) FROM hp_studies") == [(1,)]
