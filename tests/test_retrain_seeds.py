"""``hpsearch retrain --seeds K``, other trials, the last epoch's weights, and bad retrain requests."""

from __future__ import annotations

import csv
import json
import statistics

import pytest


@pytest.mark.slow
def test_seeds_report_spread_and_export_the_best_validation_seed(cli, tiny_space, tmp_path):
    assert cli("run", tiny_space, "--data", "iris", "--trials", "2", "--study", "i", "--quiet",
               "--pruner", "none", "--in-process").code == 0
    out = tmp_path / "seeded"
    result = cli("retrain", "i", "--seeds", "2", "--seed", "5", "--epochs", "6", "--patience", "3",
                 "--out", out, "--quiet")
    assert result.code == 0, result.err
    assert "mean ± std" in result.out and "exporting seed" in result.out

    card = json.loads((out / "model.json").read_text())
    seeds = card["seeds"]
    assert seeds["seeds"] == [5, 6] and seeds["chosen"] in (5, 6)
    runs = {run["seed"]: run for run in seeds["runs"]}
    for seed in (5, 6):
        run_dir = out / f"seed-{seed}"
        with open(run_dir / "training.csv", newline="") as handle:
            assert len(list(csv.DictReader(handle))) == runs[seed]["epochs_run"]
        assert (run_dir / "checkpoint.keras").is_file() and any((run_dir / "tensorboard").iterdir())
    accuracies = [runs[seed]["test_metrics"]["accuracy"] for seed in (5, 6)]
    assert seeds["test_mean"]["accuracy"] == pytest.approx(statistics.mean(accuracies))
    assert seeds["test_std"]["accuracy"] == pytest.approx(statistics.stdev(accuracies))
    # Chosen on validation, never on test; the exported model is that seed's.
    chosen = max(seeds["runs"], key=lambda run: (run["val_metrics"]["accuracy"], -run["seed"]))
    assert seeds["chosen"] == chosen["seed"]
    assert card["test_metrics"] == chosen["test_metrics"]
    assert card["files"]["training_log"] == f"seed-{chosen['seed']}/training.csv"

    # Another trial's config, keeping the last epoch: runs the whole (tiny) bound.
    other = cli("retrain", "i", "--trial", "1", "--epochs", "3", "--patience", "50", "--no-restore-best",
                "--out", tmp_path / "last", "--quiet")
    assert other.code == 0, other.err
    last = json.loads((tmp_path / "last" / "model.json").read_text())
    assert last["trial"]["number"] == 1
    assert last["training"]["stop_reason"] == "max_epochs" and last["training"]["epochs_run"] == 3
    assert last["training"]["callbacks"]["early_stopping"]["restore_best_weights"] is False

    best = json.loads(cli("best", "i", "--json").out)
    assert [model["trial"] for model in best["models"]] == [1, best["number"]]  # newest first
    assert best["models"][1]["seeds"]["chosen"] == seeds["chosen"]
    assert "2 seeds, test mean ± std" in cli("best", "i").out


def test_bad_retrain_requests_are_one_sentence(cli, db_url):
    from hpsearch.storage import open_storage

    # Every request below is refused before any data is loaded or model trained.
    open_storage(db_url).create_study("b", engine="optuna", algorithm="tpe", objective="val_accuracy",
                                      direction="maximize", space={}, dataset={}, settings={}, versions={})
    for args, expected in [
        (("--seeds", "0"), "--seeds"),
        (("--epochs", "0"), "--epochs"),
        (("--lr-factor", "1.5"), "--lr-factor"),
        (("--trial", "42"), "42"),
    ]:
        result = cli("retrain", "b", *args, "--quiet")
        assert result.code == 2, (args, result.err)
        assert expected in result.err and "Traceback" not in result.err
    missing = cli("retrain", "nope", "--quiet")
    assert missing.code == 2 and "'nope'" in missing.err
