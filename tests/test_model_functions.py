"""A space's own model function (``model: module:function``) trained by every engine and executor."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hpsearch.spaces import ModelInfo, SpaceError, build_model, resolve_config, space_from_dict
from hpsearch.spaces.builder import TaskInfo

from tests.conftest import query, spawn_hpsearch, wait_for
from tests.helpers import assert_budget_reached_cleanly, run_hpsearch, trial_rows, write_space

#: A module file the tests write into their working directory, as a user keeps models.py beside a space.
MODELS = '''\
import keras


def cnn(params, info):
    return keras.Sequential([
        keras.layers.Reshape((8, 8, 1)),
        keras.layers.Conv2D(params["filters"], params["kernel_size"], padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(info.output_units, activation=info.output_activation),
    ])


def fails_for_eight(params, info):
    if params["filters"] == 8:
        raise RuntimeError("eight filters are not supported")
    return cnn(params, info)


def wrong_width(params, info):
    return keras.Sequential([keras.layers.Dense(3)])


def not_a_model(params, info):
    return {"layers": 2}


SEEN = []


def record_info(params, info):
    SEEN.append(info)
    return cnn(params, info)
'''

CNN_SPACE = """\
model: {models}:{function}
objective: val_accuracy
params:
  filters: {{type: int, low: 4, high: 8, step: 4}}
  kernel_size: {{type: categorical, choices: [2, 3]}}
fixed: {{epochs: {epochs}, batch_size: 64}}
"""


def _models(folder: Path, name: str) -> str:
    """Write MODELS as ``folder/name.py``; a name per test, since this process keeps modules it imported."""
    (folder / f"{name}.py").write_text(MODELS, encoding="utf-8")
    return name


def _space(folder: Path, models: str, function: str = "cnn", epochs: int = 1) -> Path:
    return write_space(folder, CNN_SPACE.format(models=models, function=function, epochs=epochs))


def test_info_describes_the_task_and_regression_ends_in_target_units(tmp_path: Path, monkeypatch) -> None:
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))
    models = _models(tmp_path, "models_info")
    space = space_from_dict({"model": f"{models}:record_info", "fixed": {"filters": 4, "kernel_size": 2}})
    task = TaskInfo("regression", 64, 1, target_mean=50.0, target_std=4.0)
    model = build_model(resolve_config(space, {}), task)
    info = importlib.import_module(models).SEEN[0]
    assert isinstance(info, ModelInfo)
    assert (info.input_shape, info.task, info.n_features) == ((64,), "regression", 64)
    assert (info.output_units, info.output_activation) == (1, None)
    assert (info.target_mean, info.target_std) == (50.0, 4.0)
    # The function's output is the standardized target; hpsearch maps it back (zero features: zero z).
    assert np.allclose(model.predict(np.zeros((3, 64), "float32"), verbose=0), 50.0)
    assert model.loss == "mse"


@pytest.mark.parametrize(("function", "expected"), [
    ("missing", "model function '{m}:missing' cannot be found: module '{m}' has no attribute 'missing'"),
    ("not_a_model", "model function '{m}:not_a_model' must return a keras.Model, but returned dict"),
    ("wrong_width", "model function '{m}:wrong_width' returned a model with outputs of shape (None, 3), but "
                    "the multiclass task needs outputs of shape (None, 10): end it with Dense(10, "
                    "activation='softmax')"),
])
def test_a_bad_model_function_is_one_sentence_and_exit_2_before_any_study(cli, tmp_path: Path, function: str,
                                                                           expected: str) -> None:
    models = _models(tmp_path, f"models_bad_{function}")
    result = cli("run", _space(tmp_path, models, function), "--data", "digits", "--trials", "2", "--quiet")
    assert result.code == 2, result.err
    message = result.err.strip()
    assert expected.format(m=models) in message and "space.yaml" in message
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert not any(tmp_path.glob("*.db")), "no study was created"


def test_a_module_that_does_not_import_names_the_reason(cli, tmp_path: Path) -> None:
    space = write_space(tmp_path, "model: no_such_models_module:build\n")
    result = cli("run", space, "--data", "digits", "--trials", "2", "--quiet")
    assert result.code == 2
    assert ("model function 'no_such_models_module:build' cannot be imported: ModuleNotFoundError: No module "
            "named 'no_such_models_module'") in result.err


def test_a_build_error_fails_only_that_trial_and_packs_train_the_rest(cli, tmp_path: Path) -> None:
    models = _models(tmp_path, "models_partial")
    space = _space(tmp_path, models, "fails_for_eight")
    result = cli("run", space, "--data", "digits", "--algorithm", "grid", "--in-process", "--quiet",
                 "--pack", "2")
    assert result.code == 0, result.err
    rows = trial_rows(tmp_path / "hp.db", "error")
    assert {row[1] for row in rows if json.loads(row[4])["filters"] == 4} == {"COMPLETE"}
    failed = [row for row in rows if json.loads(row[4])["filters"] == 8]
    assert failed
    assert all(row[1] == "FAILED" and "eight filters are not supported" in row[5] for row in failed)


@pytest.mark.slow
def test_keras_tuner_and_sklearn_fold_processes_train_a_model_function(tmp_path: Path) -> None:
    models = _models(tmp_path, "models_engines")
    space = _space(tmp_path, models)
    db = tmp_path / "e.db"
    for study, args in (("kt", ("--engine", "keras-tuner", "--trials", "2")),
                        ("sk", ("--engine", "sklearn", "--algorithm", "grid", "--cv", "2", "--jobs", "2")),
                        ("direct", ("--engine", "sklearn", "--algorithm", "grid", "--cv", "2", "--trainer",
                                    "hpsearch"))):
        run_hpsearch(tmp_path, "run", space, "--data", "digits", "--study", study, "--storage", db, "--quiet",
                     *args)
    counts = query(db, "SELECT s.name, COUNT(*) FROM hp_trials t JOIN hp_studies s ON s.id = t.study_id "
                       "WHERE t.state = 'COMPLETE' GROUP BY s.name ORDER BY s.name")
    assert counts == [("direct", 4), ("kt", 2), ("sk", 4)]


@pytest.mark.slow
def test_kill_9_of_a_model_function_study_then_resume_loses_no_completed_trial(tmp_path: Path) -> None:
    models = _models(tmp_path, "models_kill")
    db = tmp_path / "k.db"
    process = spawn_hpsearch("run", _space(tmp_path, models, epochs=15), "--data", "digits", "--trials", "3",
                             "--study", "k", "--storage", db, "--quiet", "--pruner", "none", cwd=tmp_path)
    running = "SELECT number FROM hp_trials WHERE state = 'RUNNING' AND epochs_run >= 1"
    wait_for(lambda: query(db, "SELECT COUNT(*) FROM hp_trials WHERE state = 'COMPLETE'")[0][0] >= 1
             and query(db, running))
    completed = query(db, "SELECT number, params, value FROM hp_trials WHERE state = 'COMPLETE'")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    resumed = run_hpsearch(tmp_path, "resume", "k", "--storage", db, "--quiet")
    assert "marked 1 interrupted trial(s) as FAILED" in resumed.stdout
    assert_budget_reached_cleanly(trial_rows(db), 3, optuna_db=db)
    after = query(db, "SELECT number, params, value FROM hp_trials WHERE state = 'COMPLETE'")
    assert set(completed) <= set(after), "every trial completed before the kill is kept as it was"


def test_a_model_function_space_refuses_a_changed_function_on_resume(cli, tmp_path: Path) -> None:
    models = _models(tmp_path, "models_resume")
    space = _space(tmp_path, models)
    assert cli("run", space, "--data", "digits", "--trials", "1", "--study", "r", "--quiet",
               "--in-process").code == 0
    changed = write_space(tmp_path, space.read_text().replace(":cnn", ":fails_for_eight"), "changed.yaml")
    result = cli("resume", "r", "--space", changed, "--trials", "2")
    assert result.code == 2 and "space" in result.err


def test_build_model_refuses_a_model_that_does_not_take_the_features(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "models_input.py").write_text(textwrap.dedent("""\
        import keras

        def images(params, info):
            inputs = keras.Input((8, 8, 1))
            return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = resolve_config(space_from_dict({"model": "models_input:images"}), {})
    with pytest.raises(SpaceError, match=r"does not take inputs of shape \(None, 64\)"):
        build_model(config, TaskInfo("multiclass", 64, 10))


@pytest.mark.slow
def test_dask_workers_import_a_model_function_by_name(tmp_path: Path) -> None:
    from tests.dask_cluster import dask_cluster

    models = _models(tmp_path, "models_dask")
    db = tmp_path / "d.db"
    with dask_cluster(tmp_path, workers=1) as cluster:
        run_hpsearch(tmp_path, "run", _space(tmp_path, models), "--engine", "sklearn", "--algorithm", "grid",
                     "--cv", "2", "--data", "digits", "--study", "d", "--storage", db, "--quiet",
                     "--dask", cluster.scheduler_file)
    assert_budget_reached_cleanly(trial_rows(db), 4)
    assert {row[1] for row in trial_rows(db)} == {"COMPLETE"}


def test_resume_after_the_model_function_was_removed_is_one_sentence(cli, tmp_path: Path) -> None:
    models = _models(tmp_path, "models_removed")
    assert cli("run", _space(tmp_path, models), "--data", "digits", "--trials", "1", "--study", "gone",
               "--quiet", "--in-process").code == 0
    (tmp_path / f"{models}.py").write_text("import keras\n", encoding="utf-8")
    import importlib
    import sys

    sys.modules.pop(models, None)
    importlib.invalidate_caches()
    result = cli("resume", "gone", "--trials", "2")
    assert result.code == 2
    assert f"model function '{models}:cnn' cannot be found" in result.err and "space.yaml" in result.err
