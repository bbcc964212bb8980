"""The KerasTuner engine under kill -9 and Ctrl-C, in real subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from hpsearch.engines.keras_tuner.plan import hyperband_plan

from tests.conftest import hpsearch_command, query, spawn_hpsearch, wait_for
from tests.helpers import assert_budget_reached_cleanly, run_hpsearch, trial_rows

pytestmark = pytest.mark.slow

#: Epochs slow enough (digits, batch 4, one step per execution: about half a second each) that a 3-epoch
#: Hyperband round is still training, with its first epochs in the store, when killed. (With batch 8 and
#: whole-epoch executions a round could end before the store saw an epoch of it, and the wait timed out.)
SLOW_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 16, high: 32}
  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 4, batch_size: 4, steps_per_execution: 1}
"""
#: --max-epochs 4 --factor 4: bracket 1 trains 4 configs 1 epoch, continues the best for 3 more; bracket 0
#: trains 2 configs 4 epochs. 7 trials.
PLAN = hyperband_plan(4, 4)
BUDGET = sum(r.configs for bracket in PLAN for r in bracket)


def _trials(db) -> list[tuple]:
    return trial_rows(db, "value", "ended_at", "parent_number", "epochs_run", "engine_trial_id")


def _continuation_mid_round(db) -> bool:
    rows = query(db, "SELECT state, epochs_run, parent_number FROM hp_trials")
    return any(state == "RUNNING" and epochs >= 1 and parent is not None for state, epochs, parent in rows)


def _resume(tmp_path, url, *extra):
    return run_hpsearch(tmp_path, "resume", "k", "--storage", url, "--quiet", *extra, check=False)


def _assert_clean(db, budget: int) -> list[tuple]:
    return assert_budget_reached_cleanly(_trials(db), budget)


def test_kill_9_during_a_continued_hyperband_round_then_resume(tmp_path):
    space = tmp_path / "slow.yaml"
    space.write_text(SLOW_SPACE)
    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    # --in-process: the process killed is the one training, so nothing gets to clean up after itself.
    process = spawn_hpsearch("run", space, "--engine", "keras-tuner", "--algorithm", "hyperband",
                             "--max-epochs", "4", "--factor", "4", "--data", "digits", "--study", "k",
                             "--storage", url, "--quiet", "--in-process", cwd=tmp_path)
    try:
        wait_for(lambda: _continuation_mid_round(db), interval_s=0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = _trials(db)
    killed = [row for row in before if row[1] == "RUNNING"]
    assert len(killed) == 1
    completed_before = {row[0]: row for row in before if row[1] == "COMPLETE"}
    # The round's parent keeps its weights: the retry must continue from them.
    assert list((tmp_path / "hpsearch-keras-tuner" / "k.db" / "k").glob("trial_*/best-weights.npz"))

    resumed = _resume(tmp_path, url)  # in supervised worker processes, as users run it
    assert resumed.returncode == 0, resumed.stderr
    assert "marked 1 interrupted trial(s) as FAILED" in resumed.stdout
    assert f"retrying the configuration of trial(s) #{killed[0][0]}" in resumed.stdout

    rows = _assert_clean(db, budget=BUDGET)
    by_number = {row[0]: row for row in rows}
    number = killed[0][0]
    assert by_number[number][1] == "FAILED" and by_number[number][2]
    retries = [row for row in rows if row[3] == number]
    assert len(retries) == 1, "the interrupted round is retried exactly once"
    retry = retries[0]
    assert json.loads(retry[4]) == json.loads(killed[0][4])
    assert retry[7] == killed[0][7], "the retry continues the same parent"
    assert retry[9] == killed[0][9], "the same KerasTuner trial (bracket, round) runs again"
    assert retry[8] == 3, "and trains the round's 3 epochs from the parent's epoch 1"
    for completed_number, row in completed_before.items():
        assert by_number[completed_number] == row, "completed trials are kept as they were"
    # Rounds that ended on their own follow the plan: 4 x 1 epoch, 1 x 3 (continued), 2 x 4.
    counted = [(row[7] is not None, row[8]) for row in rows if not row[2]]
    expected = [(r.round > 0, r.trained) for bracket in PLAN for r in bracket for _ in range(r.configs)]
    assert counted == expected
    assert not (tmp_path / "hpsearch-keras-tuner").exists()

    again = _resume(tmp_path, url, "--in-process")
    assert again.returncode == 0, again.stderr
    assert len(_trials(db)) == len(rows), "a finished plan trains nothing more"


def test_ctrl_c_records_the_trial_interrupted_and_resume_retries_it(tmp_path):
    space = tmp_path / "slow.yaml"
    space.write_text(SLOW_SPACE.replace("epochs: 4", "epochs: 3"))
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    process = spawn_hpsearch("run", space, "--engine", "keras-tuner", "--algorithm", "random", "--trials",
                             "3", "--data", "digits", "--study", "c", "--storage", url, "--quiet",
                             "--in-process", cwd=tmp_path)
    wait_for(lambda: query(db, "SELECT COUNT(*) FROM hp_trials WHERE state = 'RUNNING' AND epochs_run >= 1")
             [0][0] == 1, interval_s=0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"resume with: hpsearch resume c --storage {url}" in err
    assert "Traceback" not in err
    rows = query(db, "SELECT number, state, interrupted, params FROM hp_trials ORDER BY number")
    assert not [row for row in rows if row[1] == "RUNNING"]
    interrupted = [row for row in rows if row[2]]
    assert len(interrupted) == 1 and interrupted[0][1] == "FAILED"

    resumed = subprocess.run(hpsearch_command("resume", "c", "--storage", url, "--quiet", "--in-process"),
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = query(db, "SELECT number, state, interrupted, retry_of, params FROM hp_trials ORDER BY number")
    assert [row[0] for row in after] == list(range(len(after)))
    assert len([row for row in after if not row[2]]) == 3
    retry = [row for row in after if row[3] == interrupted[0][0]]
    assert len(retry) == 1 and json.loads(retry[0][4]) == json.loads(interrupted[0][3])
