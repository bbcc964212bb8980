"""Training one configuration: the step every engine shares.

Whichever engine proposed a configuration, it is built by the one model builder and trained here, so one
config gives one architecture and one training procedure across engines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import interrupts
from ..seeds import epoch_order_seed

if TYPE_CHECKING:
    import numpy as np
    from hpsearch.spaces import TaskInfo

    from ..data import Dataset
    from .checkpoints import EpochCheckpoint


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: the trial fails with this reason, the search goes on."""


@dataclass(frozen=True)
class FitResult:
    """What one training run produced: per-epoch history and the objective read from it."""

    history: dict[str, list[float]]
    value: float | None
    best_epoch: int | None
    epochs_run: int
    #: Epochs of this fit restored from a checkpoint rather than trained (None: trained from the start).
    resumed_at: int | None = None

    @property
    def final_metrics(self) -> dict[str, float]:
        return {name: values[-1] for name, values in self.history.items() if values}


def objective_value(
    history: Mapping[str, Sequence[float]], objective: str, direction: str
) -> tuple[float | None, int | None]:
    """The best epoch's objective value (as KerasTuner scores trials) and that epoch's index.

    Non-finite epochs never count as best.
    """
    values = history.get(objective)
    if not values:
        return None, None
    finite = [(value, epoch) for epoch, value in enumerate(values) if math.isfinite(value)]
    if not finite:
        return None, None
    pick = min if direction == "minimize" else max
    value, epoch = pick(finite, key=lambda pair: pair[0])
    return float(value), epoch


def non_finite_loss(loss: float, epoch: int) -> str:
    """Why a trial whose loss diverged in (0-based) ``epoch`` fails."""
    return f"loss became {loss} at epoch {epoch + 1}"


def _keras_callback_base() -> type:
    import keras

    return keras.callbacks.Callback


def EpochRecorderCallback(write_epoch: Callable[[int, Mapping[str, Any]], None]) -> Any:  # noqa: N802
    """Build the Keras callback that hands each epoch's logs to ``write_epoch``.

    A factory rather than a module-level class so that importing this module does not import Keras.
    It stops training on a non-finite loss (like ``TerminateOnNaN``) and remembers why, so the caller
    can fail the trial with that reason.
    """

    class _EpochRecorder(_keras_callback_base()):
        def __init__(self) -> None:
            super().__init__()
            self.non_finite: str | None = None

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            interrupts.raise_if_requested()  # an interrupt dropped inside a finalizer (hpsearch.interrupts)
            logs = logs or {}
            write_epoch(epoch, logs)
            loss = logs.get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.non_finite = non_finite_loss(float(loss), epoch)
                self.model.stop_training = True

        #: A trial continued from a checkpoint hands its earlier epochs over again
        # (hpsearch.training.checkpoints).
        replay_epoch = on_epoch_end

    return _EpochRecorder()


def step_metric_names(objective: str) -> set[str]:
    """The metrics a search trial updates on every training batch: the cheap ones
    (``hpsearch.spaces.metrics.STEP_METRICS``), and the objective when it is a training-side metric."""
    from hpsearch.spaces.metrics import STEP_METRICS

    return set(STEP_METRICS) | ({objective} if not objective.startswith("val_") else set())


#: One scorer per (task kind, classes, metric names) in a process: see ``ValidationMetrics``.
_VALIDATION_SCORERS: dict[tuple[str, int, tuple[str, ...]], Any] = {}


def _validation_scorer(task: TaskInfo, names: tuple[str, ...]) -> Any:
    """A function scoring predictions with the task's metrics ``names``, from fresh state.

    It does not depend on the model, so it is made once per process and shared by every trial, where
    Keras would trace these metrics again into every model's training and test functions. On
    TensorFlow it is one traced function; on JAX the metrics run as they are, once per epoch (a traced
    function is TensorFlow's, and the metrics' few ops over one validation split cost less than a
    compile would).
    """
    import keras

    key = (task.kind, task.n_classes, names)
    if key not in _VALIDATION_SCORERS:
        from hpsearch.spaces.metrics import task_metrics

        metrics = task_metrics(task.kind, task.n_classes, names)

        def score(y_true: Any, y_pred: Any) -> dict[str, Any]:
            results = {}
            for metric in metrics:
                metric.reset_state()
                metric.update_state(y_true, y_pred)
                results[metric.name] = metric.result()
            return results

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            score = tf.function(score, reduce_retracing=True)
        _VALIDATION_SCORERS[key] = score
    return _VALIDATION_SCORERS[key]


def ValidationMetrics(task: TaskInfo, names: Collection[str], x_val: Any, y_val: Any) -> Any:  # noqa: N802
    """The Keras callback (put it first) that adds ``val_<name>`` for the task's metrics ``names`` to each
    epoch's logs, scored on the whole validation split at the epoch's end.

    These are the metrics left out of the training step (``step_metric_names``): the callbacks after
    this one, the recorder and the pruner among them, see the same ``val_*`` logs as before. The
    metrics accumulate over rows, so one call over the split gives what Keras' batched evaluation gave.
    """
    import keras

    ordered = tuple(sorted(names))
    score = _validation_scorer(task, ordered) if ordered else None
    features, labels = keras.ops.convert_to_tensor(x_val), keras.ops.convert_to_tensor(y_val)

    class _ValidationMetrics(_keras_callback_base()):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if score is None or logs is None:
                return
            loss = logs.get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                return  # the trial fails on this epoch
            predictions = self.model(features, training=False)
            for name, value in score(labels, predictions).items():
                logs[f"val_{name}"] = float(value)

    return _ValidationMetrics()


def task_info(dataset: Dataset) -> TaskInfo:
    """What the builder needs of ``dataset``: task, widths and, for regression, the train split's target
    mean and standard deviation (so no validation or test row shapes the model)."""
    from hpsearch.spaces import TaskInfo, target_statistics

    mean, std = target_statistics(dataset.y_train) if dataset.task == "regression" else (0.0, 1.0)
    return TaskInfo(kind=dataset.task, n_features=dataset.n_features, n_classes=dataset.n_classes,
                    target_mean=mean, target_std=std)


#: Rows per validation batch. The validation split is scored in as few calls as possible (one, below this
#: size) rather than one per 32 rows; its metrics accumulate over rows, so their values do not change.
VALIDATION_BATCH_ROWS = 4096

_session_objects_frozen = False


def fresh_keras_session(*, full_collection: bool = True) -> None:
    """``keras.backend.clear_session()`` between fits, cheap in a long-lived process.

    Its ``gc.collect()`` walks every object the process holds, most of them TensorFlow's and Keras' own
    module state: about 0.25 s per fit here. After the first call the survivors are moved out of the
    collector's sight (``gc.freeze``), so later collections walk only what trials since created; a model
    of an ended trial is still collected.

    ``full_collection=False`` collects the young generations only, for a process that keeps compiled
    models alive between fits (:mod:`hpsearch.training.compiled_models`): a full collection walks all their
    traced
    graphs at every fit (32 ms per fit growing to 124 ms as a fold process's cache filled; 2 ms young),
    and Python's own full collections free what the young ones leave (peak memory over 192 fits: 856 MB
    against 852 MB).
    """
    import gc

    import keras

    global _session_objects_frozen
    keras.backend.clear_session(free_memory=False)
    if full_collection or not _session_objects_frozen:
        gc.collect()
    else:
        gc.collect(1)
    if not _session_objects_frozen:
        gc.freeze()
        _session_objects_frozen = True


#: Fewest steps per epoch for which ``steps_per_execution`` auto runs an epoch in one execution. The
#: loop over an epoch's steps costs about 0.2 s more to trace, once per model, and saves a little per
#: step: measured on digits (lean metrics, 2x64 relu, 10 epochs), 1.45 s against 1.51 at 34 steps per
#: epoch, but 1.48 s against 1.36 at 9.
EPOCH_EXECUTION_MIN_STEPS = 32


def use_epoch_executions(model: Any, config: Mapping[str, Any], steps: int) -> None:
    """Resolve ``steps_per_execution`` 0 (auto): run all ``steps`` of an epoch in one execution when the
    epoch has at least ``EPOCH_EXECUTION_MIN_STEPS`` steps, else one step per execution.

    Keras then returns to Python once per epoch instead of once per batch. Every callback of a search
    trial (recorder, pruner, checkpoint, learning-rate schedule) acts per epoch, so none misses a batch;
    the arithmetic is the same, and so are the values (checked bit for bit on digits).
    """
    from hpsearch.spaces.hyperparameters import AUTO_EXECUTION_STEPS, DEFAULTS

    auto = int(config.get("steps_per_execution", DEFAULTS["steps_per_execution"])) == AUTO_EXECUTION_STEPS
    if auto and steps >= EPOCH_EXECUTION_MIN_STEPS:
        model.steps_per_execution = int(steps)


def seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def training_weights(dataset: Dataset) -> np.ndarray | None:
    """Per-row weights of the training loss: the dataset's row weights, or its class weights looked up
    per row (what Keras' ``class_weight`` does); validation scores stay unweighted."""
    import numpy

    if dataset.w_train is not None:
        return numpy.asarray(dataset.w_train, dtype="float32")
    if dataset.class_weight:
        classes = numpy.asarray(dataset.y_train).astype("int64")
        return numpy.array([dataset.class_weight.get(int(c), 1.0) for c in classes], dtype="float32")
    return None


def epoch_batches(dataset: Dataset, batch_size: int, seed: int, first_epoch: int,
                  epochs: int) -> tuple[Any, int]:
    """The training batches of epochs ``first_epoch`` to ``epochs - 1`` as one ``tf.data`` stream, and the
    number of batches per epoch.

    Epoch ``e`` visits the rows in an order drawn from ``(seed, e)`` alone (a stateless shuffle), where
    Keras' own shuffle draws from a random state that lives only in the process. So a trial continued
    from its checkpoint after epoch E sees exactly the batches the uninterrupted trial would have seen,
    and the curve after E is the same, bit for bit. Measured here it is also a little faster than fitting
    on NumPy arrays (1.44 s against 1.88 s for 6 epochs of digits).
    """
    import tensorflow as tf

    rows = len(dataset.x_train)
    steps = max(1, math.ceil(rows / batch_size))
    weights = training_weights(dataset)
    columns = [tf.constant(dataset.x_train), tf.constant(dataset.y_train)]
    if weights is not None:
        columns.append(tf.constant(weights))
    stream_seed = tf.constant(epoch_order_seed(seed), dtype=tf.int64)

    def one_epoch(epoch: Any) -> Any:
        order = tf.random.experimental.stateless_shuffle(tf.range(rows, dtype=tf.int64),
                                                         seed=tf.stack([stream_seed, epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    batches = (tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
               .map(lambda index: tuple(tf.gather(column, index) for column in columns))
               .prefetch(2))
    return batches, steps


def validation_batches(dataset: Dataset) -> Any:
    """The validation split as a ``tf.data`` stream of ``VALIDATION_BATCH_ROWS``-row batches.

    Keras validates every epoch by starting a new iterator over ``validation_data``. Over NumPy arrays
    that iterator is Keras' slicing pipeline, which costs tens of ms to start whatever the row count; over
    plain tensor slices it costs about 1 ms (a trial's fixed cost per epoch on digits fell from about 78 to
    43 ms here, ``scripts/bench_throughput.py``'s probe). The batches, their order and so the scores are
    the same.
    """
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices((dataset.x_val, dataset.y_val))
            .batch(max(1, min(len(dataset.x_val), VALIDATION_BATCH_ROWS))))


def fit_config(
    config: Mapping[str, Any],
    dataset: Dataset,
    *,
    objective: str,
    direction: str,
    callbacks: Sequence[Any] = (),
    seed: int = 0,
    epochs: int | None = None,
    initial_epoch: int = 0,
    prepare_model: Callable[[Any], None] | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> FitResult:
    """Build ``config`` with the shared model builder and train it on the dataset's train split.

    Validation uses the dataset's validation split; the test split is never seen during search.
    ``prepare_model`` is called with the built model before training (a Hyperband round loads the weights
    of the round it continues, and trains from ``initial_epoch`` to ``epochs``).
    With ``checkpoint``, training continues from the checkpoint's last epoch when there is one (its epochs
    are replayed to the callbacks and head the returned history) and rewrites it after every epoch.
    Raises ``NonFiniteLossError`` when the loss diverges.
    """

    from hpsearch.spaces import build_model
    from hpsearch.spaces.objectives import metric_names
    from hpsearch.spaces.schedules import LearningRateCallback

    from .checkpoints import replay

    seed_everything(seed)
    task = task_info(dataset)
    total = int(epochs if epochs is not None else config["epochs"])
    stepped = step_metric_names(objective)
    try:
        model = build_model(config, task, metrics=stepped)
        if prepare_model is not None:
            prepare_model(model)
        # First, the validation-only metrics, so that every callback after it sees them; then the
        # learning rate of the epoch (lr_schedule), logged for the callbacks after it.
        validation_only = set(metric_names(task.kind, task.n_classes)) - stepped
        callback_list = [ValidationMetrics(task, validation_only, dataset.x_val, dataset.y_val),
                         LearningRateCallback(config), *callbacks]
        restored = checkpoint.restore(model, callback_list) if checkpoint is not None else None
        start, past = initial_epoch, {}
        model.stop_training = False
        if restored is not None:
            start, past = restored.done, restored.history
            replay(callback_list, model, initial_epoch, restored)
        if checkpoint is not None:
            callback_list.append(checkpoint.keras_callback(initial_epoch, restored, callback_list))
        new: dict[str, list[Any]] = {}
        if start < total and not model.stop_training:  # a pruner may have stopped it on a replayed epoch
            batches, steps = epoch_batches(dataset, int(config["batch_size"]), seed, start, total)
            use_epoch_executions(model, config, steps)
            new = model.fit(
                batches,
                steps_per_epoch=steps,
                shuffle=False,  # the stream is already in each epoch's seeded order
                validation_data=validation_batches(dataset),
                epochs=total,
                initial_epoch=start,
                callbacks=callback_list,
                verbose=0,
            ).history
        for callback in callback_list:
            reason = getattr(callback, "non_finite", None)
            if reason:
                raise NonFiniteLossError(reason)
        curves = {name: [float(v) for v in past.get(name, [])] + [float(v) for v in new.get(name, [])]
                  for name in {**past, **new}}
    finally:
        # Frees the graph and layer-name counters between trials; memory still grows a few MB per
        # trial inside one process, which is why long searches recycle worker processes.
        fresh_keras_session()
    value, best_epoch = objective_value(curves, objective, direction)
    epochs_run = len(next(iter(curves.values()), []))
    return FitResult(history=curves, value=value, best_epoch=best_epoch, epochs_run=epochs_run,
                     resumed_at=None if restored is None else restored.done - initial_epoch)


def describe_error(error: BaseException) -> str:
    """One line for the trial's error column: the exception type and its first line."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    name = type(error).__name__
    return f"{name}: {first}" if first else name
