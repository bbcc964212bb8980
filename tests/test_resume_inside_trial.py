"""Resume inside a trial: a worker killed in epoch E of a 30-epoch trial costs at most one epoch.

The interrupted trial's retry continues from the checkpoint of its last completed epoch (weights and
optimizer state), trains only the epochs that are left, and records one continuous 30-point curve; a
retried scikit-learn candidate keeps the folds that were finished.
"""

from __future__ import annotations

import json
import signal
import subprocess

import numpy as np
import pytest
from hpsearch.settings import StudySettings
from hpsearch.storage import open_storage

from tests.conftest import query, spawn_hpsearch, wait_for
from tests.helpers import run_hpsearch

pytestmark = pytest.mark.slow

EPOCHS = 30
SPACE = f"""\
objective: val_accuracy
params:
  n_neurons: {{type: int, low: 8, high: 32}}
fixed: {{n_hidden: 1, epochs: {EPOCHS}, batch_size: 32, optimizer: adam}}
"""


def _checkpoint(path) -> tuple[int, dict[str, list[float]]] | None:
    """(epochs done, curve so far) of a checkpoint file, or None while there is none."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
    except (OSError, KeyError, ValueError):
        return None
    return meta["done"], meta["history"]


def _resume(url: str, tmp_path) -> subprocess.CompletedProcess:
    return run_hpsearch(tmp_path, "resume", "r", "--storage", url, "--quiet", "--in-process")


def test_worker_killed_in_epoch_e_continues_from_its_checkpoint(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    folder = tmp_path / "hpsearch-checkpoints" / "r.db" / "r"
    process = spawn_hpsearch("run", space, "--engine", "optuna", "--data", "digits", "--trials", "1",
                             "--study", "r", "--storage", url, "--quiet", "--in-process", cwd=tmp_path)
    try:
        wait_for(lambda: (_checkpoint(folder / "trial-0.npz") or (0,))[0] >= 5, interval_s=0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert [path.name for path in folder.iterdir()] == ["trial-0.npz"], "one checkpoint per running trial"
    done, saved_curve = _checkpoint(folder / "trial-0.npz")
    killed_in = done + 1  # the epoch (1-based) that was running when the worker died
    assert 5 <= done < EPOCHS

    resumed = _resume(url, tmp_path)
    assert f"#0 (continuing after epoch {done})" in resumed.stdout

    with open_storage(url) as storage:
        study = storage.get_study("r")
        interrupted, retry = storage.list_trials(study.id)
        assert interrupted.interrupted and retry.retry_of == 0 and retry.state.value == "COMPLETE"
        retry = storage.get_trial(study.id, retry.number, with_epochs=True)
    trained = retry.epochs_run - retry.metrics["epochs_restored"]
    assert trained <= EPOCHS - killed_in + 1
    assert retry.epochs_run == EPOCHS
    curve = retry.curves["val_accuracy"]
    assert len(curve) == EPOCHS and all(value is not None for value in curve)
    # One continuous curve: the epochs before the kill are the interrupted attempt's own.
    assert curve[:done] == pytest.approx(saved_curve["val_accuracy"], abs=1e-9)
    assert retry.curves["loss"][:done] == pytest.approx(saved_curve["loss"], abs=1e-9)
    # Trained on, not from scratch: the first new epoch is no worse off than a fresh model's first epoch.
    assert retry.curves["loss"][done] < retry.curves["loss"][0]
    assert not folder.exists(), "the checkpoint is deleted when the trial ends"
    assert not (tmp_path / "hpsearch-checkpoints").exists(), "a finished run leaves no empty folder behind"
    # The study's epoch total counts the restored epochs once (with the interrupted attempt), not twice.
    with open_storage(url) as storage:
        [summary] = storage.list_studies()
    assert summary.epochs_total == interrupted.epochs_run + trained


SKLEARN_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, grid: [16]}
fixed: {n_hidden: 1, epochs: 12, batch_size: 32, optimizer: adam}
"""


def _fold_scores(db) -> dict:
    rows = query(db, "SELECT number, state, metrics FROM hp_trials ORDER BY number")
    return {number: (state, json.loads(metrics)) for number, state, metrics in rows}


def test_retried_sklearn_candidate_keeps_its_finished_folds(tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text(SKLEARN_SPACE)
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    process = spawn_hpsearch("run", space, "--engine", "sklearn", "--algorithm", "grid", "--cv", "3",
                             "--data", "digits", "--study", "r", "--storage", url, "--quiet", "--in-process",
                             cwd=tmp_path)
    try:
        wait_for(lambda: db.exists() and any("split0_test_score" in metrics
                                             for _, metrics in _fold_scores(db).values()), interval_s=0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = _fold_scores(db)
    assert [state for state, _ in before.values()] == ["RUNNING"]
    finished = sorted(int(key[5]) for key in before[0][1] if key.endswith("_test_score"))
    assert 1 <= len(finished) < 3

    _resume(url, tmp_path)
    with open_storage(url) as storage:
        study = storage.get_study("r")
        retry = storage.get_trial(study.id, 1, with_epochs=True)
    assert retry.retry_of == 0 and retry.state.value == "COMPLETE"
    assert retry.metrics["folds_restored"] == len(finished)
    for fold in finished:
        assert retry.metrics[f"split{fold}_test_score"] == before[0][1][f"split{fold}_test_score"]
    scores = [retry.metrics[f"split{fold}_test_score"] for fold in range(3)]
    assert retry.value == pytest.approx(np.mean(scores))
    # Every fold has its whole curve on the retry, the kept ones copied from the interrupted attempt.
    for fold in range(3):
        curve = retry.curves[f"split{fold}_loss"]
        assert sum(value is not None for value in curve) == 12


def test_same_study_name_in_two_databases_of_one_folder_keeps_apart(tmp_path):
    """A study is named within its database: study 's' of a.db and study 's' of b.db, side by side, must
    not sweep (or continue from) each other's checkpoints."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from hpsearch.training.checkpoints import CHECKPOINT_DIR_SETTING, study_checkpoints, study_work_folder

    study = SimpleNamespace(name="s", id=1, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    a = study_checkpoints(f"sqlite:///{tmp_path / 'a.db'}", study, StudySettings())
    b = study_checkpoints(f"sqlite:///{tmp_path / 'b.db'}", study, StudySettings())
    assert a.folder != b.folder
    for checkpoints in (a, b):
        checkpoints.folder.mkdir(parents=True)
        checkpoints.path(0).write_bytes(b"epoch 5 of trial 0")
    assert a.sweep(keep=[]) == [0], "a.db's resume found trial 0 neither running nor due a retry"
    assert b.numbers() == [0], "b.db's running trial keeps its checkpoint"
    b.discard(0)
    assert list(tmp_path.iterdir()) == [], "the last checkpoint's folders go with it"
    # KerasTuner's Hyperband weights are kept apart the same way.
    assert (study_work_folder(f"sqlite:///{tmp_path / 'a.db'}", "w", "s")
            != study_work_folder(f"sqlite:///{tmp_path / 'b.db'}", "w", "s"))

    shared = tmp_path / "shared"
    shared.mkdir()
    given = study_checkpoints(f"sqlite:///{tmp_path / 'a.db'}", study,
                              StudySettings.from_record({CHECKPOINT_DIR_SETTING: str(shared)}))
    assert given.folder == shared / "a.db" / "s"
    given.folder.mkdir(parents=True)
    given.path(3).write_bytes(b"epoch 2")
    given.discard(3)
    assert shared.is_dir() and list(shared.iterdir()) == [], "--checkpoint-dir itself is the user's: it stays"
