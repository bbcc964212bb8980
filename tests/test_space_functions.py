"""Spaces that name the user's own model or training function (no TensorFlow needed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hpsearch.errors import UsageError
from hpsearch.spaces import (
    DEFAULTS,
    SearchSpace,
    SpaceError,
    function_of,
    function_reference,
    import_function,
    importable_in_other_processes,
    load_space,
    resolve_config,
    space_from_dict,
    user_params,
)
from hpsearch.spaces.compile_keras_tuner import declare_hyperparameters
from hpsearch.spaces.compile_optuna import to_distributions, to_grid_search_space
from hpsearch.spaces.compile_sklearn import to_param_distributions, to_param_grid
from hpsearch.study import run_study
from hpsearch.study_options import Isolation, RunOptions

CNN_SPACE = """\
model: "json:dumps"
objective: val_accuracy
params:
  filters: {type: int, low: 4, high: 16, step: 4}
  kernel_size: {type: categorical, choices: [2, 3]}
  padding: {type: categorical, choices: [same, valid]}
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
fixed:
  epochs: 2
  pool: true
  note: null
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_model_function_space_tunes_its_own_parameters_and_round_trips(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, CNN_SPACE))
    assert space.model == "json:dumps" and space.train is None
    assert space.tuned_names == ["filters", "kernel_size", "padding", "learning_rate"]
    stored = space.to_dict()
    assert stored["model"] == "json:dumps" and "train" not in stored
    assert space_from_dict(stored) == space
    # A different function is a different space: resume compares spaces by to_dict().
    assert space_from_dict({**stored, "model": "json:loads"}) != space


def test_a_space_without_a_function_keeps_its_stored_form() -> None:
    space = load_space("default")
    assert "model" not in space.to_dict() and "train" not in space.to_dict()


def test_own_parameters_are_refused_without_a_function_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(SpaceError) as info:
        load_space(write(tmp_path, "params:\n  filters: {type: int, low: 4, high: 16}\n"))
    message = str(info.value)
    assert "space.yaml" in message and "'filters'" in message and "`model:` or `train:`" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("model: m:build\nparams:\n  filters: {low: 4, high: 16}\n", "parameter 'filters': `type` must be"),
    ("model: m:build\nparams:\n  learning_rate: {type: float, low: -1.0, high: 1.0}\n",
     "parameter 'learning_rate': `low` must keep the parameter within its domain"),
    ("model: m:build\nfixed:\n  sizes: [1, 2]\n", "fixed value 'sizes': must be a string, a finite number"),
    ("model: m:build\ntrain: m:fit\n", "names both a `model:` and a `train:` function"),
    ("model: not a reference\n", "`model` must name a function as \"package.module:function\""),
    ("train: 12\n", "`train` must name a function"),
    ("model: m:build\nparams:\n  train: {type: int, low: 1, high: 2}\n", "parameter 'train': `train` names"),
])
def test_bad_function_spaces_get_one_sentence(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SpaceError) as info:
        load_space(write(tmp_path, text))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_model_function_config_keeps_builder_defaults_and_carries_the_reference(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, CNN_SPACE))
    config = resolve_config(space, {"filters": 8, "kernel_size": 3, "padding": "same", "learning_rate": 0.01})
    assert config["optimizer"] == DEFAULTS["optimizer"] and config["batch_size"] == DEFAULTS["batch_size"]
    assert config["epochs"] == 2 and config["pool"] is True and config["note"] is None
    assert config["filters"] == 8 and config["learning_rate"] == 0.01
    assert function_of(config) == ("model", "json:dumps")
    assert "model" not in user_params(config) and user_params(config)["filters"] == 8


def test_a_training_function_config_holds_only_the_space_and_epochs() -> None:
    space = space_from_dict({"train": "json:loads", "fixed": {"kernel": "rbf"},
                             "params": {"C": {"type": "float", "low": 0.1, "high": 10.0}}})
    assert resolve_config(space, {"C": 1}) == {"epochs": DEFAULTS["epochs"], "kernel": "rbf", "C": 1.0,
                                               "train": "json:loads"}
    epochs = {"type": "int", "low": 1, "high": 9}
    tuned = space_from_dict({"train": "json:loads", "params": {"epochs": epochs}})
    assert resolve_config(tuned, {"epochs": 3}) == {"epochs": 3, "train": "json:loads"}


def test_every_compiler_handles_own_parameters(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, CNN_SPACE))
    assert set(to_distributions(space)) == set(space.params)
    finite = SearchSpace(model=space.model, params={
        name: param for name, param in space.params.items() if name != "learning_rate"})
    assert to_grid_search_space(finite)["filters"] == [4, 8, 12, 16]
    hp = declare_hyperparameters(space)
    assert hp.get("filters") in (4, 8, 12, 16) and hp.get("padding") in ("same", "valid")
    assert "model__filters" in to_param_distributions(space)
    with pytest.raises(SpaceError, match="learning_rate"):
        to_param_grid(space)  # a continuous float still has no grid


def test_import_function_names_the_reference_and_the_reason(tmp_path: Path, monkeypatch) -> None:
    import json

    assert import_function("json:dumps", "model function") is json.dumps
    (tmp_path / "broken_models.py").write_text("raise RuntimeError('no GPU here\\nsecond line')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = {
        "no_such_module_xyz:build": "cannot be imported: ModuleNotFoundError: No module named",
        "broken_models:build": "cannot be imported: RuntimeError: no GPU here",
        "json:no_such_function": "module 'json' has no attribute 'no_such_function'",
        "json:__doc__": "must be a function, but it is a str",
    }
    for reference, expected in cases.items():
        with pytest.raises(SpaceError) as info:
            import_function(reference, "model function")
        assert f"model function '{reference}'" in str(info.value) and expected in str(info.value)
        assert "second line" not in str(info.value)


def test_a_module_in_the_working_directory_imports_as_python_m_would(tmp_path: Path) -> None:
    (tmp_path / "cwd_models.py").write_text("def build(params, info):\n    return 'built'\n")
    script = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')];"
              "from hpsearch.spaces import import_function;"
              "print(import_function('cwd_models:build', 'model function')(None, None))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            check=False)
    assert result.stdout.strip() == "built", result.stderr


def _outer() -> object:
    def nested(params, info):  # noqa: ANN001
        return None
    return nested


def test_function_references_of_local_functions_resolve_here_only() -> None:
    assert function_reference(import_function) == "hpsearch.spaces.functions:import_function"
    assert importable_in_other_processes("hpsearch.spaces.functions:import_function")
    nested = _outer()
    reference = function_reference(nested)
    assert reference.endswith(":_outer.<locals>.nested")
    assert import_function(reference, "model function") is nested
    assert not importable_in_other_processes(reference)
    square = lambda params, info: None  # noqa: E731
    assert import_function(function_reference(square), "model function") is square
    space = SearchSpace(model=nested)
    assert space.model == reference and space.to_dict()["model"] == reference
    assert not importable_in_other_processes("__main__:build")


def test_a_local_function_cannot_go_to_several_workers(tmp_path: Path) -> None:
    space_file = tmp_path / "space.json"
    nested = _outer()
    space_file.write_text(f'{{"model": "{function_reference(nested)}"}}', encoding="utf-8")
    options = RunOptions(space=str(space_file), storage=f"sqlite:///{tmp_path / 'db.sqlite'}",
                         isolation=Isolation(workers=2))
    with pytest.raises(UsageError) as info:
        run_study(options)
    message = str(info.value)
    assert "--workers 2" in message and "define it at the top level of a module file" in message
    assert not (tmp_path / "db.sqlite").exists()


def test_a_study_whose_function_this_process_does_not_know_is_refused(tmp_path: Path) -> None:
    space_file = tmp_path / "space.json"
    space_file.write_text('{"model": "__main__:build_somewhere_else"}', encoding="utf-8")
    options = RunOptions(space=str(space_file), storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(UsageError, match="defined in another process"):
        run_study(options)
