"""End-to-end scikit-learn searches through the CLI on bundled data, checked against scikit-learn itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hpsearch.storage import open_storage

from tests.helpers import grid_space, run_in_process, write_space

#: 2 x 2 = 4 candidates, each fitted on 2 folds.
GRID_SPACE = grid_space([4, 16], [0.001, 0.03], epochs=3, batch_size=32)

RANDOM_SPACE = """\
objective: val_loss
params:
  n_neurons: {type: int, low: 4, high: 16}
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
fixed: {n_hidden: 1, epochs: 2, batch_size: 64}
"""

#: SGD at this rate on the raw diabetes targets diverges: that candidate fails, the other completes.
DIVERGING_SPACE = """\
objective: val_loss
params:
  learning_rate: {type: categorical, choices: [1.0e+6, 1.0e-3]}
fixed: {n_hidden: 1, n_neurons: 4, epochs: 2, batch_size: 64, optimizer: sgd}
"""


def _run(cli, space, *args):
    return run_in_process(cli, "sklearn", space, *args)


def test_grid_search_records_folds_and_agrees_with_gridsearchcv(cli, tmp_path, db_url):
    from hpsearch.data import load_dataset
    from hpsearch.engines.sklearn.cross_validation import cv_rows
    from hpsearch.engines.sklearn.estimators import make_estimator
    from hpsearch.spaces import load_space, resolve_config
    from hpsearch.spaces.compile_sklearn import to_param_grid
    from sklearn.base import is_classifier
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    space_path = write_space(tmp_path, GRID_SPACE)
    result = _run(cli, space_path, "--data", "iris", "--cv", "2", "--study", "g")
    assert result.code == 0, result.err

    trials = json.loads(cli("trials", "g", "--json").out)
    assert len(trials) == 4, "without --trials a grid search fits the whole grid"
    assert all(trial["state"] == "COMPLETE" for trial in trials)
    for trial in trials:
        folds = [trial["metrics"]["split0_test_score"], trial["metrics"]["split1_test_score"]]
        assert trial["value"] == pytest.approx(np.mean(folds))
        assert trial["metrics"]["mean_test_score"] == pytest.approx(np.mean(folds))
        assert trial["metrics"]["std_test_score"] == pytest.approx(np.std(folds))
        # Per-epoch curves of every fold, three epochs each.
        assert len(trial["curves"]["split0_loss"]) == len(trial["curves"]["split1_loss"]) == 3
        # AUC and F1 are scored on each fold's validation rows once per epoch, not on training batches.
        assert len(trial["curves"]["split0_val_auc"]) == len(trial["curves"]["split1_val_f1"]) == 3
        assert "split0_auc" not in trial["curves"] and "split0_accuracy" in trial["curves"]
        assert trial["epochs_run"] == 3
    table = cli("trials", "g").out
    assert "fold scores" in table.splitlines()[0]

    # scikit-learn on the same rows, folds, estimator and scoring.
    space = load_space(str(space_path))
    dataset = load_dataset("iris", seed=0)
    x, y = cv_rows(dataset)
    estimator = make_estimator(dataset.task, resolve_config(space, {}), seed=0)
    assert is_classifier(estimator)
    # Folds named explicitly, so the comparison fails if our engine ever splits classes unstratified.
    search = GridSearchCV(estimator, to_param_grid(space), cv=StratifiedKFold(n_splits=2),
                          scoring="accuracy", error_score="raise")
    search.fit(x, y)
    ours = sorted((t["params"]["n_neurons"], t["params"]["learning_rate"], t["value"]) for t in trials)
    theirs = sorted((p["model__n_neurons"], p["model__learning_rate"], s)
                    for p, s in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"],
                                    strict=True))
    assert [row[:2] for row in ours] == [row[:2] for row in theirs]
    assert [row[2] for row in ours] == pytest.approx([row[2] for row in theirs])

    best = json.loads(cli("best", "g", "--json").out)
    assert best["params"] == {"n_neurons": search.best_params_["model__n_neurons"],
                              "learning_rate": search.best_params_["model__learning_rate"]}
    assert best["value"] == pytest.approx(search.best_score_)
    assert "2 folds:" in cli("best", "g").out
    compared = json.loads(cli("compare", "g", "--json").out)[0]
    assert compared["folds_per_trial"] == 2 and compared["epochs_total"] == 4 * 3
    assert "12 x 2 folds" in cli("compare", "g").out


def test_dry_run_of_the_absenteeism_grid_counts_768_candidates_and_3840_fits(cli):
    result = cli("run", "absenteeism-grid", "--engine", "sklearn", "--cv", "5", "--data", "breast_cancer",
                 "--dry-run")
    assert result.code == 0, result.err
    assert "GridSearchCV over SciKeras KerasClassifier" in result.out
    assert "5 folds for each of 768 candidates, totalling 3840 fits" in result.out
    assert "budget: 768 trials" in result.out
    assert cli("studies").out.count("\n") <= 1, "a dry run writes nothing"


def test_random_search_samples_what_randomizedsearchcv_samples(cli, tmp_path):
    from hpsearch.spaces import load_space
    from hpsearch.spaces.compile_sklearn import to_param_distributions
    from sklearn.model_selection import ParameterSampler

    space_path = write_space(tmp_path, RANDOM_SPACE)
    result = _run(cli, space_path, "--algorithm", "random", "--trials", "3", "--cv", "2", "--data", "wine",
                  "--study", "r", "--seed", "7")
    assert result.code == 0, result.err
    trials = json.loads(cli("trials", "r", "--json").out)
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    sampled = list(ParameterSampler(to_param_distributions(load_space(str(space_path))), n_iter=3,
                                    random_state=7))
    assert [t["params"]["n_neurons"] for t in trials] == [p["model__n_neurons"] for p in sampled]
    assert [t["params"]["learning_rate"] for t in trials] == pytest.approx(
        [p["model__learning_rate"] for p in sampled])
    # Log range sampled log-uniformly: within bounds, value is minus the mean held-out log loss.
    for trial in trials:
        assert 1e-4 <= trial["params"]["learning_rate"] <= 1e-1
        assert trial["value"] == pytest.approx(-trial["metrics"]["mean_test_score"])


@pytest.mark.parametrize("trainer", ["scikeras", "hpsearch"])
def test_a_failing_candidate_is_failed_and_the_search_goes_on(cli, tmp_path, trainer):
    space_path = write_space(tmp_path, DIVERGING_SPACE)
    result = _run(cli, space_path, "--data", "diabetes", "--cv", "2", "--study", "d", "--trainer", trainer)
    assert result.code == 0, result.err
    trials = {t["params"]["learning_rate"]: t for t in json.loads(cli("trials", "d", "--json").out)}
    assert trials[1e6]["state"] == "FAILED"
    assert "fold 0" in trials[1e6]["error"] and "loss" in trials[1e6]["error"]
    assert "split0_test_score" not in trials[1e6]["metrics"], "error_score: the failed fold has no score"
    assert trials[1e-3]["state"] == "COMPLETE"
    # A regression's curves are in the target's own units: an MSE in the thousands on diabetes.
    assert max(trials[1e-3]["curves"]["split0_val_mse"]) > 1000
    assert json.loads(cli("best", "d", "--json").out)["params"] == {"learning_rate": 1e-3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cv", "1"], "--cv must be an integer of at least 2"),
        (["--jobs", "64"], "--jobs 64 asks for more parallel fits than the"),
        (["--cv", "200"], "--cv 200 needs at least 200 rows"),
    ],
)
def test_bad_cv_settings_are_one_sentence_and_exit_2(cli, tmp_path, args, message):
    space_path = write_space(tmp_path, GRID_SPACE)
    result = _run(cli, space_path, "--data", "iris", "--study", "bad", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_parallel_folds_finish_and_match_sequential_folds(cli, tmp_path, db_url):
    """--jobs 2 fits the folds in two spawned processes of one TensorFlow thread each: no hang, and the
    same scores as fitting them one after another (every fit is seeded)."""
    space_path = write_space(tmp_path, GRID_SPACE.replace("[4, 16]", "[8]"))
    assert _run(cli, space_path, "--data", "iris", "--cv", "2", "--study", "seq").code == 0
    result = _run(cli, space_path, "--data", "iris", "--cv", "2", "--jobs", "2", "--study", "par")
    assert result.code == 0, result.err
    sequential = json.loads(cli("trials", "seq", "--json").out)
    parallel = json.loads(cli("trials", "par", "--json").out)
    assert [t["state"] for t in parallel] == ["COMPLETE"] * 2
    for seq, par in zip(sequential, parallel, strict=True):
        assert par["params"] == seq["params"]
        assert par["value"] == pytest.approx(seq["value"])
        # Epoch rows written by the fold processes themselves.
        assert len(par["curves"]["split0_loss"]) == len(par["curves"]["split1_loss"]) == 3
    storage = open_storage(db_url)
    assert not storage.running_trials(storage.get_study("par").id)
