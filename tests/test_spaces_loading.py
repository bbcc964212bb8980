"""Loading, validating and round-tripping space files (no TensorFlow needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hpsearch.spaces import (
    DEFAULTS,
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    SpaceError,
    check_objective,
    direction_of,
    list_presets,
    load_space,
    objective_names,
    resolve_config,
    space_from_dict,
)

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, name: str = "space.yaml") -> str:
    path = write(tmp_path, text, name)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    return message


def test_load_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, """
        task: multiclass
        objective: val_accuracy
        params:
          n_hidden: {type: int, low: 1, high: 4}
          n_neurons: {type: int, low: 16, high: 256, log: true}
          dropout: {type: float, low: 0.0, high: 0.5, step: 0.1}
          learning_rate: {type: float, low: 1e-4, high: 1.0e-1, log: true}
          activation: {type: categorical, choices: [relu, elu]}
          batch_size: {type: categorical, choices: [32, 64]}
        fixed:
          epochs: 30
          batch_norm: true
    """)
    space = load_space(path)
    assert space.source == str(path)
    assert space.task == "multiclass"
    assert space.direction == "maximize"
    assert space.tuned_names == [
        "n_hidden", "n_neurons", "dropout", "learning_rate", "activation", "batch_size"
    ]
    # PyYAML reads 1e-4 as a string; the loader takes it as the number it means.
    assert space.params["learning_rate"] == FloatParam("learning_rate", 1e-4, 0.1, log=True)
    assert space.params["dropout"].grid_values() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert space.fixed == {"epochs": 30, "batch_norm": True}


def test_load_json_defaults_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"params": {"n_neurons": {"type": "int", "grid": [8, 16]},
                                           "dropout": {"type": "categorical", "choices": [0, 0.25]}}}))
    space = load_space(path)
    assert (space.task, space.objective, space.direction) == ("auto", "val_loss", "minimize")
    neurons = space.params["n_neurons"]
    assert neurons.grid_only and (neurons.low, neurons.high) == (8, 16)
    assert space.params["dropout"].choices == (0.0, 0.25)  # a float hyperparameter's choices become floats
    assert space_from_dict(space.to_dict(), space.source) == space
    assert space_from_dict(json.loads(json.dumps(space.to_dict()))).to_dict() == space.to_dict()


@pytest.mark.parametrize("preset", ["default", "absenteeism-grid"])
def test_presets_load_and_round_trip(preset: str) -> None:
    assert preset in list_presets()
    space = load_space(preset)
    assert space.source == f"preset:{preset}"
    assert space.objective == "val_accuracy" and space.direction == "maximize"
    assert space_from_dict(space.to_dict(), space.source) == space
    text = (ROOT / "spaces" / "presets" / f"{preset}.yaml").read_text()
    assert text.startswith("#")


def test_absenteeism_grid_size() -> None:
    assert load_space("absenteeism-grid").grid_size() == 768


def test_default_preset_is_grid_able() -> None:
    space = load_space("default")
    assert space.params["learning_rate"].grid_values() == [0.0001, 0.001, 0.01, 0.1]
    assert space.grid_size() == 3 * 113 * 4 * 3 * 5 * 4 * 4 * 3


def test_missing_file_lists_presets() -> None:
    with pytest.raises(SpaceError, match=r"space file 'x\.yaml' does not exist and is not a bundled preset "
                                         r"\(presets: absenteeism-grid, default, imbalanced\)"):
        load_space("x.yaml")


@pytest.mark.parametrize(("spec", "expected"), [
    ("type: float, low: 0.5, high: 0.2", "`low` must be < `high`, but got low=0.5, high=0.2"),
    ("type: float, low: 0.0, high: 1.0",
     "`high` must keep the parameter within its domain (a number in [0, 1)), but got high=1.0"),
    ("type: float, low: 0.0, high: 0.5, log: true", "`low` must be > 0 with `log: true`"),
    ("type: float, low: 0.1, high: 0.5, log: true, step: 0.1", "`log: true` cannot be combined with `step`"),
    ("type: float, low: 0.0, high: 0.5, step: 0.3", "`high - low` must be a multiple of `step`"),
    ("type: float, low: 0.0, high: 0.5, stpe: 0.1",
     "unknown key 'stpe' for `type: float` (did you mean 'step'?)"),
    ("type: int, low: 0, high: 1", "must be `type: float` or `type: categorical`"),
    ("type: range, low: 0, high: 1", "`type` must be one of int, float, categorical"),
    ("type: categorical, choices: []", "`choices` must be a non-empty list"),
    ("type: categorical, choices: [0.1, 0.1]", "`choices` must be unique"),
])
def test_numeric_param_errors(tmp_path: Path, spec: str, expected: str) -> None:
    message = load_error(tmp_path, f"params:\n  dropout: {{{spec}}}\n")
    assert f"parameter 'dropout': {expected}" in message


def test_int_log_requires_positive_low_and_allows_step_one(tmp_path: Path) -> None:
    message = load_error(tmp_path, "params:\n  n_hidden: {type: int, low: 0, high: 3, log: true}\n")
    assert "parameter 'n_hidden': `low` must be > 0 with `log: true`, but got low=0" in message
    spec = "{type: int, low: 8, high: 64, log: true, step: 1}"
    path = write(tmp_path, f"params:\n  n_neurons: {spec}\n", "ok.yaml")
    assert load_space(path).params["n_neurons"].grid_values() == list(range(8, 65))


def test_unquoted_spec_with_comma_in_yaml_flow_list(tmp_path: Path) -> None:
    spec = "{type: categorical, choices: [adam, sgd(momentum=0.9, nesterov=true)]}"
    message = load_error(tmp_path, f"params:\n  optimizer: {spec}\n")
    assert "parameter 'optimizer': value 'sgd(momentum=0.9' is not valid" in message
    assert "quote it" in message


def test_unknown_parameter_suggests_and_lists(tmp_path: Path) -> None:
    message = load_error(tmp_path, "params:\n  n_neuron: {type: int, low: 1, high: 4}\n")
    assert "unknown parameter 'n_neuron' (did you mean 'n_neurons'?)" in message
    assert "known parameters: n_hidden, n_neurons, activation" in message


def test_unknown_activation_lists_accepted(tmp_path: Path) -> None:
    message = load_error(tmp_path, "params:\n  activation: {type: categorical, choices: [relu, rleu]}\n")
    assert "parameter 'activation'" in message and "'rleu'" in message
    accepted = "relu, elu, selu, leaky_relu, tanh, gelu, swish, sigmoid, softplus"
    assert f"accepted activations: {accepted}" in message


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("kernel_regularizer", "l2(abc)",
     "accepted regularizers: none, l1(0.001), l2(0.01), l1_l2(l1=0.01, l2=0.01)"),
    ("kernel_constraint", "max_norm()", "write it as max_norm(1.0)"),
    ("kernel_initializer", "he_norml", "accepted initializers: he_normal"),
    ("kernel_initializer", "variance_scaling(mode=fan_sum)",
     "argument 'mode' of 'variance_scaling' must be one of fan_in, fan_out, fan_avg"),
    ("optimizer", "adam(momentum=0.9)", "'adam' does not take argument 'momentum'"),
    ("optimizer", "sgd(0.9)", "takes keyword arguments only"),
    ("optimizer", "sgd(clipnorm=1.0, clipvalue=1.0)", "accepts only one of them"),
    ("optimizer", "adagrad", "accepted optimizers: sgd(momentum=0.9, nesterov=true), adam(clipnorm=1.0)"),
    ("clipping", "clipnorm(-1)", "argument 'clipnorm' of 'clipnorm' must be a number > 0"),
    ("lr_schedule", "step(drop=1.5)", "argument 'drop' of 'step' must be a number in (0, 1), but got 1.5"),
    ("lr_schedule", "step(every=2.5)", "argument 'every' of 'step' must be an integer >= 1, but got 2.5"),
    ("lr_schedule", "exponential", "'exponential' needs argument 'rate', as in exponential(rate=0.9)"),
    ("lr_schedule", "cosine(epochs=0)", "argument 'epochs' of 'cosine' must be an integer >= 1"),
    ("lr_schedule", "linear(0.1)", "unknown lr_schedule 'linear'; accepted lr_schedules: none, "
     "step(drop=0.1, every=10), exponential(rate=0.9), cosine(epochs=20, alpha=0.0)"),
])
def test_bad_spec_strings(tmp_path: Path, name: str, value: str, expected: str) -> None:
    message = load_error(tmp_path, f'params:\n  {name}: {{type: categorical, choices: ["{value}"]}}\n')
    assert f"parameter '{name}': value '{value}' is not valid" in message
    assert expected in message


def test_fixed_values_are_checked(tmp_path: Path) -> None:
    message = load_error(tmp_path, "fixed:\n  epochs: 0\n")
    assert "fixed value 'epochs': must be an integer >= 1, but got 0" in message
    message = load_error(tmp_path, "fixed:\n  optimizer: sgd(nesterov=maybe)\n")
    assert "fixed value 'optimizer'" in message and "must be true or false" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, "parms:\n  n_hidden: {type: int, low: 1, high: 2}\n")
    assert ("unknown top-level key 'parms' (did you mean 'params'?); "
            "allowed keys: task, objective, params, fixed") in message


def test_param_in_both_params_and_fixed(tmp_path: Path) -> None:
    message = load_error(tmp_path, "params:\n  epochs: {type: int, low: 1, high: 2}\nfixed:\n  epochs: 3\n")
    assert "parameter 'epochs': is both tuned (under `params`) and fixed (under `fixed`)" in message


def test_malformed_yaml_and_json_name_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "params:\n  n_hidden: {type: int, low: 1\n")
    assert "is not valid YAML" in message and "line 3" in message
    message = load_error(tmp_path, '{"params": {,}}', "bad.json")
    assert "is not valid JSON" in message and "line 1" in message
    message = load_error(tmp_path, "params:\n  n_hidden: {type: int, low: 1, high: 2}\n"
                                   "  n_hidden: {type: int, low: 1, high: 3}\n", "dup.yaml")
    assert "duplicate key 'n_hidden'" in message


def test_objective_checked_at_load_and_per_task(tmp_path: Path) -> None:
    message = load_error(tmp_path, "task: regression\nobjective: val_accuracy\n")
    assert "`objective` 'val_accuracy' is not a metric the model reports for a regression task" in message
    assert ("accepted objectives: loss, mae, mse, rmse, r2, mape, val_loss, val_mae, val_mse, val_rmse, "
            "val_r2, val_mape" in message)
    space = space_from_dict({"objective": "val_precision"}, "s.yaml")
    check_objective(space, "binary")
    expected = (r"^s\.yaml: objective 'val_precision' is not a metric the model reports for a multiclass "
                r"task; accepted objectives: loss, accuracy, f1, auc, top_k_accuracy, val_loss, ")
    with pytest.raises(SpaceError, match=expected):
        check_objective(space, "multiclass")
    assert objective_names("binary") == [
        "loss", "accuracy", "auc", "precision", "recall", "f1", "pr_auc",
        "val_loss", "val_accuracy", "val_auc", "val_precision", "val_recall", "val_f1", "val_pr_auc"]
    # Confusion counts are recorded, never optimised; top-5 accuracy needs more than 5 classes.
    message = load_error(tmp_path, "objective: val_fp\n")
    assert "`objective` 'val_fp' is a confusion count, recorded every epoch but not an objective" in message
    top_k = space_from_dict({"objective": "val_top_k_accuracy"}, "k.yaml")
    check_objective(top_k, "multiclass", n_classes=10)
    with pytest.raises(SpaceError, match=r"^k\.yaml: objective 'val_top_k_accuracy' needs more than 5 "
                                         r"classes \(it is top-5 accuracy\), but the data has 3$"):
        check_objective(top_k, "multiclass", n_classes=3)


@pytest.mark.parametrize(("objective", "direction"), [
    ("val_loss", "minimize"), ("loss", "minimize"), ("val_mae", "minimize"), ("rmse", "minimize"),
    ("val_mse", "minimize"), ("val_binary_crossentropy", "minimize"),
    ("val_accuracy", "maximize"), ("auc", "maximize"),
])
def test_direction_of(objective: str, direction: str) -> None:
    assert direction_of(objective) == direction


def test_param_types_directly() -> None:
    assert IntParam("n_hidden", 0, 6, step=2).grid_values() == [0, 2, 4, 6]
    assert FloatParam("dropout", 0.0, 0.3, step=0.1).grid_values() == [0.0, 0.1, 0.2, 0.3]
    assert FloatParam("learning_rate", grid=[0.1, 0.01]).grid_only
    with pytest.raises(SpaceError, match=r"^parameter 'n_neurons': `log: true` cannot be combined"):
        IntParam("n_neurons", 8, 64, log=True, step=8)
    with pytest.raises(SpaceError, match=r"parameter 'learning_rate': a float range has no finite grid"):
        FloatParam("learning_rate", 1e-4, 1e-1, log=True).grid_values()
    with pytest.raises(SpaceError, match="must all be strings, all numbers or all booleans"):
        CategoricalParam("x", ("a", 1))
    with pytest.raises(SpaceError, match="must be unique"):
        CategoricalParam("x", (1, 1.0))
    with pytest.raises(SpaceError, match="must all be strings, all numbers or all booleans"):
        CategoricalParam("x", (True, 1))
    assert CategoricalParam("x", (1, 2.5)).normalise(1.0) == 1


def test_grid_size_names_the_continuous_parameter(tmp_path: Path) -> None:
    path = write(tmp_path, "params:\n  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n")
    space = load_space(path)
    with pytest.raises(SpaceError) as info:
        space.grid_size()
    assert str(info.value).startswith(f"{path}: parameter 'learning_rate': a float range has no finite grid; "
                                      "give `step` (for example step: 0.1) or `grid: [...]`")


def test_resolve_config_layers_and_normalises() -> None:
    import numpy as np

    space = space_from_dict({
        "params": {"dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
                   "n_neurons": {"type": "int", "low": 8, "high": 64, "log": True}},
        "fixed": {"epochs": 5},
    })
    config = resolve_config(space, {"dropout": np.float64(0.1 + 0.2), "n_neurons": np.int64(12)})
    assert config == {**DEFAULTS, "epochs": 5, "dropout": 0.3, "n_neurons": 12}
    assert type(config["dropout"]) is float and type(config["n_neurons"]) is int
    json.dumps(config)
    with pytest.raises(SpaceError, match="unknown parameter 'dropuot' \\(did you mean 'dropout'\\?\\)"):
        resolve_config(space, {"dropuot": 0.1})


def test_search_space_validates_when_built_directly() -> None:
    with pytest.raises(SpaceError, match=r"^mine: parameter 'activation': takes only `type: categorical`"):
        SearchSpace(params={"activation": IntParam("activation", 1, 2)}, source="mine")


def test_importing_spaces_does_not_import_tensorflow() -> None:
    code = textwrap.dedent("""
        import sys
        from hpsearch import spaces
        space = spaces.load_space("default")
        space.grid_size()
        spaces.resolve_config(space, {})
        heavy = [name for name in ("tensorflow", "keras", "keras_tuner", "optuna", "sklearn", "scipy")
                 if name in sys.modules]
        assert not heavy, heavy
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
