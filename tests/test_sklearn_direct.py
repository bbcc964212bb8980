"""``--trainer hpsearch``: the scikit-learn engine's folds trained outside SciKeras' fit, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import grid_space, run_in_process

#: 2 x 2 = 4 candidates on breast_cancer, long enough to learn (held-out accuracy above 0.9).
GRID_SPACE = grid_space([8, 16], [0.003, 0.03], epochs=5, batch_size=32)


def _run(cli, space, *args):
    return run_in_process(cli, "sklearn", space, *args)


def _trials(cli, study):
    return {(t["params"]["n_neurons"], t["params"]["learning_rate"]): t
            for t in json.loads(cli("trials", study, "--json").out)}


def test_direct_folds_score_as_scikeras_within_noise_in_process_and_in_fold_processes(cli, tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    common = ("--data", "breast_cancer", "--cv", "3")
    dry = _run(cli, space, *common, "--trainer", "hpsearch", "--dry-run")
    assert dry.code == 0, dry.err
    assert "--trainer hpsearch: each fold trains the same model" in dry.out
    for study, extra in (("scikeras", ()), ("direct", ("--trainer", "hpsearch")),
                         ("direct2", ("--trainer", "hpsearch", "--jobs", "2"))):
        result = _run(cli, space, *common, "--study", study, *extra)
        assert result.code == 0, result.err
    reference, direct, parallel = _trials(cli, "scikeras"), _trials(cli, "direct"), _trials(cli, "direct2")
    assert sorted(direct) == sorted(reference) == sorted(parallel)
    for key, trial in direct.items():
        assert trial["state"] == "COMPLETE"
        folds = [trial["metrics"][f"split{fold}_test_score"] for fold in range(3)]
        assert trial["value"] == pytest.approx(np.mean(folds))
        assert trial["metrics"]["std_test_score"] == pytest.approx(np.std(folds))
        # Every fold's curves, the per-epoch validation metrics included, five epochs each.
        for fold in range(3):
            assert len(trial["curves"][f"split{fold}_loss"]) == 5
            assert len(trial["curves"][f"split{fold}_val_auc"]) == 5
        assert trial["epochs_run"] == 5
        # The same model and training in another batch order: the same score within that order's noise.
        assert trial["value"] > 0.85
        assert trial["value"] == pytest.approx(reference[key]["value"], abs=0.05)
        # Fold processes train the same seeded fits: the same values to the bit.
        assert parallel[key]["value"] == trial["value"]
        assert parallel[key]["curves"]["split2_val_loss"] == trial["curves"]["split2_val_loss"]
    assert "study 'direct' (sklearn/grid, trainer hpsearch)" in cli("best", "direct").out
    best = json.loads(cli("best", "direct", "--json").out)
    assert best["value"] == max(trial["value"] for trial in direct.values())

    # What the scores mean is the study's: a resume may not change the trainer.
    refused = cli("resume", "direct", "--trainer", "scikeras")
    assert refused.code == 2
    assert "different --trainer (study: hpsearch, given: scikeras)" in refused.err
    assert "Traceback" not in refused.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trainer", "fast"], "--trainer must be one of scikeras, hpsearch, population, but got 'fast'"),
        (["--engine", "optuna", "--trainer", "hpsearch"], "--trainer does not apply to engine 'optuna'"),
    ],
)
def test_bad_trainer_settings_are_one_sentence_and_exit_2(cli, tmp_path, args, message):
    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    result = cli("run", space, "--engine", "sklearn", "--data", "iris", "--study", "bad", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_a_cached_traced_model_trains_exactly_as_a_fresh_one():
    """The traced model of a structure is reused, restarted from each fit's fresh build: a fit after other
    fits (another structure, another candidate of the same structure) gives what it gives on its own."""
    from hpsearch.data import load_dataset
    from hpsearch.engines.sklearn.cross_validation import cv_rows
    from hpsearch.engines.sklearn.estimators import make_estimator
    from hpsearch.spaces import resolve_config, space_from_dict
    from hpsearch.training.direct_fit import TracedModels
    from hpsearch.training.fold_fitting import fit_and_score
    from hpsearch.training.scoring import scorer
    from sklearn.model_selection import StratifiedKFold

    space = space_from_dict({"objective": "val_accuracy", "params": {},
                             "fixed": {"n_hidden": 1, "n_neurons": 8, "epochs": 3, "batch_size": 32,
                                       "dropout": 0.2}})
    dataset = load_dataset("breast_cancer", seed=0)
    x, y = cv_rows(dataset)
    estimator = make_estimator(dataset.task, resolve_config(space, {}), seed=3)
    score = scorer(estimator, "accuracy")
    train, test = next(StratifiedKFold(n_splits=3).split(x, y))

    def fit(params, cache):
        curve = []
        result = fit_and_score(estimator, params, x, y, train, test, score, fold=0, trainer="hpsearch",
                               on_epoch=lambda epoch, logs: curve.append(dict(logs)), compiled_models=cache)
        return result.score, curve

    alone = fit({"model__learning_rate": 0.01}, TracedModels())
    cache = TracedModels()
    fit({"model__learning_rate": 0.1, "model__kernel_initializer": "he_normal"}, cache)  # same structure
    fit({"model__n_neurons": 4}, cache)  # another structure
    again = fit({"model__learning_rate": 0.01}, cache)
    assert (cache.misses, cache.hits) == (2, 1), "the last fit reused the first one's traced model"
    assert again == alone


def test_a_direct_build_starts_from_the_weights_of_a_seeded_build():
    """The direct fit seeds its build without TensorFlow's global seed (setting it clears the kernel cache):
    the initial weights are those of ``keras.utils.set_random_seed``."""
    from hpsearch.spaces import TaskInfo, build_model, resolve_config, space_from_dict
    from hpsearch.training.direct_fit import _seed_build
    from hpsearch.training.fit import seed_everything

    space = space_from_dict({"objective": "val_accuracy", "params": {},
                             "fixed": {"n_hidden": 2, "n_neurons": 8, "dropout": 0.1}})
    task = TaskInfo(kind="binary", n_features=5, n_classes=2)
    seed_everything(11)
    reference = [w.copy() for w in build_model(resolve_config(space, {}), task).get_weights()]
    _seed_build(11)
    built = build_model(resolve_config(space, {}), task).get_weights()
    assert len(built) == len(reference)
    for ours, theirs in zip(built, reference, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("trainer", ["scikeras", "hpsearch"])
def test_a_dask_fold_task_scores_a_regression_loss_with_our_own_scorer(trainer):
    """A fold sent to a Dask worker is scored as a local fold is: the regression ``loss`` objective's
    scoring (the MSE of the standardized target) is ours, not a name scikit-learn knows."""
    from hpsearch.data import load_dataset
    from hpsearch.engines.sklearn.cross_validation import cv_rows
    from hpsearch.engines.sklearn.estimators import make_estimator
    from hpsearch.executors.cluster import fit_fold_task
    from hpsearch.spaces import resolve_config, space_from_dict
    from hpsearch.training.scoring import scoring_for
    from sklearn.model_selection import KFold

    space = space_from_dict({"objective": "val_loss", "params": {},
                             "fixed": {"n_hidden": 1, "n_neurons": 8, "epochs": 2, "batch_size": 64}})
    dataset = load_dataset("diabetes", seed=0)
    x, y = cv_rows(dataset)
    estimator = make_estimator(dataset.task, resolve_config(space, {}), seed=0)
    scoring = scoring_for("val_loss", "regression").name
    train, test = next(KFold(n_splits=2).split(x, y))
    result, epochs = fit_fold_task((x, y, None, estimator, scoring, trainer), {}, 0, train, test)
    assert result.error is None, result.error
    # Minus the standardized MSE: about -1 for a model that has barely learned, never thousands.
    assert -5.0 < result.score < 0.0
    assert [epoch for epoch, _ in epochs] == [0, 1]
