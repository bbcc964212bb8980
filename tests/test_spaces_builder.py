"""The one model builder, on tiny models and 20-row arrays (one short fit per task)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hpsearch.spaces import DEFAULTS, SpaceError, TaskInfo, build_model, load_space, resolve_config
from hpsearch.spaces.objectives import metric_names

keras = pytest.importorskip("keras")

N_ROWS, N_FEATURES = 20, 4


def tiny_data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_ROWS, N_FEATURES)).astype("float32")
    if kind == "binary":
        y = (x[:, 0] > 0).astype("float32")
    elif kind == "multiclass":
        y = np.arange(N_ROWS) % 3
    else:
        y = x.sum(axis=1)
    return x, y


def layers_of(model: Any, cls: type) -> list[Any]:
    return [layer for layer in model.layers if type(layer) is cls]


@pytest.mark.parametrize(("kind", "n_classes", "units", "loss"), [
    ("binary", 2, 1, "binary_crossentropy"),
    ("multiclass", 3, 3, "sparse_categorical_crossentropy"),
    ("regression", 0, 1, "mse"),
])
def test_each_task_fits_and_reports_its_objectives(kind: str, n_classes: int, units: int, loss: str) -> None:
    config = {**DEFAULTS, "n_hidden": 1, "n_neurons": 4}
    model = build_model(config, TaskInfo(kind, N_FEATURES, n_classes))
    x, y = tiny_data(kind)
    history = model.fit(x, y, validation_data=(x, y), epochs=1, batch_size=10, verbose=0)
    assert model.output_shape == (None, units)
    assert model.loss == loss
    # Every metric under its objective name (counts and all), on both splits: nothing Keras names itself.
    names = metric_names(kind, n_classes)
    assert sorted(history.history) == sorted([*names, *(f"val_{name}" for name in names)])
    assert model.jit_compile is False


def test_architecture_follows_the_config() -> None:
    config = {"n_hidden": 3, "n_neurons": 5, "dropout": 0.2, "batch_norm": True, "activation": "elu",
              "kernel_initializer": "variance_scaling(scale=2.0, mode=fan_avg, distribution=uniform)",
              "kernel_regularizer": "l1_l2(l1=0.01, l2=0.02)", "kernel_constraint": "max_norm(1.5)",
              "steps_per_execution": 2}
    model = build_model(config, TaskInfo("multiclass", N_FEATURES, 4))
    hidden = [layer for layer in layers_of(model, keras.layers.Dense) if layer.name != "output"]
    assert len(hidden) == 3 and all(layer.units == 5 for layer in hidden)
    assert len(layers_of(model, keras.layers.BatchNormalization)) == 3
    assert [layer.rate for layer in layers_of(model, keras.layers.Dropout)] == [0.2] * 3
    activations = layers_of(model, keras.layers.Activation)
    assert {layer.get_config()["activation"] for layer in activations} == {"elu"}
    dense = hidden[0]
    assert isinstance(dense.kernel_initializer, keras.initializers.VarianceScaling)
    assert (dense.kernel_initializer.scale, dense.kernel_initializer.mode,
            dense.kernel_initializer.distribution) == (2.0, "fan_avg", "uniform")
    assert isinstance(dense.kernel_regularizer, keras.regularizers.L1L2)
    regularizer = dense.kernel_regularizer
    assert (float(regularizer.l1), float(regularizer.l2)) == pytest.approx((0.01, 0.02))
    assert isinstance(dense.kernel_constraint, keras.constraints.MaxNorm)
    assert dense.kernel_constraint.max_value == 1.5
    assert model.steps_per_execution == 2


def test_no_hidden_layers_and_no_optional_layers() -> None:
    model = build_model({"n_hidden": 0}, TaskInfo("regression", N_FEATURES, 0))
    # Regression: the standardized output, then the fixed layer back to target units.
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "Rescaling"]
    model = build_model({"n_hidden": 2, "n_neurons": 3}, TaskInfo("binary", N_FEATURES, 2))
    assert not layers_of(model, keras.layers.Dropout)
    assert not layers_of(model, keras.layers.BatchNormalization)
    dense = layers_of(model, keras.layers.Dense)[0]
    assert isinstance(dense.kernel_initializer, keras.initializers.GlorotUniform)
    assert dense.kernel_regularizer is None and dense.kernel_constraint is None


@pytest.mark.parametrize(("config", "cls", "expected"), [
    ({"optimizer": "sgd", "momentum": 0.5, "nesterov": True, "learning_rate": 0.05},
     "SGD", {"momentum": 0.5, "nesterov": True, "learning_rate": 0.05, "clipnorm": None, "clipvalue": None}),
    # The optimizer string is the more specific statement: it wins over the separate knobs.
    ({"optimizer": "sgd(momentum=0.9, nesterov=true)", "momentum": 0.1},
     "SGD", {"momentum": 0.9, "nesterov": True}),
    ({"optimizer": "rmsprop", "momentum": 0.3}, "RMSprop", {"momentum": 0.3}),
    ({"optimizer": "adam", "clipping": "clipnorm(2.0)"}, "Adam", {"clipnorm": 2.0, "clipvalue": None}),
    ({"optimizer": "sgd(clipvalue=1.0)", "clipping": "clipnorm(2.0)"},
     "SGD", {"clipnorm": None, "clipvalue": 1.0}),
    ({"optimizer": "nadam", "clipping": "clipvalue(0.5)"}, "Nadam", {"clipvalue": 0.5}),
    ({"optimizer": "adamw(weight_decay=0.01)"}, "AdamW", {"weight_decay": 0.01}),
])
def test_optimizer_settings(config: dict[str, Any], cls: str, expected: dict[str, Any]) -> None:
    optimizer = build_model({"n_hidden": 0, **config}, TaskInfo("regression", N_FEATURES, 0)).optimizer
    assert type(optimizer).__name__ == cls
    for name, value in expected.items():
        actual = getattr(optimizer, name)
        if name == "learning_rate":
            actual = float(actual)
        assert actual == pytest.approx(value) if isinstance(value, float) else actual == value, name


def test_preset_config_builds() -> None:
    space = load_space("absenteeism-grid")
    point = {name: param.grid_values()[-1] for name, param in space.params.items()}
    model = build_model(resolve_config(space, point), TaskInfo("binary", N_FEATURES, 2))
    assert len([layer for layer in layers_of(model, keras.layers.Dense) if layer.name != "output"]) == 3
    assert type(model.optimizer).__name__ == "SGD" and model.optimizer.clipnorm == 1.0


def test_unknown_or_invalid_config_is_refused() -> None:
    task = TaskInfo("binary", N_FEATURES, 2)
    with pytest.raises(SpaceError, match=r"config has unknown parameter\(s\) 'n_layers'; known parameters: "):
        build_model({"n_layers": 2}, task)
    with pytest.raises(SpaceError, match="parameter 'activation': value 'relu6' is not valid"):
        build_model({"activation": "relu6"}, task)
