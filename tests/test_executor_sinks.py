"""Executors are a layer: every epoch they train ends in the trial's Attempt (tests/test_layers.py checks
that they import no engine).

A ``--jobs`` fold process gets no storage URL: its epochs stream back and reach the store through the
parent's ``Attempt``. A KerasTuner trial on Dask keeps its in-trial checkpoint in a
shared ``--checkpoint-dir``, so the task run again after its worker died continues from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hpsearch.storage import open_storage

from tests.conftest import spawn_hpsearch, wait_for


class _Attempt:
    """The part of the runner's ``Attempt`` an executor uses: the trial's id and the epoch sink."""

    def __init__(self) -> None:
        self.record = SimpleNamespace(id=7, number=0)
        self.epochs: list[tuple[int, int, dict[str, float]]] = []

    def record_epoch(self, epoch, logs, *, fold=None) -> None:
        self.epochs.append((fold, epoch, dict(logs)))


def test_a_jobs_fold_sends_its_epochs_back_to_the_trials_attempt():
    """Fold processes are started without a storage URL; each fold's epochs, in order, reach the attempt
    (streamed as they end) before the fold's result."""
    from hpsearch.engines.sklearn.estimators import make_estimator
    from hpsearch.executors.folds import ProcessFitter
    from sklearn.datasets import load_iris
    from sklearn.model_selection import StratifiedKFold

    x, y = load_iris(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    estimator = make_estimator("multiclass", {"epochs": 3, "batch_size": 32, "n_hidden": 1, "n_neurons": 4},
                               seed=0)
    splits = list(StratifiedKFold(2).split(x, y))
    fitter = ProcessFitter(1, 1, x, y, None, estimator, "accuracy", "hpsearch")
    attempt = _Attempt()
    try:
        results = list(fitter.folds(attempt, {"model__n_neurons": 8}, splits, [0, 1]))
    finally:
        fitter.close()
    assert sorted(result.fold for result in results) == [0, 1]
    assert all(result.error is None and result.epochs_run == 3 for result in results)
    for fold in (0, 1):
        epochs = [(epoch, logs) for owner, epoch, logs in attempt.epochs if owner == fold]
        assert [epoch for epoch, _ in epochs] == [0, 1, 2]
        assert all(np.isfinite(logs["loss"]) and "val_loss" in logs for _, logs in epochs)


EPOCHS = 30
SPACE = f"""\
objective: val_accuracy
params:
  n_neurons: {{type: int, low: 8, high: 32}}
fixed: {{n_hidden: 1, epochs: {EPOCHS}, batch_size: 8, optimizer: adam}}
"""


def _checkpoint_done(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return int(json.loads(str(arrays["meta"]))["done"])
    except (OSError, KeyError, ValueError):
        return 0


@pytest.mark.slow
def test_a_keras_tuner_trial_on_dask_continues_its_checkpoint_after_its_worker_dies(tmp_path):
    from tests.dask_cluster import dask_cluster

    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    shared = tmp_path / "shared-checkpoints"
    checkpoint = shared / "k.db" / "k" / "trial-0.npz"
    with dask_cluster(tmp_path, workers=2) as cluster:
        process = spawn_hpsearch("run", space, "--engine", "keras-tuner", "--algorithm", "random",
                                 "--trials", "1", "--data", "digits", "--study", "k", "--storage", url,
                                 "--quiet", "--dask", cluster.scheduler_file, "--checkpoint-dir", shared,
                                 cwd=tmp_path)
        try:
            wait_for(lambda: _checkpoint_done(checkpoint) >= 3, interval_s=0.05)
            victim, _ = cluster.wait_until_training("hpsearch-trial")
            done_at_kill = _checkpoint_done(checkpoint)
            cluster.kill_worker(victim)
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, err
        finally:
            if process.poll() is None:
                process.kill()

    assert done_at_kill < EPOCHS, "killed mid-trial"
    with open_storage(url) as storage:
        study = storage.get_study("k")
        [trial] = storage.list_trials(study.id)
        trial = storage.get_trial(study.id, trial.number, with_epochs=True)
    assert trial.state.value == "COMPLETE" and not trial.interrupted, "the task ran again, recorded once"
    assert trial.metrics["epochs_restored"] >= done_at_kill, "continued from the shared checkpoint"
    assert trial.epochs_run == EPOCHS and len(trial.curves["val_accuracy"]) == EPOCHS
    assert all(value is not None for value in trial.curves["loss"]), "one continuous curve, each epoch once"
    assert not checkpoint.exists(), "the checkpoint is deleted when the trial ends"
