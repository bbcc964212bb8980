"""A space's own training function (``train: module:function``): every engine runs it through the trial
runner, every reported epoch is recorded, and a bad function or return fails only its trial.

The functions are tiny pure-Python simulators of learning curves, in a module written into the test's
folder and put on the Python path (worker processes inherit it through PYTHONPATH).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import query, spawn_hpsearch
from tests.dask_cluster import dask_cluster
from tests.helpers import trial_rows

FUNCTIONS = '''\
import math


def curve(params, report):
    """A deterministic learning curve: accuracy climbs towards ``ceiling`` at ``rate`` per epoch."""
    accuracy = 0.0
    for epoch in range(1, params["epochs"] + 1):
        accuracy = params["ceiling"] * (1 - math.exp(-params["rate"] * epoch))
        report(epoch, val_accuracy=accuracy, loss=1 - accuracy)
    return accuracy


def fails_on_high_ceilings(params, report):
    if params["ceiling"] > 0.8:
        raise RuntimeError("the simulator broke on a high ceiling")
    return curve(params, report)


def returns_nan(params, report):
    report(1, val_accuracy=0.5)
    return float("nan")


def returns_text(params, report):
    return "excellent"


def ignores_its_budget(params, report):
    """Reports 30 epochs whatever ``params["epochs"]`` allows: ``report`` stops it at the budget."""
    for epoch in range(1, 31):
        report(epoch, val_accuracy=params["ceiling"] * (1 - math.exp(-params["rate"] * epoch)))
    raise AssertionError("report let the function pass its budget")


def reports_epoch_zero(params, report):
    report(0, val_accuracy=0.5)
    return 0.5


def interrupted_once(params, report):
    """Ctrl-C in the middle of the first trial's third epoch (once: a marker file remembers it)."""
    from pathlib import Path

    marker = Path("interrupted-once")
    for epoch in range(1, params["epochs"] + 1):
        if epoch == 3 and not marker.exists():
            marker.write_text("done")
            raise KeyboardInterrupt
        report(epoch, val_accuracy=params["ceiling"] * epoch / params["epochs"])
    return params["ceiling"]
'''

SPACE = """\
train: {train}
objective: val_accuracy
params:
  rate: {{type: categorical, choices: [0.1, 0.3, 1.0]}}
  ceiling: {{type: categorical, choices: [0.6, 0.75, 0.9]}}
fixed: {{epochs: 9}}
"""


@pytest.fixture
def functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The simulator module, importable here and in worker processes."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "simulators.py").write_text(FUNCTIONS)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    return folder


def write_space(tmp_path: Path, function: str = "curve") -> Path:
    path = tmp_path / f"{function}.yaml"
    path.write_text(SPACE.format(train=f"simulators:{function}"))
    return path


def epochs_of(db: Path, number: int) -> list[tuple[int, dict]]:
    rows = query(db, "SELECT e.epoch, e.metrics FROM hp_trial_epochs e JOIN hp_trials t ON t.id = e.trial_id "
                     "WHERE t.number = ? ORDER BY e.epoch", (number,))
    return [(epoch, json.loads(metrics)) for epoch, metrics in rows]


def test_optuna_median_pruner_prunes_in_worker_processes_and_records_every_epoch(cli, tmp_path, functions):
    space = write_space(tmp_path)
    result = cli("run", space, "--study", "sim", "--trials", "9", "--algorithm", "grid", "--pruner", "median",
                 "--quiet")
    assert result.code == 0, result.err
    db = tmp_path / "hp.db"
    rows = trial_rows(db, "epochs_run", "value")
    states = [row[1] for row in rows]
    assert len(rows) == 9 and set(states) <= {"COMPLETE", "PRUNED"}
    assert "PRUNED" in states and "COMPLETE" in states
    for number, state, _, _, _, epochs_run, value in rows:
        epochs = epochs_of(db, number)
        # Every epoch the function reported, in order, and nothing more.
        assert [epoch for epoch, _ in epochs] == list(range(epochs_run))
        assert all(set(metrics) == {"val_accuracy", "loss"} for _, metrics in epochs)
        if state == "COMPLETE":
            assert epochs_run == 9 and value == pytest.approx(epochs[-1][1]["val_accuracy"])
        else:
            assert epochs_run < 9
    assert query(db, "SELECT dataset FROM hp_studies")[0][0].count('"kind": "none"') == 1
    best = cli("best", "sim", "--json")
    assert best.code == 0 and json.loads(best.out)["params"]["ceiling"] == 0.9


def test_sklearn_successive_halving_leaves_trials_on_lower_rungs(cli, tmp_path, functions):
    space = write_space(tmp_path)
    result = cli("run", space, "--study", "halving", "--engine", "sklearn", "--algorithm", "halving-grid",
                 "--in-process", "--quiet")
    assert result.code == 0, result.err
    db = tmp_path / "hp.db"
    rows = trial_rows(db, "epochs_run", "engine_trial_id")
    # scikit-learn's plan for 9 candidates and 9 epochs, factor 3: 9 x 1 epoch, 3 x 3, 1 x 9.
    rungs = [int(row[6].partition(":")[0]) for row in rows]
    assert [rungs.count(rung) for rung in (0, 1, 2)] == [9, 3, 1]
    assert [row[5] for row in rows] == [1] * 9 + [3] * 3 + [9]
    assert [row[1] for row in rows] == ["PRUNED"] * 12 + ["COMPLETE"]
    assert json.loads(rows[-1][4])["ceiling"] == 0.9


def test_report_stops_a_function_at_its_rungs_budget(cli, tmp_path, functions):
    space = write_space(tmp_path, "ignores_its_budget")
    result = cli("run", space, "--study", "budget", "--engine", "sklearn", "--algorithm", "halving-grid",
                 "--in-process", "--quiet")
    assert result.code == 0, result.err
    db = tmp_path / "hp.db"
    rows = trial_rows(db, "epochs_run", "value")
    assert [row[5] for row in rows] == [1] * 9 + [3] * 3 + [9]
    assert [row[1] for row in rows] == ["PRUNED"] * 12 + ["COMPLETE"]
    # Scored by the last objective reported within the budget.
    assert rows[-1][6] == pytest.approx(epochs_of(db, rows[-1][0])[-1][1]["val_accuracy"])


def test_keras_tuner_hyperband_runs_the_function_with_each_rounds_budget(cli, tmp_path, functions):
    space = tmp_path / "continuous.yaml"
    space.write_text(SPACE.format(train="simulators:curve").replace(
        "{type: categorical, choices: [0.1, 0.3, 1.0]}", "{type: float, low: 0.05, high: 1.0, log: true}"))
    result = cli("run", space, "--study", "hb", "--engine", "keras-tuner", "--algorithm", "hyperband",
                 "--max-epochs", "3", "--factor", "3", "--in-process", "--quiet")
    assert result.code == 0, result.err
    db = tmp_path / "hp.db"
    rows = trial_rows(db, "epochs_run", "parent_number")
    # Hyperband(max_epochs=3, factor=3): 3 configs x 1 epoch, the best of them again to epoch 3 (run from
    # its first epoch: a function has no weights of ours to continue), 2 configs x 3 epochs.
    assert [row[1] for row in rows] == ["COMPLETE"] * 6
    assert sorted(row[5] for row in rows) == [1, 1, 1, 3, 3, 3]
    continued = [row for row in rows if row[6] is not None]
    assert len(continued) == 1 and continued[0][5] == 3
    assert [epoch for epoch, _ in epochs_of(db, continued[0][0])] == [0, 1, 2]


def test_a_function_that_raises_fails_only_its_trial(cli, tmp_path, functions):
    space = write_space(tmp_path, "fails_on_high_ceilings")
    result = cli("run", space, "--study", "raises", "--engine", "sklearn", "--algorithm", "grid",
                 "--in-process", "--quiet")
    assert result.code == 0, result.err
    rows = trial_rows(tmp_path / "hp.db", "error")
    failed = [row for row in rows if row[1] == "FAILED"]
    assert len(rows) == 9 and len(failed) == 3
    assert all(json.loads(row[4])["ceiling"] == 0.9 for row in failed)
    assert all("RuntimeError: the simulator broke on a high ceiling" in row[5] for row in failed)
    assert all(row[1] == "COMPLETE" for row in rows if row not in failed)


@pytest.mark.parametrize(("function", "sentence"), [
    ("returns_nan", "training function simulators:returns_nan returned nan; it must return a finite number, "
                    "the value of objective 'val_accuracy'"),
    ("returns_text", "training function simulators:returns_text returned 'excellent' (str); it must return "
                     "a finite number, the value of objective 'val_accuracy'"),
    ("reports_epoch_zero", "report() takes epochs counted from 1, each greater than the last (0), but got "
                           "epoch=0"),
])
def test_a_return_that_is_no_finite_number_fails_the_trial_with_one_sentence(cli, tmp_path, functions,
                                                                            function, sentence):
    space = write_space(tmp_path, function)
    result = cli("run", space, "--study", function, "--trials", "2", "--algorithm", "random", "--in-process",
                 "--quiet")
    assert result.code == 1
    assert sentence in result.err
    rows = trial_rows(tmp_path / "hp.db", "error")
    assert [row[1] for row in rows] == ["FAILED", "FAILED"] and {row[5] for row in rows} == {sentence}


def test_a_function_that_does_not_import_is_refused_before_any_study(cli, tmp_path, functions):
    space = tmp_path / "missing.yaml"
    space.write_text(SPACE.format(train="no_such_module:fit"))
    result = cli("run", space, "--study", "missing", "--in-process")
    assert result.code == 2
    assert "no_such_module:fit" in result.err and "cannot be imported" in result.err
    assert not (tmp_path / "hp.db").exists() or not query(tmp_path / "hp.db", "SELECT name FROM hp_studies")


def test_data_options_are_refused_and_retrain_says_why_it_cannot(cli, tmp_path, functions):
    space = write_space(tmp_path)
    refused = cli("run", space, "--data", "iris", "--in-process")
    assert refused.code == 2 and "loads its own data; leave out --data" in refused.err
    assert cli("run", space, "--study", "done", "--trials", "2", "--algorithm", "random", "--in-process",
               "--quiet").code == 0
    assert cli("resume", "done", "--trials", "3", "--in-process", "--quiet").code == 0
    assert len(trial_rows(tmp_path / "hp.db")) == 3
    retrain = cli("retrain", "done")
    assert retrain.code == 2 and "no Keras model of hpsearch's to retrain" in retrain.err


def test_keras_tuner_on_dask_runs_the_function_on_the_workers(tmp_path, functions):
    space = write_space(tmp_path)
    db = tmp_path / "dask.db"
    with dask_cluster(tmp_path, workers=2) as cluster:
        process = spawn_hpsearch("run", space, "--engine", "keras-tuner", "--algorithm", "random",
                                 "--trials", "4", "--study", "remote", "--storage", f"sqlite:///{db}",
                                 "--quiet", "--dask", cluster.scheduler_file, cwd=tmp_path)
        try:
            _, err = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err
    rows = trial_rows(db, "epochs_run")
    assert [row[1] for row in rows] == ["COMPLETE"] * 4 and {row[5] for row in rows} == {9}
    assert query(db, "SELECT COUNT(*) FROM hp_trial_epochs")[0][0] == 36


def test_ctrl_c_inside_the_function_leaves_the_study_resumable(cli, tmp_path, functions):
    space = write_space(tmp_path, "interrupted_once")
    stopped = cli("run", space, "--study", "ctrl-c", "--trials", "3", "--algorithm", "random", "--in-process",
                  "--quiet", "--pruner", "none")
    assert stopped.code == 130 and "hpsearch resume ctrl-c" in stopped.err
    db = tmp_path / "hp.db"
    assert [row[1:3] for row in trial_rows(db)] == [("FAILED", 1)]
    assert [epoch for epoch, _ in epochs_of(db, 0)] == [0, 1]
    assert cli("resume", "ctrl-c", "--in-process", "--quiet").code == 0
    rows = trial_rows(db)
    assert [row[1] for row in rows] == ["FAILED", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert rows[1][3] == 0 and rows[1][4] == rows[0][4]  # the interrupted configuration, retried first
