"""``--trainer population`` with successive halving: each rung's candidates x folds train as populations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import grid_space

#: 2 widths x 2 learning rates = 4 candidates of one depth and batch size. With --factor 3 and the space's
#: 3 epochs the plan is iter 0: 4 candidates x 1 epoch, iter 1: the best 2 x 3 epochs. No dropout, so the
#: folds score as --trainer hpsearch's within rounding; the learning rates are far apart so that rounding
#: cannot change which candidates go on.
SPACE = grid_space([8, 16], [0.001, 0.03], epochs=3, batch_size=32)

#: As in test_population_sklearn: rounding may flip one held-out row near the threshold (about 1/114).
FOLD_SCORE_TOLERANCE = 0.014
FOLDS = 3


def _trials(cli, study):
    """(iteration, width, learning rate) -> trial, and the trials by number."""
    trials = json.loads(cli("trials", study, "--json").out)
    return ({(t["metrics"]["iter"], t["params"]["n_neurons"], t["params"]["learning_rate"]): t
             for t in trials}, {t["number"]: t for t in trials})


def _parent_key(trial, by_number):
    parent = trial.get("parent_number")
    if parent is None:
        return None
    found = by_number[parent]
    return found["metrics"]["iter"], found["params"]["n_neurons"], found["params"]["learning_rate"]


def test_halving_rungs_train_as_populations_with_the_same_rungs_promotions_and_scores(cli, tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text(SPACE)
    common = ("--data", "breast_cancer", "--cv", str(FOLDS), "--algorithm", "halving-grid", "--factor", "3")
    for study, trainer in (("alone", "hpsearch"), ("population", "population")):
        # Each in a fresh worker process: the comparison is of two fits from the same seed, which Keras
        # state left in the test process by earlier fits must not touch.
        result = cli("run", space, "--engine", "sklearn", "--quiet", *common, "--study", study, "--trainer",
                     trainer)
        assert result.code == 0, result.err
    (alone, alone_numbers), (population, numbers) = _trials(cli, "alone"), _trials(cli, "population")
    # The same rungs and the same candidates promoted: 4 on iter 0, the same 2 of them on iter 1.
    assert sorted(population) == sorted(alone)
    assert sorted(key[0] for key in population) == [0, 0, 0, 0, 1, 1]
    gaps = []
    for key, trial in population.items():
        reference = alone[key]
        iteration = key[0]
        assert trial["state"] == reference["state"] == ("PRUNED" if iteration == 0 else "COMPLETE")
        assert trial["metrics"]["n_resources"] == reference["metrics"]["n_resources"] == [1, 3][iteration]
        assert trial["epochs_run"] == reference["epochs_run"] == [1, 3][iteration]
        assert sorted(trial["metrics"]) == sorted(reference["metrics"])
        assert sorted(trial["curves"]) == sorted(reference["curves"])
        # A promoted candidate keeps its chain: its trial names its iter 0 trial.
        assert _parent_key(trial, numbers) == _parent_key(reference, alone_numbers)
        assert (_parent_key(trial, numbers) is None) == (iteration == 0)
        folds = [trial["metrics"][f"split{fold}_test_score"] for fold in range(FOLDS)]
        assert trial["value"] == pytest.approx(np.mean(folds))
        gaps += [abs(score - reference["metrics"][f"split{fold}_test_score"])
                 for fold, score in enumerate(folds)]
    assert max(gaps) <= FOLD_SCORE_TOLERANCE
    # A budget that ends inside a rung (3 of its 4 candidates train as one population), then a resume: the
    # rest of the plan runs, and the study ends as the one run whole.
    cut = cli("run", space, "--engine", "sklearn", "--quiet", *common, "--study", "split", "--trainer",
              "population", "--trials", "3")
    assert cut.code == 0, cut.err
    assert len(_trials(cli, "split")[0]) == 3
    resumed = cli("resume", "split", "--trials", "6", "--quiet")
    assert resumed.code == 0, resumed.err
    split = _trials(cli, "split")[0]
    assert sorted(split) == sorted(population)
    for key, trial in split.items():
        assert trial["state"] == population[key]["state"]
        assert trial["value"] == pytest.approx(population[key]["value"], abs=FOLD_SCORE_TOLERANCE)
    best = json.loads(cli("best", "population", "--json").out)
    last = [trial for key, trial in population.items() if key[0] == 1]
    assert best["value"] == max(trial["value"] for trial in last)
    assert best["value"] > 0.7  # it learns: the majority class is 0.63


def test_population_halving_on_rows_is_refused_in_one_sentence(cli, tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text(SPACE)
    result = cli("run", space, "--engine", "sklearn", "--data", "iris", "--study", "rows", "--trainer",
                 "population", "--algorithm", "halving-random", "--n-candidates", "4", "--halving-resource",
                 "rows")
    assert result.code == 2
    assert "--trainer population runs successive halving on epochs only" in result.err
    assert "--trainer hpsearch for --halving-resource rows" in result.err
    assert "Traceback" not in result.err
