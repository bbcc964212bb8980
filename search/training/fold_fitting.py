"""Fitting and scoring one cross-validation fold: what a scikit-learn fold task runs, wherever it runs.

``fit_and_score`` is what ``GridSearchCV`` does for one (candidate, fold); the executors
(:mod:`hpsearch.executors.folds`, :mod:`hpsearch.executors.cluster`) run it in this process, in a fold
process or on a Dask worker, and every epoch it trains goes to its ``on_epoch`` (the trial's ``Attempt``
here; a list sent back with the result elsewhere). ``--trainer scikeras`` fits with SciKeras
(:mod:`hpsearch.training.scikeras_models`), ``--trainer hpsearch`` directly
(:mod:`hpsearch.training.direct_fit`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hpsearch.spaces import DEFAULTS, TaskInfo
from hpsearch.spaces.compile_sklearn import MODEL_PREFIX
from hpsearch.spaces.metrics import STEP_METRICS
from hpsearch.storage import StorageError, TrialConflictError

from .compiled_models import CompiledModels
from .direct_fit import TracedModels, fit_fold_directly, release
from .fit import EpochRecorderCallback, describe_error, fresh_keras_session
from .scikeras_models import reusing, task_kind


@dataclass(frozen=True)
class FoldResult:
    """One fold of one candidate: its score in scikit-learn's sense (higher is better) or its error."""

    fold: int
    score: float | None
    fit_time: float
    score_time: float
    epochs_run: int
    error: str | None = None

    def metrics(self) -> dict[str, float]:
        """The fold's entries of ``cv_results_``: ``split{k}_test_score``, fit and score times."""
        values = {
            f"split{self.fold}_fit_time": self.fit_time,
            f"split{self.fold}_score_time": self.score_time,
        }
        if self.score is not None:
            values[f"split{self.fold}_test_score"] = self.score
        return values


def fit_cache(trainer: str) -> CompiledModels | TracedModels:
    """What a process keeps between the fits of ``trainer`` (see ``fit_and_score``)."""
    return TracedModels() if trainer == "hpsearch" else CompiledModels()


def release_fit(trainer: str) -> None:
    """After a process's fits: free the last fit's model, keeping the cached ones."""
    if trainer == "hpsearch":
        release()  # no clear_session: it would clear the kernels of every cached traced function
    else:
        # The builder clears the session before each build; young generations only while models are cached.
        fresh_keras_session(full_collection=False)


def fit_and_score(
    estimator: Any,
    params: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    scorer: Callable[..., float],
    *,
    fold: int,
    sample_weight: np.ndarray | None = None,
    on_epoch: Callable[[int, Mapping[str, Any]], None] | None = None,
    compiled_models: CompiledModels | TracedModels | None = None,
    trainer: str = "scikeras",
) -> FoldResult:
    """What ``GridSearchCV`` does for one (candidate, fold): clone, set params, fit on the training
    part, score on the held-out part, with ``error_score`` semantics (an error is returned, not raised).

    Validation data for the ``val_*`` curves is the estimator's ``validation_split`` of the training
    part; the held-out part is only scored. ``KeyboardInterrupt`` and storage errors (raised by
    ``on_epoch``) propagate.

    ``trainer`` ``scikeras`` fits with SciKeras' ``fit``; with ``compiled_models`` (a ``CompiledModels``),
    the fit trains the cached compiled model of its structure, restarted from the fresh model's state (see
    :mod:`hpsearch.training.compiled_models`): the same fit without the tracing. The fitted estimator's
    ``model_`` is
    then the cache's, restarted by the next fit of that structure: only the returned result is the fold's.
    ``trainer`` ``hpsearch`` fits directly (:mod:`hpsearch.training.direct_fit`), with ``compiled_models``
    a ``TracedModels``.
    """
    record = on_epoch or _ignore_epoch
    started = time.perf_counter()
    fit_time = score_time = 0.0
    try:
        if trainer == "hpsearch":
            fitted, epochs, diverged = _fit_directly(estimator, params, x[train], y[train], sample_weight,
                                                     train, record, compiled_models)
        else:
            fitted, epochs, diverged = _fit_with_scikeras(estimator, params, x[train], y[train],
                                                          sample_weight, train, record, compiled_models)
        fit_time = time.perf_counter() - started
        if diverged:
            return FoldResult(fold, None, fit_time, 0.0, epochs, f"fold {fold}: {diverged}")
        scored = time.perf_counter()
        score = float(scorer(fitted, x[test], y[test]))
        score_time = time.perf_counter() - scored
    except (KeyboardInterrupt, StorageError, TrialConflictError):
        raise  # Ctrl-C, and the database's trouble, are not this candidate's fault: the runner decides
    except Exception as error:  # error_score: this candidate fails, the search goes on
        fit_time = fit_time or time.perf_counter() - started
        return FoldResult(fold, None, fit_time, score_time, 0, f"fold {fold}: {describe_error(error)}")
    if not math.isfinite(score):
        return FoldResult(fold, None, fit_time, score_time, epochs, f"fold {fold}: the score was {score}")
    return FoldResult(fold, score, fit_time, score_time, epochs)


def _fit_with_scikeras(
    estimator: Any, params: Mapping[str, Any], x_fit: np.ndarray, y_fit: np.ndarray,
    sample_weight: np.ndarray | None, train: np.ndarray, on_epoch: Callable[[int, Mapping[str, Any]], None],
    compiled_models: Any,
) -> tuple[Any, int, str | None]:
    """``clone(estimator).set_params(**params).fit(...)``: the fitted estimator, its epochs, and why its
    loss diverged (None if it did not)."""
    from sklearn.base import clone

    model = clone(estimator).set_params(**params)
    callback = EpochRecorderCallback(on_epoch)
    callbacks = [_learning_rate_callback(model), callback]
    validation = _validation_metrics(model, x_fit, y_fit)
    model.set_params(callbacks=callbacks if validation is None else [validation, *callbacks])
    fit_kwargs = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)[train]}
    with reusing(compiled_models):
        model.fit(x_fit, y_fit, **fit_kwargs)
    epochs = len(getattr(model, "history_", {}).get("loss", []))
    return model, epochs, callback.non_finite


def _fit_directly(
    estimator: Any, params: Mapping[str, Any], x_fit: np.ndarray, y_fit: np.ndarray,
    sample_weight: np.ndarray | None, train: np.ndarray, on_epoch: Callable[[int, Mapping[str, Any]], None],
    traced_models: Any,
) -> tuple[Any, int, str | None]:
    """The same fit as ``_fit_with_scikeras``, trained by :func:`fit_fold_directly`."""
    from sklearn.base import clone

    full = clone(estimator).set_params(**params).get_params(deep=False)
    kind = task_kind(estimator)
    return fit_fold_directly(
        kind, full, x_fit, y_fit,
        None if sample_weight is None else np.asarray(sample_weight)[train],
        full.get("class_weight") if kind != "regression" else None,
        seed=int(full["random_state"]), validation_split=float(full["validation_split"] or 0.0),
        on_epoch=on_epoch, traced_models=traced_models if traced_models is not None else TracedModels(),
    )


def _validation_metrics(model: Any, x_fit: np.ndarray, y_fit: np.ndarray) -> Any | None:
    """The callback (put first) that adds, at each epoch's end, the ``val_*`` metrics the training step
    leaves out (AUC, PR-AUC, F1, precision, recall, the counts), scored on the rows Keras holds out of the
    fit (``validation_split``: the last ones) as a search trial scores its validation split (see
    ``hpsearch.training.fit.ValidationMetrics``). None when nothing is held out."""
    from hpsearch.spaces.objectives import metric_names

    from .fit import ValidationMetrics

    trained = model._trained_rows(len(x_fit))
    if trained >= len(x_fit):
        return None
    kind = task_kind(model)
    # As SciKeras sizes the model: the classes among the fit's own rows.
    n_classes = len(np.unique(y_fit)) if kind != "regression" else 1
    names = set(metric_names(kind, n_classes)) - STEP_METRICS
    task = TaskInfo(kind=kind, n_features=int(x_fit.shape[1]), n_classes=n_classes)
    return ValidationMetrics(task, names, np.asarray(x_fit[trained:], dtype="float32"), y_fit[trained:])


def _learning_rate_callback(model: Any) -> Any:
    """The candidate's ``lr_schedule``, as every engine applies it (see :mod:`hpsearch.spaces.schedules`)."""
    from hpsearch.spaces.schedules import LearningRateCallback

    params = model.get_params(deep=False)
    return LearningRateCallback({
        "lr_schedule": params.get(MODEL_PREFIX + "lr_schedule", DEFAULTS["lr_schedule"]),
        "learning_rate": params.get(MODEL_PREFIX + "learning_rate", DEFAULTS["learning_rate"]),
        "epochs": params["epochs"],
    })


def _ignore_epoch(epoch: int, logs: Mapping[str, Any]) -> None:
    return None
