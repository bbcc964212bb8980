"""Fold fits without Keras' ``fit`` machinery: the scikit-learn engine's ``--trainer hpsearch``.

``--trainer scikeras`` (the default) fits each (candidate, fold) as ``GridSearchCV`` does, through
SciKeras' ``fit``, so its scores are ``GridSearchCV``'s to the bit. On a short fold most of that fit is not
arithmetic but machinery: measured on the absenteeism grid's shape (breast_cancer, 2 epochs, a compiled
model reused per structure), a fold's fit took about 1.0 s. Ten ``tf.data`` iterators (Keras' data adapter
per epoch, its validation pass, SciKeras' predict) cost 0.22 s; and every traced function's first call
after ``keras.backend.clear_session()`` or ``tf.random.set_seed`` (each clears TensorFlow's kernel cache,
and every SciKeras fit calls both) re-instantiated its kernels, 25-57 ms a call. The steps themselves take
milliseconds.

A direct fit trains the very same thing: the one builder's model with the candidate's loss, optimizer,
clipping, learning-rate schedule and epochs, on the same rows (the fold's training part less the last
``VALIDATION_SPLIT`` of it, which gives the ``val_*`` curves), class and row weights as Keras applies them,
scored by the same scikit-learn scorer on the held-out part. What differs is only the batch order: each
epoch visits the rows in an order drawn from (seed, epoch) alone, gathered from tensors already in memory
inside one traced function per epoch, with no ``tf.data`` pipeline and no ``fit`` loop. Scores therefore
agree with ``GridSearchCV``'s within the noise of the batch order, not to the bit.

The traced functions belong to a model, so they are kept per structure with it (as
:mod:`hpsearch.training.compiled_models` keeps models for SciKeras' fits): a fit builds its fresh model for
its
starting state (weights, dropout seeds, optimizer), copies that state into the cached model of its
structure, and calls the functions already traced, whose kernels stay cached: it neither clears the
Keras session nor sets TensorFlow's global seed. Measured in one process on the same candidates: 0.125 s
per fold against 1.2 s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
from hpsearch.spaces import TaskInfo, build_model, target_statistics
from hpsearch.spaces.compile_sklearn import MODEL_PREFIX
from hpsearch.spaces.metrics import STEP_METRICS
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from .compiled_models import CompiledModels
from .epoch_loop import Trainee, train_epochs
from .fit import EpochRecorderCallback, NonFiniteLossError, ValidationMetrics

#: Builder parameters that only set starting values of variables, never the traced functions.
_UNTRACED = frozenset({"kernel_initializer", "learning_rate", "batch_size", "epochs"})


class _Traced:
    """A model of one structure with its traced epoch, validation and prediction functions."""

    def __init__(self, model: Any, weighted: bool) -> None:
        import tensorflow as tf

        self.model = model
        features = tf.TensorSpec([None, *model.inputs[0].shape[1:]], model.inputs[0].dtype)
        rows = tf.TensorSpec([None], tf.int64)
        batch = tf.TensorSpec([], tf.int64)
        targets = tf.TensorSpec([None], tf.float32)
        weights = tf.TensorSpec([None], tf.float32)

        def train_epoch(x: Any, y: Any, w: Any, order: Any, batch_size: Any) -> None:
            count = tf.shape(order, out_type=tf.int64)[0]
            steps = (count + batch_size - 1) // batch_size
            for step in tf.range(steps):
                index = order[step * batch_size:(step + 1) * batch_size]
                data = (tf.gather(x, index), tf.gather(y, index))
                model.train_step((*data, tf.gather(w, index)) if weighted else data)

        signature = [features, targets, weights, rows, batch]
        self.train_epoch = tf.function(train_epoch, input_signature=signature)
        self.validate = tf.function(lambda x, y: model.test_step((x, y)),
                                    input_signature=[features, targets])
        self.predict = tf.function(lambda x: model(x, training=False), input_signature=[features])


class TracedModels(CompiledModels):
    """One process's traced models, by structure (see the module's docstring)."""

    def adopt(self, fresh: Any, key: Hashable, weighted: bool = False) -> _Traced:  # type: ignore[override]
        """The traced model to train in place of ``fresh``, holding ``fresh``'s starting state."""
        key = (key, weighted)
        entry = self._models.get(key)
        if entry is not None and self._restart(entry.model, fresh):
            self.hits += 1
            self._models.move_to_end(key)
            return entry
        self.misses += 1
        fresh.optimizer.build(fresh.trainable_variables)
        entry = _Traced(fresh, weighted)
        self._models[key] = entry
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
        return entry


def builder_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """The builder's configuration of an estimator's parameters (``model__<name>``, batch size, epochs)."""
    # Every routed key: a model function's own parameters and its reference (``model``) too.
    config = {name.removeprefix(MODEL_PREFIX): value for name, value in params.items()
              if name.startswith(MODEL_PREFIX)}
    config["batch_size"] = int(params["batch_size"])
    config["epochs"] = int(params["epochs"])
    return config


class _FittedClassifier(ClassifierMixin, BaseEstimator):
    """What a scorer needs of a fitted classifier: ``classes_``, ``predict_proba`` and ``predict``, as
    SciKeras' ``KerasClassifier`` answers them (a one-unit sigmoid output is the positive class)."""

    def __init__(self, predict_raw: Callable[[Any], np.ndarray], classes: np.ndarray) -> None:
        self.predict_raw = predict_raw
        self.classes_ = classes

    def predict_proba(self, x: Any) -> np.ndarray:
        raw = np.asarray(self.predict_raw(x), dtype=np.float64)
        if raw.ndim == 1 or raw.shape[1] == 1:
            positive = raw.reshape(-1)
            return np.stack([1.0 - positive, positive], axis=1)
        return raw

    def predict(self, x: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(x), axis=1)]


class _FittedRegressor(RegressorMixin, BaseEstimator):
    """What a scorer needs of a fitted regressor: ``predict`` in target units and ``target_std_``."""

    def __init__(self, predict_raw: Callable[[Any], np.ndarray], target_std: float) -> None:
        self.predict_raw = predict_raw
        self.target_std_ = target_std

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.predict_raw(x), dtype=np.float64).reshape(len(x), -1)[:, 0]


def fit_fold_directly(
    kind: str,
    params: Mapping[str, Any],
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    w_fit: np.ndarray | None,
    class_weight: Mapping[int, float] | None,
    *,
    seed: int,
    validation_split: float,
    on_epoch: Callable[[int, Mapping[str, Any]], None],
    traced_models: TracedModels,
) -> tuple[Any, int, str | None]:
    """Train one fold's model on ``x_fit`` (its last ``validation_split`` held out for the ``val_*``
    curves); returns the fitted estimator to score, the epochs run, and why the loss diverged (or None).

    Errors of the configuration (it cannot be built, a callback fails) raise, as SciKeras' fit would.
    """
    import tensorflow as tf
    from hpsearch.spaces.objectives import metric_names
    from hpsearch.spaces.schedules import LearningRateCallback

    config = builder_config(params)
    trained = int(math.floor(len(x_fit) * (1.0 - validation_split)))
    trained = trained if trained > 0 else len(x_fit)
    y_column = np.asarray(y_fit)
    if kind == "regression":
        classes = None
        mean, std = target_statistics(y_column[:trained])
        task = TaskInfo(kind=kind, n_features=int(x_fit.shape[1]), n_classes=1, target_mean=mean,
                        target_std=std)
        targets = y_column.astype("float32")
    else:
        # As SciKeras encodes a classifier's target: the classes among the fit's rows, as 0..n-1.
        classes = np.unique(y_column)
        task = TaskInfo(kind=kind, n_features=int(x_fit.shape[1]), n_classes=len(classes))
        targets = np.searchsorted(classes, y_column).astype("float32")
    weights = _row_weights(y_column[:trained], w_fit, class_weight, trained)
    _seed_build(seed)
    fresh = build_model(config, task, metrics=STEP_METRICS)
    key = (kind, task, tuple(sorted((name, repr(value)) for name, value in config.items()
                                    if name not in _UNTRACED)))
    traced = traced_models.adopt(fresh, key, weights is not None)
    model = traced.model
    features = tf.constant(np.asarray(x_fit, dtype="float32"))
    x_train, x_val = features[:trained], features[trained:]
    y_train, y_val = tf.constant(targets[:trained]), tf.constant(targets[trained:])
    w_train = tf.constant(weights if weights is not None else np.zeros(0, dtype="float32"))
    has_validation = trained < len(x_fit)
    validation_only = set(metric_names(kind, task.n_classes)) - STEP_METRICS
    # The recorder writes each epoch, and stops the fit when the loss diverges (its ``non_finite``).
    recorder = EpochRecorderCallback(on_epoch)
    callbacks = [LearningRateCallback(config), recorder]
    if has_validation:
        callbacks.insert(0, ValidationMetrics(task, validation_only, x_val, y_val))
    trainee = Trainee(model, callbacks)
    batch_size = tf.constant(config["batch_size"], dtype=tf.int64)
    seed_tensor = tf.constant(seed % 2**31, dtype=tf.int64)

    def train_epoch(epoch: int) -> None:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(trained, dtype=tf.int64), seed=tf.stack([seed_tensor, tf.constant(epoch, tf.int64)]))
        traced.train_epoch(x_train, y_train, w_train, order, batch_size)

    validate = (lambda: [traced.validate(x_val, y_val)]) if has_validation else None
    train_epochs([trainee], config["epochs"], train_epoch, validate)
    if trainee.error is not None and not isinstance(trainee.error, NonFiniteLossError):
        raise trainee.error  # a callback failed: the configuration's error, as in SciKeras' fit
    diverged = recorder.non_finite

    def predict_raw(x: Any) -> np.ndarray:
        return traced.predict(tf.constant(np.asarray(x, dtype="float32"))).numpy()

    if classes is None:
        return _FittedRegressor(predict_raw, task.target_std), trainee.epochs_run, diverged
    return _FittedClassifier(predict_raw, classes), trainee.epochs_run, diverged


def _seed_build(seed: int) -> None:
    """``keras.utils.set_random_seed`` without its ``tf.random.set_seed``: the same initial weights and
    dropout seeds (Keras draws them from its own seed generator, reset here, and Python's ``random``).

    Setting TensorFlow's global seed clears its kernel cache (as ``clear_session`` does, see
    ``release``); nothing a direct fit runs draws from that seed.
    """
    import random

    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def _row_weights(labels: np.ndarray, w_fit: np.ndarray | None, class_weight: Mapping[int, float] | None,
                 trained: int) -> np.ndarray | None:
    """Per-row weights of the training loss, as SciKeras passes them to Keras: ``sample_weight`` times
    ``class_weight`` looked up by each row's class label; None when every row weighs 1."""
    if w_fit is None and not class_weight:
        return None
    weights = np.ones(trained, dtype="float32")
    if w_fit is not None:
        weights *= np.asarray(w_fit[:trained], dtype="float32")
    if class_weight:
        weights *= np.array([float(class_weight.get(int(label), 1.0)) for label in labels], dtype="float32")
    return weights


def release() -> None:
    """Between fits: collect the last fit's fresh model (young generations only: the traced models stay).

    Not ``keras.backend.clear_session()``, which also clears TensorFlow's kernel cache: every traced
    function's next call then instantiates its kernels again, about 25 ms each, 0.4 s per fold here.
    Nothing else of the session shapes a direct fit: its build is seeded (``seed_everything`` resets
    Keras' global seed generator), its batch order and dropout are stateless.
    """
    import gc

    gc.collect(1)
