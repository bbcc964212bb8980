"""The user's own model function: ``build(params, info) -> keras.Model``, trained like the bundled MLP.

A space names it with ``model: package.module:function`` (or ``model=build`` from Python). For each
trial the function gets:

- ``params``: the trial's resolved config (:func:`hpsearch.spaces.resolve_config`): the tuned values,
  the fixed ones (the user's own parameters included) and the builder's defaults for the rest;
- ``info``: a :class:`ModelInfo` describing the data and the output the task needs.

It returns an uncompiled ``keras.Model`` that takes the preprocessed features (a float32 tensor of shape
``info.input_shape``, i.e. ``(n_features,)``; reshape it inside the model, e.g. ``Reshape((8, 8, 1))``)
and ends in the task's output layer, ``Dense(info.output_units, activation=info.output_activation)``.
For regression that last layer predicts the *standardized* target: hpsearch appends a fixed
``Rescaling(info.target_std, info.target_mean)`` layer, as for its own MLP, so the trained and exported
model predicts in the target's units. The model is then compiled as the bundled one is (the config's
optimizer, learning rate, clipping and schedule; the task's loss and metrics), so recording, pruning,
checkpoints, retrain and export work unchanged. Standard Keras layers (a Functional or Sequential
model) keep the exported ``.keras`` file loadable by plain ``keras.models.load_model``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .builder import TaskInfo, compile_model, output_activation, output_units, to_target_units
from .errors import SpaceError
from .functions import import_function
from .hyperparameters import DEFAULTS, KNOBS, check_value
from .limits import quoted
from .space import MODEL_KEY, SearchSpace, first_point, resolve_config, user_params

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class ModelInfo:
    """What a model function needs to know of the data: its input and the output the task asks for."""

    #: Shape of one row of model input: ``(n_features,)``, the preprocessed features as float32.
    input_shape: tuple[int, ...]
    n_features: int
    #: ``binary``, ``multiclass`` or ``regression``.
    task: str
    #: Classes of a classification task (2 for binary); 1 for regression.
    n_classes: int
    #: Units of the last layer: ``n_classes`` for multiclass, 1 otherwise.
    output_units: int
    #: ``sigmoid`` (binary), ``softmax`` (multiclass) or None (regression: linear).
    output_activation: str | None
    #: Regression: the training rows' target mean and standard deviation. hpsearch appends
    #: ``output = target_mean + target_std * z`` to the model, so its last layer predicts the standardized
    #: target ``z``; they are given for information (e.g. a custom initial bias), not to be applied again.
    target_mean: float = 0.0
    target_std: float = 1.0


def model_info(task: TaskInfo) -> ModelInfo:
    """The :class:`ModelInfo` a model function gets for ``task``.

    Args:
        task: the builder's view of the data.

    Returns:
        The info.
    """
    return ModelInfo(
        input_shape=(task.n_features,), n_features=task.n_features, task=task.kind,
        n_classes=task.n_classes if task.kind != "regression" else 1, output_units=output_units(task),
        output_activation=output_activation(task), target_mean=task.target_mean, target_std=task.target_std,
    )


def build_own_model(
    config: Mapping[str, Any], task: TaskInfo, *, metrics: Collection[str] | None = None
) -> keras.Model:
    """Call the model function ``config["model"]`` names, check its model and compile it for ``task``.

    The returned model wraps the function's model: one ``features`` input, the function's model, and for
    regression the fixed layer back to the target's units.

    Args:
        config: a resolved config of a model-function space.
        task: what the data asks of the output layer.
        metrics: the metrics to compile (the loss always); None for all of the task's.

    Returns:
        The compiled model.

    Raises:
        SpaceError: one sentence naming the function: it does not import, returns something that is not a
            Keras model, does not take the data's input shape, or whose output shape does not fit the task.
    """
    import keras

    reference = config[MODEL_KEY]
    function = import_function(reference, "model function")
    info = model_info(task)
    built = function(user_params(config), info)
    if not isinstance(built, keras.Model):
        raise SpaceError(f"model function {quoted(reference)} must return a keras.Model, but returned "
                         f"{type(built).__name__}")
    inputs = keras.Input(info.input_shape, name="features", dtype="float32")
    try:
        output = built(inputs)
    except Exception as error:  # noqa: BLE001 - whatever Keras says about the shape, in one line
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise SpaceError(f"model function {quoted(reference)} returned a model that does not take inputs of "
                         f"shape {(None, *info.input_shape)} (the preprocessed features; reshape them inside "
                         f"the model): {type(error).__name__}: {first}") from None
    expected = (None, info.output_units)
    shape = tuple(output.shape) if hasattr(output, "shape") else None
    if shape != expected:
        layer = f"Dense({info.output_units}" + (f", activation={info.output_activation!r})"
                                                 if info.output_activation else ")")
        got = f"outputs of shape {shape}" if shape is not None else f"a {type(output).__name__} of outputs"
        raise SpaceError(f"model function {quoted(reference)} returned a model with {got}, but the "
                         f"{task.kind} task needs outputs of shape {expected}: end it with {layer}")
    if task.kind == "regression":
        output = to_target_units(task, output)
    model = keras.Model(inputs, output, name="hpsearch_model_function")
    merged = {**DEFAULTS, **config}
    knobs = {name: check_value(name, value) for name, value in merged.items() if name in KNOBS}
    compile_model(model, knobs, task, metrics)
    return model


def check_model_function(space: SearchSpace, task: TaskInfo) -> None:
    """Build the space's model once on the data's shapes, so a broken function fails before any study.

    An exception raised inside the function itself is left to the trials (it may hold for some
    configurations only); what is wrong whatever the configuration is refused here.

    Args:
        space: a space; nothing is checked without a ``model`` function.
        task: the data's task and widths.

    Raises:
        SpaceError: naming the function and the space's file, as :func:`build_own_model`.
    """
    if space.model is None:
        return
    import keras

    try:
        import_function(space.model, "model function")
        build_own_model(resolve_config(space, first_point(space)), task)
    except SpaceError as error:
        raise error.with_source(space.source) from None
    except Exception:  # noqa: BLE001, S110 - the function's own failure is reported by the trial it fails
        pass
    finally:
        keras.backend.clear_session()
