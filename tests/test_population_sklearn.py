"""``--trainer population``: the scikit-learn engine's candidates x folds trained as populations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import grid_space, run_in_process

#: 2 widths x 2 learning rates = 4 candidates of one depth and batch size: one population of 12 members
#: (candidates x 3 folds), the narrower members masked to their width. No dropout: within rounding.
GRID_SPACE = grid_space([8, 16], [0.003, 0.03], epochs=2, batch_size=32)

#: What "the same" means: the folds train from the same initial weights on the same batches, so their
#: scores differ by rounding only, which may flip the prediction of a held-out row near the threshold
#: (a fold holds out about 150 rows: one row is 0.0066).
FOLD_SCORE_TOLERANCE = 0.014
VAL_LOSS_TOLERANCE = 1e-3


def _trials(cli, study):
    return {(t["params"]["n_neurons"], t["params"]["learning_rate"]): t
            for t in json.loads(cli("trials", study, "--json").out)}


def test_population_folds_score_as_each_fold_alone_and_record_the_same(cli, tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    common = ("--data", "breast_cancer", "--cv", "3")
    dry = run_in_process(cli, "sklearn", space, *common, "--trainer", "population", "--dry-run")
    assert dry.code == 0, dry.err
    assert "--trainer population: the candidates' folds train as populations" in dry.out
    for study, trainer in (("alone", "hpsearch"), ("population", "population")):
        # Each in a fresh worker process: the comparison is of two fits from the same seed, which Keras
        # state left in the test process by earlier fits must not touch.
        result = cli("run", space, "--engine", "sklearn", "--quiet", *common, "--study", study, "--trainer",
                     trainer)
        assert result.code == 0, result.err
    alone, population = _trials(cli, "alone"), _trials(cli, "population")
    assert sorted(population) == sorted(alone)
    gaps = []
    for key, trial in population.items():
        reference = alone[key]
        assert trial["state"] == "COMPLETE"
        # The CV records have the same shape: cv_results_'s columns and every fold's curves.
        assert sorted(trial["metrics"]) == sorted(reference["metrics"])
        assert sorted(trial["curves"]) == sorted(reference["curves"])
        assert trial["epochs_run"] == reference["epochs_run"] == 2
        folds = [trial["metrics"][f"split{fold}_test_score"] for fold in range(3)]
        assert trial["value"] == pytest.approx(np.mean(folds))
        assert trial["metrics"]["std_test_score"] == pytest.approx(np.std(folds))
        for fold in range(3):
            score = trial["metrics"][f"split{fold}_test_score"]
            gaps.append(abs(score - reference["metrics"][f"split{fold}_test_score"]))
            assert len(trial["curves"][f"split{fold}_val_auc"]) == 2
            np.testing.assert_allclose(trial["curves"][f"split{fold}_val_loss"],
                                       reference["curves"][f"split{fold}_val_loss"], atol=VAL_LOSS_TOLERANCE)
        assert trial["value"] > 0.7  # it learns: the majority class is 0.63
    assert max(gaps) <= FOLD_SCORE_TOLERANCE
    best = json.loads(cli("best", "population", "--json").out)
    assert best["value"] == max(trial["value"] for trial in population.values())
    # A resume may not change what the scores mean.
    refused = cli("resume", "population", "--trainer", "hpsearch")
    assert refused.code == 2
    assert "different --trainer (study: population, given: hpsearch)" in refused.err


def test_a_diverging_candidate_fails_while_the_others_of_its_population_complete(cli, tmp_path):
    space = tmp_path / "grid.yaml"
    # sgd at a learning rate of 1e9 diverges within the first epoch; 0.01 trains.
    space.write_text(grid_space([8], [0.01, 1.0e9], epochs=2, batch_size=32).replace(
        "fixed: {", "fixed: {optimizer: sgd, "))
    result = run_in_process(cli, "sklearn", space, "--data", "breast_cancer", "--cv", "2", "--study", "nan",
                            "--trainer", "population")
    assert result.code == 0, result.err
    trials = {t["params"]["learning_rate"]: t for t in json.loads(cli("trials", "nan", "--json").out)}
    assert trials[0.01]["state"] == "COMPLETE"
    assert trials[1.0e9]["state"] == "FAILED"
    assert "fold 0: loss became" in trials[1.0e9]["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "2"], "--trainer population trains each population in this process on every core; "
                          "leave out --jobs"),
        (["--algorithm", "halving-grid", "--halving-resource", "rows"],
         "--trainer population runs successive halving on epochs only"),
    ],
)
def test_population_trainer_refuses_what_it_cannot_run_in_one_sentence(cli, tmp_path, args, message):
    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    result = cli("run", space, "--engine", "sklearn", "--data", "iris", "--study", "bad", "--trainer",
                 "population", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
