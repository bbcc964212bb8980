"""SciKeras estimators around the one model builder: what a scikit-learn fold fit trains.

The search side (``hpsearch.engines.sklearn``) makes the base estimator of a search from these classes;
a fold fit (:mod:`hpsearch.training.fold_fitting`), wherever it runs (this process, a fold process, a Dask
worker), clones and fits it. They live in the training layer because a fold process or a Dask worker
unpickles them: running a fold must not import an engine.

Importing this module imports SciKeras, and with it Keras and TensorFlow: only the sklearn engine's run
(and the processes that fit its folds) import it.

Tested together: scikit-learn 1.9.1, SciKeras 0.13.0, Keras 3.15.1, TensorFlow 2.21
(``tests/test_sklearn_wrapper.py`` exercises ``fit``/``score``/``get_params``/``clone`` so that an
incompatible upgrade fails in CI).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from hpsearch.spaces import DEFAULTS, TaskInfo, build_model, target_statistics
from hpsearch.spaces.compile_sklearn import MODEL_PREFIX, WRAPPER_PARAMS
from hpsearch.spaces.metrics import STEP_METRICS
from scikeras.wrappers import KerasClassifier, KerasRegressor
from sklearn.utils import ClassifierTags, RegressorTags

from .compiled_models import CompiledModels
from .fit import fresh_keras_session, use_epoch_executions

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
    add the other ``val_*`` curves once per epoch (``hpsearch.training.fold_fitting.fit_and_score``).
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
#: ``hpsearch.training.fold_fitting.fit_and_score``); None: the fit trains the model it builds, as plain
#: SciKeras does.
_COMPILED_MODELS: CompiledModels | None = None


@contextlib.contextmanager
def reusing(compiled_models: CompiledModels | None) -> Iterator[None]:
    """Within this block, a fit of this process trains the cached compiled model of its structure from
    ``compiled_models`` (None: the model it builds, as plain SciKeras does)."""
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
    - Inside ``reusing`` (``hpsearch.training.fold_fitting.fit_and_score`` given compiled models), the
      fresh model gives its starting state to the cached compiled model of its structure, which is
      trained instead (no tracing).
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
        tags.classifier_tags = ClassifierTags()
        return _supervised(tags, "classifier")


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
        tags.regressor_tags = RegressorTags()
        return _supervised(tags, "regressor")


def _supervised(tags: Any, estimator_type: str) -> Any:
    """``tags`` of an estimator of ``estimator_type`` that needs a target (see ``SearchClassifier``)."""
    tags.estimator_type = estimator_type
    tags.target_tags.required = True
    return tags
