"""SciKeras estimators around the one model builder, and fitting and scoring one cross-validation fold.

Importing this module imports SciKeras, and with it Keras and TensorFlow: only the sklearn engine's run
(and the processes it starts for parallel folds) import it.

Tested together: scikit-learn 1.9.1, SciKeras 0.13.0, Keras 3.15.1, TensorFlow 2.21
(``tests/test_sklearn_wrapper.py`` exercises ``fit``/``score``/``get_params``/``clone`` so that an
incompatible upgrade fails in CI).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hpsearch.spaces import DEFAULTS, SpaceError, TaskInfo, build_model, target_statistics
from hpsearch.spaces.compile_sklearn import MODEL_PREFIX, WRAPPER_PARAMS
from hpsearch.spaces.metrics import STEP_METRICS
from hpsearch.storage import StorageError, TrialConflictError
from scikeras.wrappers import KerasClassifier, KerasRegressor
from sklearn.utils import ClassifierTags, RegressorTags

from ...training.compiled_models import CompiledModels
from ...training.fit import (
    EpochRecorderCallback,
    describe_error,
    fresh_keras_session,
    use_epoch_executions,
)
from .direct import TracedModels, fit_fold_directly, release

#: Share of each training fold that Keras holds out (``validation_split``) for the ``val_*`` curves.
#: The fold's score comes from its own held-out part, which training never sees.
VALIDATION_SPLIT = 0.1

#: Builder parameters SciKeras passes to the model function (everything but its own fit parameters).
MODEL_PARAMS = tuple(name for name in DEFAULTS if name not in WRAPPER_PARAMS)


def build_for_scikeras(task_kind: str, meta: Mapping[str, Any], **config: Any) -> Any:
    """SciKeras' ``model=``: our one builder, sized from the data SciKeras saw (``meta``).

    The model comes back compiled, and SciKeras keeps a compiled model as it is (it compiles only an
    uncompiled one), so loss, metrics and optimizer are the builder's whichever engine runs. Its training
    step updates the loss and the cheap metrics only (``hpsearch.spaces.metrics.STEP_METRICS``), as a search
    trial's does: a fold is scored by scikit-learn's scorer on its held-out rows, and the engine's fits
    add the other ``val_*`` curves once per epoch (``fit_and_score``).
    """
    # Every fit starts from a fresh Keras session: it frees the previous fit's graph, and it makes the
    # fit independent of what ran before in this process (Keras keeps its unseeded random generator in
    # the session), so a seeded GridSearchCV and our own fold loop train the very same models.
    # A process reusing compiled models keeps them alive: a full collection would walk them all.
    fresh_keras_session(full_collection=_COMPILED_MODELS is None)
    task = TaskInfo(
        kind=task_kind,
        n_features=int(meta["n_features_in_"]),
        n_classes=int(meta.get("n_classes_") or 1),
        # Set by SearchRegressor from the fit's own training rows (each fold's, never its held-out part).
        target_mean=float(meta.get("target_mean_", 0.0)),
        target_std=float(meta.get("target_std_", 1.0)),
    )
    return build_model(config, task, metrics=STEP_METRICS)


def task_kind(estimator: Any) -> str:
    """The task kind (binary, multiclass, regression) ``make_estimator`` made ``estimator`` for."""
    return estimator.get_params()["model"].args[0]


# SciKeras passes `meta`, `compile_kwargs` and `params` to a function taking **kwargs, and only the
# routed `model__*` parameters to one that names them: name every builder parameter explicitly.
build_for_scikeras.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("task_kind", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("meta", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=DEFAULTS[name])
          for name in MODEL_PARAMS),
    ]
)


#: Builder parameters that only set starting values of variables (the weights, the optimizer's learning
#: rate), never the traced functions: fits that differ only in them share one compiled model.
UNTRACED_PARAMS = frozenset({"kernel_initializer", "learning_rate"})

#: The compiled models the fit running in this process may train instead of its fresh model (see
#: ``fit_and_score``); None: the fit trains the model it builds, as plain SciKeras does.
_COMPILED_MODELS: CompiledModels | None = None


@contextlib.contextmanager
def _reusing(compiled_models: CompiledModels | None) -> Iterator[None]:
    global _COMPILED_MODELS
    outer, _COMPILED_MODELS = _COMPILED_MODELS, compiled_models
    try:
        yield
    finally:
        _COMPILED_MODELS = outer


class _SearchFits:
    """What a search fit does beyond SciKeras' own ``_initialize``.

    - ``steps_per_execution`` auto (0) runs an epoch in one execution, as search trials do
      (hpsearch.training.fit.use_epoch_executions); the rows Keras trains on are those left by its own
      ``validation_split`` (the first floor(n * (1 - validation_split))).
    - Inside ``fit_and_score`` given compiled models, the fresh model gives its starting state to the
      cached compiled model of its structure, which is trained instead (no tracing).
    """

    def _trained_rows(self, rows: int) -> int:
        """How many of a fit's ``rows`` Keras trains on: the first floor(n * (1 - validation_split))."""
        return int(math.floor(rows * (1.0 - float(self.validation_split or 0.0))))  # type: ignore[attr-defined]

    def _initialize(self, X: Any, y: Any = None) -> Any:
        result = super()._initialize(X, y)  # type: ignore[misc]
        steps = math.ceil(max(1, self._trained_rows(len(X))) / int(self.batch_size or 32))  # type: ignore[attr-defined]
        params = self.get_params()  # type: ignore[attr-defined]
        knob = params.get(MODEL_PREFIX + "steps_per_execution", DEFAULTS["steps_per_execution"])
        use_epoch_executions(self.model_, {"steps_per_execution": knob}, steps)  # type: ignore[has-type]
        if _COMPILED_MODELS is not None:
            self.model_ = _COMPILED_MODELS.adopt(self.model_, self._structure_key(params))
        return result

    def _structure_key(self, params: Mapping[str, Any]) -> tuple:
        """Everything that shapes the model's traced functions (see
        :mod:`hpsearch.training.compiled_models`)."""
        model_params = sorted((name, repr(value)) for name, value in params.items()
                              if name.startswith(MODEL_PREFIX)
                              and name.removeprefix(MODEL_PREFIX) not in UNTRACED_PARAMS)
        meta = tuple(repr(getattr(self, name, None))
                     for name in ("n_features_in_", "n_classes_", "target_mean_", "target_std_"))
        return (type(self).__name__, tuple(model_params), meta, int(self.model_.steps_per_execution))


class SearchClassifier(_SearchFits, KerasClassifier):
    """``KerasClassifier`` that scikit-learn >= 1.6 recognises as a classifier.

    SciKeras 0.13 lists ``ClassifierMixin`` after ``BaseEstimator`` in its bases, so the mixin's tags are
    lost and ``is_classifier`` says False: ``GridSearchCV(cv=5)`` would then split with plain ``KFold``
    instead of ``StratifiedKFold``, and probability scorers (``neg_log_loss``, ``roc_auc``) refuse it.
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        tags.target_tags.required = True
        return tags


class SearchRegressor(_SearchFits, KerasRegressor):
    """``KerasRegressor`` that scikit-learn >= 1.6 recognises as a regressor (see ``SearchClassifier``),
    whose model learns the standardized target.

    Each fit computes ``target_mean_`` and ``target_std_`` from the rows Keras trains on (the fit's rows
    less the ``validation_split`` Keras holds out at their end); SciKeras hands them to the model function
    in ``meta``, and the builder ends the model with the fixed layer that maps the standardized output
    back to target units. A cross-validation fold's held-out rows never shape its model.
    """

    def _initialize(self, X: Any, y: Any = None) -> Any:
        if y is not None:
            rows = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
            trained = self._trained_rows(len(rows))
            self.target_mean_, self.target_std_ = target_statistics(rows[:trained] if trained else rows)
        return super()._initialize(X, y)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        tags.target_tags.required = True
        return tags


def make_estimator(
    task_kind: str,
    config: Mapping[str, Any],
    *,
    seed: int,
    class_weight: Mapping[int, float] | None = None,
    validation_split: float = VALIDATION_SPLIT,
) -> SearchClassifier | SearchRegressor:
    """The base estimator of a search: ``config`` (defaults and fixed values) as its parameters.

    ``batch_size`` and ``epochs`` are SciKeras' own parameters; every other builder parameter is
    ``model__<name>``. ``random_state`` makes SciKeras seed Python, NumPy and TensorFlow (and turn on op
    determinism) around each build and fit, so every fold of every candidate is reproducible.
    """
    kwargs: dict[str, Any] = {
        "model": functools.partial(build_for_scikeras, task_kind),
        "batch_size": int(config["batch_size"]),
        "epochs": int(config["epochs"]),
        "random_state": seed,
        "validation_split": validation_split,
        "verbose": 0,
        **{MODEL_PREFIX + name: config[name] for name in MODEL_PARAMS if name in config},
    }
    if task_kind == "regression":
        return SearchRegressor(**kwargs)
    return SearchClassifier(class_weight=dict(class_weight) if class_weight else None, **kwargs)


def check_routing(estimator: Any, keys: list[str], source: str) -> None:
    """Refuse, before any fit, a compiled key the estimator does not have.

    SciKeras' ``set_params`` accepts any ``model__*`` name without checking it, so a misrouted key
    would only fail inside the first fit, or be silently ignored.
    """
    known = estimator.get_params(deep=False)
    unknown = [key for key in keys if key not in known]
    if unknown:
        routed = ", ".join(sorted(name for name in known if name.startswith(MODEL_PREFIX)))
        raise SpaceError(
            f"the compiled scikit-learn grid has parameter(s) {', '.join(map(repr, unknown))} that the "
            f"SciKeras estimator {type(estimator).__name__} does not take; it takes batch_size, epochs and "
            f"{routed}",
            source=source,
        )


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
    ``trainer`` ``hpsearch`` fits directly (:mod:`hpsearch.engines.sklearn.direct`), with ``compiled_models``
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
    with _reusing(compiled_models):
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

    from ...training.fit import ValidationMetrics

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


# -- parallel folds ---------------------------------------------------------------------------------------
#: What a fold process keeps between folds: its own storage connection, the data and the base estimator.
_FOLD_PROCESS: dict[str, Any] = {}


def init_fold_process(
    threads: int,
    storage_url: str,
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    estimator: Any,
    scoring: str,
    trainer: str = "scikeras",
) -> None:
    """Start-up of a process that fits folds for ``--jobs N``, called by
    ``hpsearch.executors.process_setup.start_fold_process``.

    Sizes TensorFlow's thread pools (``threads`` each, so N processes share the cores instead of each
    taking all of them) before TensorFlow runs anything.
    """
    import os

    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from hpsearch.storage import open_storage

    from ...training.scoring import scorer

    _FOLD_PROCESS.update(
        storage=open_storage(storage_url, create=False), x=x, y=y, sample_weight=sample_weight,
        estimator=estimator, scorer=scorer(estimator, scoring), trainer=trainer,
        compiled_models=fit_cache(trainer),
    )


def fit_fold_in_process(
    trial_id: int, params: Mapping[str, Any], fold: int, train: np.ndarray, test: np.ndarray
) -> FoldResult:
    """One fold in a fold process; its epochs go straight to the trial's rows."""
    from ...training.recorder import plain_metrics

    state = _FOLD_PROCESS
    storage = state["storage"]

    def on_epoch(epoch: int, logs: Mapping[str, Any]) -> None:
        storage.record_epoch(trial_id, epoch, plain_metrics(logs), fold=fold)

    try:
        return fit_and_score(
            state["estimator"], params, state["x"], state["y"], train, test, state["scorer"], fold=fold,
            sample_weight=state["sample_weight"], on_epoch=on_epoch, compiled_models=state["compiled_models"],
            trainer=state["trainer"],
        )
    finally:
        if state["trainer"] == "hpsearch":
            release()  # SciKeras' fits are released by the builder, before the next build
