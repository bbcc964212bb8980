"""The one model builder: a plain config dict and a task in, a compiled ``keras.Model`` out.

Every engine calls :func:`build_model`, so one config gives one architecture whichever engine
proposed it. Seeds are the caller's business: the builder never sets them, so a search can vary them
per trial and a retrain can pin them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spaces.errors import SpaceError
from spaces.hyperparameters import DEFAULTS, KNOBS, check_value, parse_value
from spaces.objectives import TASK_KINDS

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class TaskInfo:
    """What the data asks of the output layer: the kind of task and the input/output widths."""

    kind: str
    n_features: int
    n_classes: int

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise SpaceError(f"task kind must be one of {', '.join(TASK_KINDS)}, but got {self.kind!r}")
        if self.n_features < 1:
            raise SpaceError(f"n_features must be >= 1, but got {self.n_features}")
        if self.kind == "multiclass" and self.n_classes < 2:
            raise SpaceError(f"a multiclass task needs n_classes >= 2, but got {self.n_classes}")


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


def _output(task: TaskInfo) -> tuple[Any, str, list[Any]]:
    import keras

    from spaces.metrics import task_metrics

    metrics = task_metrics(task.kind, task.n_classes)
    if task.kind == "binary":
        return keras.layers.Dense(1, activation="sigmoid", name="output"), "binary_crossentropy", metrics
    if task.kind == "multiclass":
        return (keras.layers.Dense(task.n_classes, activation="softmax", name="output"),
                "sparse_categorical_crossentropy", metrics)
    return keras.layers.Dense(1, name="output"), "mse", metrics


def build_model(config: Mapping[str, Any], task: TaskInfo) -> keras.Model:
    """Build and compile the MLP that ``config`` describes for ``task``.

    ``config`` is normally ``resolve_config(space, point)``; keys it leaves out take ``DEFAULTS``, and a
    key the builder does not know is a :class:`SpaceError` rather than a silently ignored setting.
    ``batch_size``, ``epochs`` and ``lr_schedule`` are checked here but act in the fit (the schedule
    through :func:`spaces.schedules.LearningRateCallback`).
    """
    import keras

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
    output_layer, loss, metrics = _output(task)
    model = keras.Model(inputs, output_layer(x), name="hpsearch_mlp")
    model.compile(
        optimizer=_optimizer(merged),
        loss=loss,
        metrics=metrics,
        steps_per_execution=merged["steps_per_execution"],
        # Tiny MLPs on CPU: XLA's compile time outweighs what it saves per step.
        jit_compile=False,
    )
    return model
