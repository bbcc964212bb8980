"""The one model builder: a plain config dict and a task in, a compiled ``keras.Model`` out.

Every engine calls :func:`build_model`, so one config gives one architecture whichever engine
proposed it. Seeds are the caller's business: the builder never sets them, so a search can vary them
per trial and a retrain can pin them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SpaceError
from .hyperparameters import DEFAULTS, KNOBS, check_value, parse_value
from .limits import quoted
from .objectives import TASK_KINDS
from .space import MODEL_KEY

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class TaskInfo:
    """What the data asks of the output layer: the kind of task and the input/output widths."""

    kind: str
    n_features: int
    n_classes: int
    #: Regression only: mean and standard deviation of the target over the rows the model trains on (the
    #: train split, or a fold's training part; never validation or test rows). The model ends in a fixed
    #: affine layer ``output = target_mean + target_std * z``: it learns the standardized target ``z``,
    #: while its outputs, metrics and predictions stay in the target's own units.
    target_mean: float = 0.0
    target_std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise SpaceError(f"task kind must be one of {', '.join(TASK_KINDS)}, but got {quoted(self.kind)}")
        if self.n_features < 1:
            raise SpaceError(f"n_features must be >= 1, but got {self.n_features}")
        if self.kind == "multiclass" and self.n_classes < 2:
            raise SpaceError(f"a multiclass task needs n_classes >= 2, but got {self.n_classes}")
        if not (math.isfinite(self.target_mean) and math.isfinite(self.target_std) and self.target_std > 0):
            raise SpaceError(f"target_mean must be finite and target_std finite and > 0, but got "
                             f"{self.target_mean} and {self.target_std}")


def jit_compile_for(backend: str) -> bool:
    """Whether the builder compiles models with XLA on Keras' ``backend``.

    TensorFlow: no. Its graphs already run without XLA, and for these tiny MLPs on CPU XLA's compile
    time outweighs what it saves per step. JAX: yes. Without JIT, JAX runs every op eagerly from
    Python, about ten times slower.
    """
    return backend == "jax"


def target_statistics(y: Any) -> tuple[float, float]:
    """Mean and (population) standard deviation of regression targets, as :class:`TaskInfo` takes them.

    A constant (or empty) target has no scale to learn: its standard deviation is taken as 1, as
    :class:`hpsearch.data.Preprocessor` does for constant feature columns.
    """
    import numpy as np

    values = np.asarray(y, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return 0.0, 1.0
    mean, std = float(values.mean()), float(values.std())
    return mean, std if math.isfinite(std) and std > 0 else 1.0


_OPTIMIZER_CLASSES = {"sgd": "SGD", "adam": "Adam", "nadam": "Nadam", "rmsprop": "RMSprop", "adamw": "AdamW"}


def _initializer(text: str) -> Any:
    import keras

    spec = parse_value("kernel_initializer", text)
    if spec.name == "variance_scaling":
        return keras.initializers.VarianceScaling(**spec.args)
    return keras.initializers.get(spec.name)


def _regularizer(text: str) -> Any:
    import keras

    spec = parse_value("kernel_regularizer", text)
    if spec.name == "none":
        return None
    if spec.name == "l1":
        return keras.regularizers.L1(spec.args["l1"])
    if spec.name == "l2":
        return keras.regularizers.L2(spec.args["l2"])
    return keras.regularizers.L1L2(l1=spec.args["l1"], l2=spec.args["l2"])


def _constraint(text: str) -> Any:
    import keras

    spec = parse_value("kernel_constraint", text)
    return None if spec.name == "none" else keras.constraints.MaxNorm(spec.args["max_value"])


def _optimizer(config: Mapping[str, Any]) -> Any:
    import keras

    spec = parse_value("optimizer", config["optimizer"])
    kwargs: dict[str, Any] = {"learning_rate": config["learning_rate"]}
    if spec.name in ("sgd", "rmsprop"):
        kwargs["momentum"] = config["momentum"]
    if spec.name == "sgd":
        kwargs["nesterov"] = config["nesterov"]
    clipping = parse_value("clipping", config["clipping"])
    # Keras takes one clip kind per optimizer: a clip written in the optimizer string replaces the knob.
    if clipping.name != "none" and not {"clipnorm", "clipvalue"} & spec.args.keys():
        kwargs[clipping.name] = clipping.args[clipping.name]
    kwargs.update(spec.args)
    return getattr(keras.optimizers, _OPTIMIZER_CLASSES[spec.name])(**kwargs)


def output_units(task: TaskInfo) -> int:
    """Units of the task's output layer: the number of classes for multiclass, else 1."""
    return task.n_classes if task.kind == "multiclass" else 1


def output_activation(task: TaskInfo) -> str | None:
    """Activation of the task's output layer: sigmoid (binary), softmax (multiclass), none (regression)."""
    return {"binary": "sigmoid", "multiclass": "softmax"}.get(task.kind)


def to_target_units(task: TaskInfo, z: Any) -> Any:
    """The regression output ``y = target_mean + target_std * z`` on top of the standardized output ``z``.

    Regression learns the standardized target z = (y - mean) / std: a fixed, weightless affine layer
    (Keras' own Rescaling, so a saved model loads in plain Keras with safe_mode) turns z back into the
    target's units. The MSE on y is std**2 times the MSE on z, so the loss is weighted by 1 / std**2
    (:func:`task_loss`): gradients, learning rates and regularization penalties then act on the
    standardized problem, while every metric (mae, mse, rmse, r2, mape) stays in the target's units. The
    reported loss is the standardized MSE (plus any regularization penalty).
    """
    import keras

    return keras.layers.Rescaling(scale=task.target_std, offset=task.target_mean, name="output")(z)


def task_loss(task: TaskInfo, metric_names: Collection[str] | None) -> tuple[str, list[Any], float]:
    """The task's loss, metrics (those named in ``metric_names`` only, when given) and loss weight."""
    from .metrics import task_metrics

    metrics = task_metrics(task.kind, task.n_classes, metric_names)
    losses = {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy"}
    loss = losses.get(task.kind, "mse")
    return loss, metrics, 1.0 / task.target_std**2 if task.kind == "regression" else 1.0


def compile_model(model: Any, config: Mapping[str, Any], task: TaskInfo,
                  metric_names: Collection[str] | None) -> None:
    """Compile ``model`` as every search model is: the config's optimizer, the task's loss and metrics.

    Args:
        model: an uncompiled (or user-compiled: it is recompiled) ``keras.Model`` whose output fits ``task``.
        config: builder knobs, checked (``DEFAULTS`` merged in).
        task: the task the model is trained for.
        metric_names: the metrics to compile (the loss always); None for all of the task's.
    """
    import keras

    loss, metrics, loss_weight = task_loss(task, metric_names)
    model.compile(
        optimizer=_optimizer(config),
        loss=loss,
        loss_weights=loss_weight,
        metrics=metrics,
        # 0 (auto) is resolved by the search's trainer, which knows how many steps an epoch has.
        steps_per_execution=config["steps_per_execution"] or 1,
        jit_compile=jit_compile_for(keras.backend.backend()),
    )


def _output(task: TaskInfo, x: Any) -> Any:
    """The task's output tensor on top of ``x``."""
    import keras

    if task.kind == "regression":
        return to_target_units(task, keras.layers.Dense(1, name="standardized_output")(x))
    return keras.layers.Dense(output_units(task), activation=output_activation(task), name="output")(x)


def build_model(
    config: Mapping[str, Any], task: TaskInfo, *, metrics: Collection[str] | None = None
) -> keras.Model:
    """Build and compile the MLP that ``config`` describes for ``task``, with the task's metrics (those
    named in ``metrics`` only, when given; the loss always).

    ``config`` is normally ``resolve_config(space, point)``; keys it leaves out take ``DEFAULTS``, and a
    key the builder does not know is a :class:`SpaceError` rather than a silently ignored setting.
    ``batch_size``, ``epochs`` and ``lr_schedule`` are checked here but act in the fit (the schedule
    through :func:`hpsearch.spaces.schedules.LearningRateCallback`).

    A config of a space naming a model function (``config["model"]``, see :func:`resolve_config`) is
    built by that function and compiled the same way
    (:func:`hpsearch.spaces.model_functions.build_own_model`).

    Args:
        config: the trial's resolved config.
        task: what the data asks of the output layer.
        metrics: metric names to compile (the loss always); None for all of the task's.

    Returns:
        The compiled model.

    Raises:
        SpaceError: an unknown parameter (bundled builder), or a model function that does not import,
            returns no Keras model, or whose model does not fit the data's input or the task's output.
    """
    import keras

    if config.get(MODEL_KEY) is not None:
        from .model_functions import build_own_model

        return build_own_model(config, task, metrics=metrics)
    unknown = [name for name in config if name not in KNOBS]
    if unknown:
        raise SpaceError(f"config has unknown parameter(s) {', '.join(map(repr, unknown))}; "
                         f"known parameters: {', '.join(KNOBS)}")
    merged = {name: check_value(name, value) for name, value in {**DEFAULTS, **config}.items()}

    inputs = keras.Input((task.n_features,), name="features")
    x = inputs
    for index in range(merged["n_hidden"]):
        # Fresh initializer/regularizer objects per layer: Keras warns when one unseeded instance is
        # reused, and shared objects would tie the layers' serialised configs together.
        x = keras.layers.Dense(
            merged["n_neurons"],
            kernel_initializer=_initializer(merged["kernel_initializer"]),
            kernel_regularizer=_regularizer(merged["kernel_regularizer"]),
            kernel_constraint=_constraint(merged["kernel_constraint"]),
            name=f"hidden_{index}",
        )(x)
        if merged["batch_norm"]:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{index}")(x)
        x = keras.layers.Activation(merged["activation"], name=f"activation_{index}")(x)
        if merged["dropout"] > 0:
            x = keras.layers.Dropout(merged["dropout"], name=f"dropout_{index}")(x)
    model = keras.Model(inputs, _output(task, x), name="hpsearch_mlp")
    compile_model(model, merged, task, metrics)
    return model
