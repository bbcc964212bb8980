"""The objectives' metrics: what a trial records equals scikit-learn's metric on the same predictions,
and each objective maps to the scikit-learn scorer of the same meaning.

Tolerances: precision, recall, F1 (binary and macro), top-k accuracy and the confusion counts are exact
counts over the streamed validation epoch, so they match scikit-learn to float32 rounding (1e-5). R2 and
MAPE are sums of float32 squares and ratios over a few hundred targets in the hundreds: 1e-4 relative.
AUC and PR-AUC are estimates: Keras buckets the predictions into 1000 thresholds and sums the curve
between them (PR-AUC with the larger precision of each step, "majoring") where scikit-learn uses every
distinct score and, for average precision, a step-wise sum; on the 80 validation rows (8 positive) of the
bundled imbalanced data they agree within 0.001 (measured), and 0.01 leaves room for other platforms'
float rounding while still failing a ROC AUC recorded as PR-AUC (0.46 against 0.22 here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hpsearch.data import load_dataset
from hpsearch.spaces import DEFAULTS
from hpsearch.storage import open_storage
from hpsearch.training.fit import EpochRecorderCallback, fit_config
from hpsearch.training.recorder import TrialRecorder
from hpsearch.training.scoring import scorer, scoring_for

EXACT = 1e-5
ESTIMATED = 0.01


def _capture_predictions(x_val: np.ndarray) -> Any:
    """A callback keeping the trained model's validation predictions, taken with the weights the last
    epoch's validation metrics were computed with."""
    import keras

    class Capture(keras.callbacks.Callback):
        predictions: np.ndarray

        def on_train_end(self, logs: Any = None) -> None:
            self.predictions = np.asarray(self.model.predict(x_val, verbose=0))

    return Capture()


def _recorded_trial(
    tmp_path: Path, data: str, objective: str, learning_rate: float = 0.01
) -> tuple[dict[str, float], np.ndarray, Any]:
    """Train one trial through the recorder into a real SQLite store; its last epoch as stored, the
    validation predictions, and the dataset."""
    dataset = load_dataset(data, seed=0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    storage = open_storage(f"sqlite:///{tmp_path / 'hp.db'}")
    study = storage.create_study("s", engine="optuna", algorithm="tpe", objective=objective,
                                 direction="maximize", space={}, dataset=dataset.reference, settings={},
                                 versions={})
    recorder = TrialRecorder(storage, study)
    trial = recorder.start({})
    capture = _capture_predictions(dataset.x_val)
    config = {**DEFAULTS, "n_hidden": 1, "n_neurons": 8, "epochs": 3, "batch_size": 32,
              "learning_rate": learning_rate}
    record_epoch = EpochRecorderCallback(lambda epoch, logs: recorder.epoch(trial, epoch, logs))
    result = fit_config(config, dataset, objective=objective, direction="maximize",
                        callbacks=[record_epoch, capture])
    recorder.complete(trial, result.value, result.final_metrics)
    [stored] = storage.list_trials(study.id, with_epochs=True)
    last = {name: values[-1] for name, values in stored.curves.items()}
    return last, capture.predictions, dataset


def test_binary_metrics_recorded_equal_scikit_learns(tmp_path: Path) -> None:
    from sklearn import metrics

    # The rare positive class and a barely trained model: precision, recall and PR-AUC far from 1, and
    # PR-AUC far from ROC AUC, so each is told apart from the others.
    last, predictions, dataset = _recorded_trial(tmp_path, "imbalanced", "val_f1", learning_rate=0.001)
    y, p = dataset.y_val, predictions.reshape(-1)
    positive = p > 0.5  # Keras' Precision/Recall/F1Score threshold
    assert 0 < positive.sum() < len(y), "a trivial model would not tell the metrics apart"
    tn, fp, fn, tp = metrics.confusion_matrix(y, positive).ravel()
    assert {key: last[f"val_{key}"] for key in ("tp", "fp", "tn", "fn")} == {
        "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    assert last["val_precision"] == pytest.approx(metrics.precision_score(y, positive), abs=EXACT)
    assert last["val_recall"] == pytest.approx(metrics.recall_score(y, positive), abs=EXACT)
    assert last["val_f1"] == pytest.approx(metrics.f1_score(y, positive), abs=EXACT)
    assert last["val_accuracy"] == pytest.approx(metrics.accuracy_score(y, positive), abs=EXACT)
    assert last["val_pr_auc"] == pytest.approx(metrics.average_precision_score(y, p), abs=ESTIMATED)
    assert last["val_auc"] == pytest.approx(metrics.roc_auc_score(y, p), abs=ESTIMATED)
    # The learning rate trained with is recorded with every epoch, schedule or not.
    assert last["learning_rate"] == pytest.approx(0.001)


def test_multiclass_and_regression_metrics_recorded_equal_scikit_learns(tmp_path: Path) -> None:
    from sklearn import metrics

    last, predictions, dataset = _recorded_trial(tmp_path / "digits", "digits", "val_top_k_accuracy")
    y = dataset.y_val
    assert last["val_f1"] == pytest.approx(
        metrics.f1_score(y, predictions.argmax(axis=1), average="macro"), abs=EXACT)
    assert last["val_top_k_accuracy"] == pytest.approx(
        metrics.top_k_accuracy_score(y, predictions, k=5), abs=EXACT)
    assert last["val_auc"] == pytest.approx(
        metrics.roc_auc_score(y, predictions, multi_class="ovr"), abs=ESTIMATED)

    last, predictions, dataset = _recorded_trial(tmp_path / "diabetes", "diabetes", "val_r2")
    y, p = dataset.y_val, predictions.reshape(-1)
    assert last["val_r2"] == pytest.approx(metrics.r2_score(y, p), rel=1e-4)
    # Keras reports MAPE in percent; so does the sklearn engine's scorer for `mape`.
    assert last["val_mape"] == pytest.approx(100 * metrics.mean_absolute_percentage_error(y, p), rel=1e-4)


@pytest.mark.parametrize(("objective", "task", "name", "sign"), [
    ("val_precision", "binary", "precision", 1),
    ("recall", "binary", "recall", 1),
    ("val_f1", "binary", "f1", 1),
    ("val_pr_auc", "binary", "average_precision", 1),
    ("val_auc", "binary", "roc_auc", 1),
    ("val_f1", "multiclass", "f1_macro", 1),
    ("val_auc", "multiclass", "roc_auc_ovr", 1),
    ("val_top_k_accuracy", "multiclass", "top_k_accuracy(k=5)", 1),
    ("val_loss", "multiclass", "neg_log_loss", -1),
    ("val_r2", "regression", "r2", 1),
    ("val_mape", "regression", "neg_mean_absolute_percentage_error(percent)", -1),
])
def test_each_objective_maps_to_the_scikit_learn_scorer_of_the_same_meaning(
    objective: str, task: str, name: str, sign: int
) -> None:
    scoring = scoring_for(objective, task)
    assert (scoring.name, scoring.sign) == (name, sign)


def test_our_own_scorers_score_what_keras_reports() -> None:
    """top-5 accuracy (scikit-learn's scorer takes k=2) and MAPE in percent (scikit-learn's: a fraction)."""
    from sklearn import metrics
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    class Fitted(ClassifierMixin, BaseEstimator):
        """Stands for a fitted SciKeras classifier: its input rows are its class probabilities."""

        classes_ = np.arange(6)

        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            return x

    class FittedRegressor(RegressorMixin, BaseEstimator):
        def predict(self, x: np.ndarray) -> np.ndarray:
            return x[:, 0]

    rng = np.random.default_rng(0)
    scores = rng.random((40, 6))
    labels = rng.integers(0, 5, size=40)  # class 5 absent, as it may be from one fold
    top_k = scorer(Fitted(), scoring_for("val_top_k_accuracy", "multiclass").name)
    assert top_k(Fitted(), scores, labels) == pytest.approx(
        metrics.top_k_accuracy_score(labels, scores, k=5, labels=np.arange(6)))
    targets = rng.random(40) + 1
    mape = scorer(FittedRegressor(), scoring_for("val_mape", "regression").name)
    assert mape(FittedRegressor(), scores, targets) == pytest.approx(
        -100 * metrics.mean_absolute_percentage_error(targets, scores[:, 0]))


def test_counts_are_recorded_not_optimised_and_sklearn_refuses_what_it_cannot_score(cli, tmp_path) -> None:
    space = tmp_path / "s.yaml"
    space.write_text("objective: val_fn\nfixed: {epochs: 1}\n")
    result = cli("run", space, "--data", "breast_cancer", "--dry-run")
    assert result.code == 2 and "Traceback" not in result.err
    assert "'val_fn' is a confusion count, recorded every epoch but not an objective" in result.err
    space.write_text("objective: val_top_k_accuracy\nfixed: {epochs: 1}\n")
    result = cli("run", space, "--data", "iris", "--dry-run")
    assert result.code == 2
    assert "needs more than 5 classes (it is top-5 accuracy), but the data has 3" in result.err
