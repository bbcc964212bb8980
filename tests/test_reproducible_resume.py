"""A resumed study is the study that would have run: killed with ``kill -9`` in the middle of a trial and
resumed, a study ends with the same (configuration, value) pairs, bit for bit, as the same study run
without interruption, whichever engine proposes; and a resume warns when what makes a study reproducible
(library versions, backend, numerical flags) changed since it was created.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess

import pytest

from tests.conftest import hpsearch_command, query, spawn_hpsearch, wait_for

pytestmark = pytest.mark.slow

# 30 epochs: the interrupted trial continues from its checkpoint (hpsearch.training.checkpoints), so the test
# covers the continuation as well as the proposals after it; and a trial lasts longer than one flush of its
# epochs to the store (hpsearch.training.recorder.EPOCH_FLUSH_S), so the test sees it mid-trial before the
# study ends. Dropout makes the data order and masks matter.
SPACE = """\
objective: val_loss
params:
  n_neurons: {type: int, grid: [4, 8, 16, 32]}
  learning_rate: {type: float, grid: [0.001, 0.01, 0.03]}
  dropout: {type: float, grid: [0.0, 0.2]}
fixed: {n_hidden: 1, epochs: 30, batch_size: 16, optimizer: adam}
"""

# Optuna grid besides TPE: its grid points follow the proposal index, which the retry of the killed trial
# must not shift. The median pruner: under Optuna's Hyperband (the default pruner) the retry of a killed
# trial is also compared with the killed attempt's rung values (docs/resume.md, Limits).
CASES = {
    "optuna-tpe": ("--engine", "optuna", "--algorithm", "tpe", "--trials", "5", "--pruner", "median"),
    "optuna-grid": ("--engine", "optuna", "--algorithm", "grid", "--trials", "5", "--pruner", "median"),
    "keras-tuner-bayesian": ("--engine", "keras-tuner", "--algorithm", "bayesian", "--trials", "5"),
    "sklearn-random": ("--engine", "sklearn", "--algorithm", "random", "--trials", "4", "--cv", "2"),
}


def _run_args(tmp_path, case: str, db: str) -> list[str]:
    # The same study name in both databases: an engine may hash the name (Optuna's Hyperband brackets).
    return ["run", tmp_path / "space.yaml", *CASES[case], "--data", "wine",
            "--seed", "7", "--study", "s", "--storage", f"sqlite:///{tmp_path / db}.db", "--quiet"]


def _ended(db) -> set[tuple[str, float]]:
    """(configuration, value) of every completed or pruned trial; values compared exactly."""
    rows = query(db, "SELECT params, value FROM hp_trials WHERE state IN ('COMPLETE', 'PRUNED')")
    return {(json.dumps(json.loads(params), sort_keys=True), value) for params, value in rows}


def _mid_trial(db, process) -> bool:
    """Two trials ended and a third has an epoch in the store: kill now.

    The store receives epochs in batches (hpsearch.training.recorder.EPOCH_FLUSH_S), so a fast trial's later
    epochs
    only show when it ends: the first epoch, slow with the model's first compile, is the window that is
    wide enough on any machine. The trial continues from its checkpoint of that epoch or a later one."""
    assert process.poll() is None, f"the study ended before the kill:\n{process.stderr.read()}"
    try:
        rows = query(db, "SELECT state, epochs_run FROM hp_trials")
    except sqlite3.Error:
        return False
    ended = sum(state in ("COMPLETE", "PRUNED") for state, _ in rows)
    return ended >= 2 and any(state == "RUNNING" and epochs >= 1 for state, epochs in rows)


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_and_resumed_study_ends_with_the_uninterrupted_trials(tmp_path, case):
    (tmp_path / "space.yaml").write_text(SPACE)
    uninterrupted = subprocess.run(hpsearch_command(*_run_args(tmp_path, case, "a")), cwd=tmp_path,
                                   capture_output=True, text=True, timeout=900)
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    db = tmp_path / "b.db"
    process = spawn_hpsearch(*_run_args(tmp_path, case, "b"), cwd=tmp_path)
    try:
        wait_for(lambda: db.exists() and _mid_trial(db, process), interval_s=0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    killed = query(db, "SELECT number FROM hp_trials WHERE state = 'RUNNING'")
    assert len(killed) == 1
    resumed = subprocess.run(hpsearch_command("resume", "s", "--storage", f"sqlite:///{db}", "--quiet"),
                             cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert f"#{killed[0][0]}" in resumed.stdout and "retrying" in resumed.stdout
    assert "warning" not in resumed.stderr, "nothing that makes the study reproducible changed"

    expected, got = _ended(tmp_path / "a.db"), _ended(db)
    assert len(expected) >= 4
    assert got == expected, (sorted(expected - got), sorted(got - expected))
    retried = query(db, "SELECT COUNT(*) FROM hp_trials WHERE retry_of IS NOT NULL AND state = 'COMPLETE'")
    assert retried == [(1,)], "the interrupted trial's configuration completed as its retry"


def test_resume_warns_when_what_makes_the_study_reproducible_changed(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("epochs: 10", "epochs: 1"))
    db = tmp_path / "w.db"
    url = f"sqlite:///{db}"
    created = subprocess.run(hpsearch_command("run", space, "--data", "wine", "--trials", "1", "--seed", "3",
                                              "--study", "w", "--storage", url, "--quiet", "--in-process"),
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert created.returncode == 0, created.stderr

    listed = subprocess.run(hpsearch_command("studies", "--storage", url, "--json"), capture_output=True,
                            text=True, timeout=120)
    block = json.loads(listed.stdout)[0]["reproducibility"]
    assert block["seed"] == 3 and len(block["data_fingerprint"]) >= 12
    assert block["backend"] == "tensorflow"
    assert block["versions"]["keras"] and block["versions"]["optuna"]
    assert set(block["determinism"]) >= {"TF_ENABLE_ONEDNN_OPTS", "TF_DETERMINISTIC_OPS", "cpus"}

    # As if the study had been created by another TensorFlow.
    connection = sqlite3.connect(db)
    with connection:
        (versions,) = connection.execute("SELECT versions FROM hp_studies").fetchone()
        versions = json.loads(versions)
        key = "tensorflow-cpu" if "tensorflow-cpu" in versions else "tensorflow"
        now = versions[key]
        versions[key] = "2.0.0"
        connection.execute("UPDATE hp_studies SET versions = ?", (json.dumps(versions),))
    connection.close()
    resumed = subprocess.run(hpsearch_command("resume", "w", "--storage", url, "--trials", "2", "--quiet",
                                              "--in-process"),
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"warning: study 'w' was created with {key} 2.0.0, now {now}" in resumed.stderr
