"""The Keras metrics the builder compiles, per task, under the names objectives use.

Every metric is given its name explicitly, so the epoch logs say ``val_precision``, ``val_pr_auc``,
``val_tp``... whatever Keras would call it by default. What each one means (and the scikit-learn scorer
standing for it in the sklearn engine) is in :mod:`hpsearch.spaces.objectives`.

Importing this module imports Keras: the builder imports it inside ``build_model``.

Keras' own ``F1Score`` wants 2-D one-column (or one-hot) targets and ``AUC(multi_label=True)`` one-hot
targets, while our models take 1-D integer labels (binary 0/1, multiclass 0..k-1). The three small
subclasses below reshape or one-hot the labels first. They are registered with Keras' serialization, so
a compiled model saved with them (the retrain checkpoint) loads with ``safe_mode=True`` wherever this
module was imported; the exported ``model.keras`` is uncompiled and holds no metric at all.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import keras
from keras import ops

#: Thresholds of the AUC and PR-AUC estimates. Keras buckets predictions into this many thresholds; more
#: brings the streamed value closer to scikit-learn's exact ``roc_auc_score`` / ``average_precision_score``
#: (within 0.01, usually 0.001, at 1000 on a hundred-odd validation rows) for a small cost per batch.
AUC_THRESHOLDS = 1000

#: ``k`` of ``top_k_accuracy``, compiled for multiclass tasks with more than ``TOP_K`` classes (with
#: ``TOP_K`` classes or fewer it would always be 1).
TOP_K = 5


@keras.saving.register_keras_serializable(package="hpsearch")
class BinaryF1Score(keras.metrics.F1Score):
    """F1 of the positive class for a sigmoid output, predicting positive when ``p > 0.5``."""

    def __init__(self, name: str = "f1", dtype: Any = None) -> None:
        # One output column: "micro" averaging is that column's F1, as a scalar.
        super().__init__(average="micro", threshold=0.5, name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_true = ops.reshape(ops.cast(y_true, self.dtype), (-1, 1))
        y_pred = ops.reshape(ops.cast(y_pred, self.dtype), (-1, 1))
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="hpsearch")
class SparseMacroF1Score(keras.metrics.F1Score):
    """Macro-averaged F1 over ``num_classes`` classes from integer labels, predicting the argmax."""

    def __init__(self, num_classes: int, name: str = "f1", dtype: Any = None) -> None:
        super().__init__(average="macro", threshold=None, name=name, dtype=dtype)
        self.num_classes = int(num_classes)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        return super().update_state(ops.one_hot(labels, self.num_classes, dtype=self.dtype), y_pred,
                                    sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="hpsearch")
class SparseOneVsRestAUC(keras.metrics.AUC):
    """ROC AUC of each class against the rest, unweighted mean over classes, from integer labels
    (scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")``)."""

    def __init__(self, num_classes: int, name: str = "auc", num_thresholds: int = AUC_THRESHOLDS,
                 dtype: Any = None) -> None:
        super().__init__(num_thresholds=num_thresholds, multi_label=True, num_labels=int(num_classes),
                         name=name, dtype=dtype)
        self.num_classes = int(num_classes)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        return super().update_state(ops.one_hot(labels, self.num_classes), y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "name": self.name, "num_thresholds": self.num_thresholds,
                "dtype": self.dtype}


#: Metrics cheap enough to update on every training batch. The others (AUC and PR-AUC over 1000
#: thresholds, F1, precision, recall and the counts) made a digits trial's training about 1.8x slower,
#: compile included; a search trial computes them on the validation split only, once per epoch
#: (hpsearch.training.fit.ValidationMetrics).
STEP_METRICS = frozenset({"accuracy", "top_k_accuracy", "mae", "mse", "rmse", "r2", "mape"})


def task_metrics(kind: str, n_classes: int, names: Collection[str] | None = None) -> list[Any]:
    """The metrics compiled for a ``kind`` task, named as :func:`hpsearch.spaces.objectives.metric_names`
    lists;
    only those in ``names`` when given."""
    every = _task_metrics(kind, n_classes)
    return every if names is None else [metric for metric in every if metric.name in names]


def _task_metrics(kind: str, n_classes: int) -> list[Any]:
    if kind == "binary":
        return [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(name="auc", num_thresholds=AUC_THRESHOLDS),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
            BinaryF1Score(name="f1"),
            # "majoring" (each step's larger precision) is the Keras summation closest to scikit-learn's
            # average precision: within 0.001 on a 10%-positive validation split where the default
            # interpolation was 0.011 off (and 0.03 off for a near-random model).
            keras.metrics.AUC(name="pr_auc", curve="PR", summation_method="majoring",
                              num_thresholds=AUC_THRESHOLDS),
            keras.metrics.TruePositives(name="tp"),
            keras.metrics.FalsePositives(name="fp"),
            keras.metrics.TrueNegatives(name="tn"),
            keras.metrics.FalseNegatives(name="fn"),
        ]
    if kind == "multiclass":
        metrics = [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            SparseMacroF1Score(n_classes, name="f1"),
            SparseOneVsRestAUC(n_classes, name="auc"),
        ]
        if n_classes > TOP_K:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=TOP_K, name="top_k_accuracy"))
        return metrics
    return [
        keras.metrics.MeanAbsoluteError(name="mae"),
        # In the target's units: the loss is the MSE of the standardized target (see the builder).
        keras.metrics.MeanSquaredError(name="mse"),
        keras.metrics.RootMeanSquaredError(name="rmse"),
        keras.metrics.R2Score(name="r2"),
        keras.metrics.MeanAbsolutePercentageError(name="mape"),
    ]
