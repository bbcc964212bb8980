"""The scikit-learn engine under kill -9, in a real subprocess: resume fits only what is missing."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import hpsearch_command, query, spawn_hpsearch, wait_for
from tests.helpers import grid_space, trial_rows

pytestmark = pytest.mark.slow

#: 3 x 2 = 6 candidates, 2 folds each; batch 8 keeps a fold in training long enough to be killed in it.
GRID_SPACE = grid_space([4, 8, 16], [0.001, 0.01], epochs=4, batch_size=8)
GRID = {(n, lr) for n in (4, 8, 16) for lr in (0.001, 0.01)}


def _trials(db) -> list[tuple]:
    return trial_rows(db, "value", "ended_at")


def _killable(db) -> bool:
    """Two candidates done and the third one mid-way through its folds."""
    complete = query(db, "SELECT count(*) FROM hp_trials WHERE state = 'COMPLETE'")[0][0]
    running = query(db, "SELECT count(*) FROM hp_trial_epochs e JOIN hp_trials t ON e.trial_id = t.id "
                        "WHERE t.state = 'RUNNING'")[0][0]
    return complete >= 2 and running >= 1


def _key(params: str) -> tuple:
    values = json.loads(params)
    return values["n_neurons"], values["learning_rate"]


def test_kill_9_mid_grid_then_resume_fits_only_the_missing_candidates(tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    db = tmp_path / "g.db"
    url = f"sqlite:///{db}"
    # --in-process: the process killed is the one fitting, so nothing gets to clean up after itself.
    process = spawn_hpsearch("run", space, "--engine", "sklearn", "--cv", "2", "--data", "iris", "--study",
                             "g", "--storage", url, "--quiet", "--in-process", cwd=tmp_path)
    try:
        wait_for(lambda: _killable(db), interval_s=0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = _trials(db)
    completed_before = {row[0]: row for row in before if row[1] == "COMPLETE"}
    killed = [row for row in before if row[1] == "RUNNING"]
    assert len(completed_before) >= 2 and len(killed) == 1

    resumed = subprocess.run(hpsearch_command("resume", "g", "--storage", url, "--quiet"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "marked 1 interrupted trial(s) as FAILED" in resumed.stdout

    after = _trials(db)
    by_number = {row[0]: row for row in after}
    # No completed candidate was fitted again: its row is untouched and its parameters appear once.
    for number, row in completed_before.items():
        assert by_number[number] == row
    finished = [row for row in after if not row[2]]
    assert not [row for row in after if row[1] == "RUNNING"]
    assert len(finished) == len(GRID), "one result per candidate, no duplicates"
    assert {_key(row[4]) for row in finished} == GRID
    assert all(row[1] == "COMPLETE" for row in finished)
    # The killed candidate was fitted again, from its first fold, as a retry of the interrupted trial.
    retries = [row for row in after if row[3] == killed[0][0]]
    assert len(retries) == 1 and _key(retries[0][4]) == _key(killed[0][4])
    assert by_number[killed[0][0]][1] == "FAILED" and by_number[killed[0][0]][2]

    # A resume of a finished grid fits nothing.
    again = subprocess.run(hpsearch_command("resume", "g", "--storage", url, "--quiet"), cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert _trials(db) == after


def _two_in_flight(db) -> bool:
    """A candidate done, and two candidates' trials running at once (each with a fold's epoch stored)."""
    complete = query(db, "SELECT count(*) FROM hp_trials WHERE state = 'COMPLETE'")[0][0]
    return complete >= 1 and len(_numbers_in_flight(db)) >= 2


def test_ctrl_c_with_parallel_folds_interrupts_every_candidate_in_flight_then_resume_finishes(tmp_path):
    """--jobs 2 keeps two processes busy by starting the next candidate's folds while the last fold of
    the one before still trains: Ctrl-C then stops both candidates in flight, each recorded as
    interrupted, and resume fits them again and nothing else."""
    space = tmp_path / "grid.yaml"
    # 10 epochs: a fold trains for about a second, so the candidates seen in flight are still in flight
    # when the signal lands, on a loaded machine too.
    space.write_text(GRID_SPACE.replace("epochs: 4", "epochs: 10"))
    db = tmp_path / "p.db"
    url = f"sqlite:///{db}"
    process = spawn_hpsearch("run", space, "--engine", "sklearn", "--cv", "3", "--jobs", "2",
                             "--data", "iris", "--study", "p", "--storage", url, "--quiet", "--in-process",
                             cwd=tmp_path)
    try:
        wait_for(lambda: _two_in_flight(db), interval_s=0.05)
        in_flight = _numbers_in_flight(db)
        signalled_at = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as SQLite stores ended_at
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert f"resume with: hpsearch resume p --storage {url}" in err
    before = _trials(db)
    assert not [row for row in before if row[1] == "RUNNING"]
    interrupted = [row for row in before if row[2]]
    assert interrupted and all(row[1] == "FAILED" for row in interrupted)
    # Every candidate in flight is interrupted, not left to finish. One whose last fold ended as the signal
    # was being sent (within the second the main loop may take to notice it) counts as finished before it.
    by_number = {row[0]: row for row in before}
    assert len(in_flight) >= 2
    for number in in_flight:
        _, state, was_interrupted, _, _, _, ended_at = by_number[number]
        finished_first = (state == "COMPLETE"
                          and datetime.fromisoformat(ended_at) < signalled_at + timedelta(seconds=1))
        assert (was_interrupted and state == "FAILED") or finished_first, (number, before)
    completed_before = {row[0]: row for row in before if row[1] == "COMPLETE"}

    resumed = subprocess.run(hpsearch_command("resume", "p", "--storage", url, "--quiet"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = _trials(db)
    by_number = {row[0]: row for row in after}
    for number, row in completed_before.items():
        assert by_number[number] == row
    finished = [row for row in after if not row[2]]
    assert len(finished) == len(GRID) and {_key(row[4]) for row in finished} == GRID
    assert all(row[1] == "COMPLETE" for row in finished)
    # Each interrupted candidate was fitted again once, as a retry of its interrupted trial.
    for row in interrupted:
        retries = [again for again in after if again[3] == row[0]]
        assert len(retries) == 1 and _key(retries[0][4]) == _key(row[4])


def _numbers_in_flight(db) -> list[int]:
    """The numbers of the running trials that have a fold's epoch stored."""
    rows = query(db, "SELECT DISTINCT t.number FROM hp_trial_epochs e JOIN hp_trials t ON e.trial_id = t.id "
                     "WHERE t.state = 'RUNNING'")
    return [number for (number,) in rows]


def _fold_in_flight(db) -> bool:
    """A trial ended, and a running one has a fold's epoch stored."""
    ended = query(db, "SELECT count(*) FROM hp_trials WHERE state != 'RUNNING'")[0][0]
    running = query(db, "SELECT count(*) FROM hp_trial_epochs e JOIN hp_trials t ON e.trial_id = t.id "
                        "WHERE t.state = 'RUNNING'")[0][0]
    return ended >= 1 and running >= 1


@pytest.mark.parametrize("algorithm", ["grid", "halving-grid"])
def test_a_dead_fold_process_interrupts_the_candidates_in_flight_and_the_run_fits_them_again(tmp_path,
                                                                                            algorithm):
    """--jobs 2: a fold process killed (as the out-of-memory killer would) breaks the pool. The candidates
    whose fits were in it are recorded interrupted with the cause, and the same run fits them again with
    fresh processes: the search ends, exit 0, with no candidate failed or fitted twice."""
    import psutil

    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    db = tmp_path / "d.db"
    url = f"sqlite:///{db}"
    process = spawn_hpsearch("run", space, "--engine", "sklearn", "--algorithm", algorithm, "--cv", "2",
                             "--jobs", "2", "--data", "iris", "--study", "d", "--storage", url, "--quiet",
                             "--in-process", cwd=tmp_path)
    try:
        wait_for(lambda: _fold_in_flight(db), interval_s=0.05)
        fold_processes = [child for child in psutil.Process(process.pid).children(recursive=True)
                          if "spawn_main" in " ".join(child.cmdline())]
        assert fold_processes, "the fold processes run under the search"
        fold_processes[0].kill()
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    rows = _trials(db)
    interrupted = [row for row in rows if row[2]]
    assert interrupted and all(row[1] == "FAILED" for row in interrupted)
    causes = query(db, "SELECT error FROM hp_trials WHERE interrupted = 1")
    assert all("a fold process died" in cause for (cause,) in causes), causes
    for row in interrupted:
        assert f"note: trial #{row[0]} interrupted: a fold process died" in err
    finished = [row for row in rows if not row[2]]
    assert not [row for row in finished if row[1] == "FAILED"], "no candidate failed for a lost process"
    retried = {row[3] for row in finished if row[3] is not None}
    assert retried == {row[0] for row in interrupted}, "each interrupted candidate fitted again, as its retry"
    if algorithm == "grid":
        assert sorted(_key(row[4]) for row in finished) == sorted(GRID), "each candidate once, none lost"
        summary = (f"{len(rows)} trials ({len(GRID)} complete, {len(interrupted)} failed, "
                   f"{len(interrupted)} of them interrupted)")
        assert summary in out, out
    else:  # the whole plan ran: its last rung has a complete trial, as without the kill
        assert [row for row in finished if row[1] == "COMPLETE"]
