"""Decision thresholds: chosen on the validation split by ``retrain --threshold-for``, stored in the model
card, applied by ``predict``; and the bundled imbalanced example that needs them."""

from __future__ import annotations

import csv
import json
from importlib import resources

import numpy as np
import pytest
from hpsearch.results.thresholds import choose_threshold, parse_criterion

#: The bundled imbalanced data, small model, few epochs: enough to rank rows, not to separate them.
SPACE = """\
task: binary
objective: val_pr_auc
params:
  n_neurons: {type: categorical, choices: [8]}
fixed: {n_hidden: 1, epochs: 4, batch_size: 32, learning_rate: 0.003}
"""


def test_retrain_threshold_for_f1_is_chosen_on_validation_stored_and_applied_by_predict(cli, tmp_path):
    import keras
    from hpsearch.data import load_dataset
    from sklearn.metrics import f1_score

    space = tmp_path / "rare.yaml"
    space.write_text(SPACE)
    result = cli("run", space, "--data", "imbalanced", "--class-weight", "balanced", "--trials", "1",
                 "--study", "rare", "--quiet", "--in-process", "--pruner", "none")
    assert result.code == 0, result.err
    result = cli("retrain", "rare", "--threshold-for", "f1", "--epochs", "4", "--quiet", "--out",
                 tmp_path / "m")
    assert result.code == 0, result.err
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    threshold = card["threshold"]
    value = threshold["value"]
    assert threshold["chosen_by"] == "f1" and threshold["chosen_on"] == "validation" and threshold["reached"]
    assert card["output"]["threshold"] == value and 0 < value < 1 and value != 0.5
    # Test metrics at the chosen threshold and at 0.5, in the card, the database and `best`.
    assert set(threshold["test"]) == set(threshold["test_at_0.5"]) >= {"precision", "recall", "f1", "tp"}
    record = json.loads(cli("best", "rare", "--json").out)["models"][0]
    assert record["test_metrics"]["threshold"] == value
    assert record["test_metrics"]["f1_at_threshold"] == threshold["test"]["f1"]
    assert "f1_at_threshold=" in cli("best", "rare").out

    # Chosen on the validation split: the best F1 any threshold reaches there, computed independently.
    dataset = load_dataset("imbalanced", class_weight="balanced", seed=0)
    network = keras.models.load_model(tmp_path / "m" / "checkpoint.keras", safe_mode=True)
    scores = network.predict(dataset.x_val, verbose=0).reshape(-1)
    best_f1 = max(f1_score(dataset.y_val, scores >= t) for t in np.unique(scores))
    assert f1_score(dataset.y_val, scores >= value) == pytest.approx(best_f1)
    assert threshold["validation"]["f1"] == pytest.approx(best_f1)
    assert threshold["validation"]["f1"] >= threshold["validation_at_0.5"]["f1"]

    # predict applies the card's threshold, not 0.5.
    rows = resources.files("search") / "datasets" / "imbalanced.csv"
    out = tmp_path / "predictions.csv"
    result = cli("predict", tmp_path / "m" / "model.keras", rows, "--out", out)
    assert result.code == 0, result.err
    with open(out, newline="") as handle:
        predicted = list(csv.DictReader(handle))
    probability = np.array([float(row["probability_malignant"]) for row in predicted])
    labels = np.array([row["prediction"] for row in predicted])
    assert (labels == np.where(probability >= value, "malignant", "benign")).all()
    between = (probability >= min(value, 0.5)) & (probability < max(value, 0.5))
    assert between.any(), "some rows fall between 0.5 and the threshold, where the two decide differently"


def test_threshold_for_is_refused_for_bad_criteria_and_non_binary_tasks(cli, tmp_path):
    result = cli("retrain", "nothing", "--threshold-for", "precision")
    assert result.code == 2 and "Traceback" not in result.err
    assert "--threshold-for precision alone picks a trivial threshold; ask for precision@X" in result.err
    assert "must be in (0, 1]" in cli("retrain", "nothing", "--threshold-for", "recall@1.5").err

    space = tmp_path / "s.yaml"
    space.write_text("fixed: {n_hidden: 1, n_neurons: 4, epochs: 1}\n")
    assert cli("run", space, "--data", "iris", "--trials", "1", "--study", "iris", "--quiet",
               "--in-process").code == 0
    result = cli("retrain", "iris", "--threshold-for", "f1", "--out", tmp_path / "m")
    assert result.code == 2
    assert result.err.strip() == ("error: --threshold-for needs a binary task, but study 'iris' is "
                                  "multiclass; only a binary model has a decision threshold")
    assert not (tmp_path / "m").exists(), "refused before any training"


@pytest.mark.parametrize(("criterion", "expected"), [
    # Scores 0.9 0.8 0.7 0.6 0.4 0.3 0.2 0.1 with labels 1 1 0 1 0 1 0 0; "top n" predicts the n highest
    # positive, and the threshold returned lies halfway to the next lower score.
    ("f1", 0.25),              # top 6: precision 4/6, recall 1, F1 0.8 (top 4: 0.75)
    ("recall@0.99", 0.75),     # precision 1 only in the top 2 (recall 0.5)
    ("recall@0.7", 0.5),       # precision >= 0.7: top 1, 2, 4; the most recall at top 4 (0.75)
    ("precision@0.75", 0.5),   # recall >= 0.75: top 4..8; the best precision at top 4 (0.75)
    ("precision@1.0", 0.25),   # every positive: top 6 at the best precision
    ("youden", 0.75),          # recall - false positive rate 0.5 at top 2, 4 and 6: the highest wins
])
def test_criteria_pick_the_documented_thresholds(criterion, expected):
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    choice = choose_threshold(labels, scores, parse_criterion(criterion))
    assert choice.reached and choice.threshold == pytest.approx(expected)


def test_an_unreachable_criterion_keeps_half():
    choice = choose_threshold(np.array([0, 1]), np.array([0.9, 0.1]), parse_criterion("recall@0.9"))
    assert not choice.reached and choice.threshold == 0.5


def test_the_imbalanced_preset_runs_in_one_command(cli):
    result = cli("run", "imbalanced", "--data", "imbalanced", "--class-weight", "balanced", "--dry-run")
    assert result.code == 0, result.err
    assert "objective val_pr_auc (maximize)" in result.out
    assert "imbalanced: 397 rows, 30 features, binary (2 classes)" in result.out
