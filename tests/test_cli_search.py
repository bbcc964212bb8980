"""End-to-end searches through the CLI with the Optuna engine on bundled data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import hpsearch_command, query, wait_for


def test_optuna_search_records_every_trial_with_curves(cli, tiny_space):
    result = cli("run", tiny_space, "--engine", "optuna", "--data", "breast_cancer", "--trials", "8",
                 "--study", "s", "--quiet")
    assert result.code == 0, result.err
    assert "best trial #" in result.out

    trials = json.loads(cli("trials", "s", "--json").out)
    assert [t["number"] for t in trials] == list(range(8))
    assert {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    for trial in trials:
        assert set(trial["params"]) == {"n_neurons", "learning_rate", "activation"}
        assert len(trial["curves"]["val_accuracy"]) == trial["epochs_run"] >= 1
        assert len(trial["curves"]["loss"]) == trial["epochs_run"]
        assert trial["duration_s"] > 0

    best = json.loads(cli("best", "s", "--json").out)
    completed = [t for t in trials if t["state"] == "COMPLETE"]
    top = max(completed, key=lambda t: (t["value"], -t["number"]))
    assert best["number"] == top["number"]
    assert best["value"] == pytest.approx(top["value"])
    assert best["params"] == top["params"]
    # The value is the best epoch's objective, as recorded in the curve.
    assert best["value"] == pytest.approx(max(top["curves"]["val_accuracy"]))
    assert best["objective"] == "val_accuracy" and best["direction"] == "maximize"


def test_listings_as_text_and_json(cli, tiny_space):
    assert cli("run", tiny_space, "--data", "iris", "--trials", "3", "--study", "iris-s", "--quiet",
               "--pruner", "none", "--in-process").code == 0
    studies = json.loads(cli("studies", "--json").out)
    assert [s["name"] for s in studies] == ["iris-s"]
    assert studies[0]["states"]["COMPLETE"] == 3 and studies[0]["engine"] == "optuna"
    text = cli("studies").out
    assert "iris-s" in text and "optuna" in text

    table = cli("trials", "iris-s", "--sort", "value", "--desc", "--limit", "2").out.splitlines()
    assert len(table) == 3  # header + 2 rows
    values = [float(line.split()[2]) for line in table[1:]]
    assert values == sorted(values, reverse=True)
    assert cli("trials", "iris-s", "--state", "failed").out.startswith("study 'iris-s' has no trials")

    best_text = cli("best", "iris-s", "--top", "2").out
    assert "best trial #" in best_text and "learning_rate" in best_text


@pytest.mark.parametrize("algorithm", ["random", "grid", "cmaes"])
def test_other_samplers(cli, tmp_path, algorithm):
    space = tmp_path / "grid.yaml"
    space.write_text(
        "objective: val_loss\n"
        "params:\n"
        "  n_neurons: {type: int, low: 4, high: 8, step: 4}\n"
        "  learning_rate: {type: float, low: 0.005, high: 0.01, step: 0.005}\n"
        "fixed: {n_hidden: 1, epochs: 2}\n"
    )
    # A budget above the grid's 4 points: the grid ends first, and the run says so.
    budget = "6" if algorithm == "grid" else "4"
    result = cli("run", space, "--algorithm", algorithm, "--data", "wine", "--trials", budget, "--study", "x",
                 "--quiet", "--pruner", "none", "--in-process")
    assert result.code == 0, result.err
    trials = json.loads(cli("trials", "x", "--json").out)
    assert len(trials) == 4
    if algorithm == "grid":  # the grid has exactly 4 points: each tried once
        points = {(t["params"]["n_neurons"], t["params"]["learning_rate"]) for t in trials}
        assert points == {(4, 0.005), (4, 0.01), (8, 0.005), (8, 0.01)}
        assert "the optuna grid search ended after 4 of its 6 trials: the space's grid has 4 candidates" in (
            result.out)
    else:
        assert "search ended after" not in result.out
    study = json.loads(cli("studies", "--json").out)[0]
    assert study["algorithm"] == algorithm and study["direction"] == "minimize"


CONTINUOUS_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 32}
  learning_rate: {type: float, low: 1.0e-3, high: 5.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 1}
"""


def test_samplers_are_told_apart(cli, tmp_path):
    """Each --algorithm really runs its own sampler: the same seed gives the same proposals for one
    sampler and different ones for another, and CMA-ES leaves its generation in Optuna's trials."""
    space = tmp_path / "c.yaml"
    space.write_text(CONTINUOUS_SPACE)

    def proposals(algorithm: str, study: str) -> list[tuple]:
        result = cli("run", space, "--algorithm", algorithm, "--data", "iris", "--trials", "3", "--study",
                     study, "--quiet", "--pruner", "none", "--in-process", "--seed", "5")
        assert result.code == 0, result.err
        trials = json.loads(cli("trials", study, "--json").out)
        return [(t["params"]["n_neurons"], t["params"]["learning_rate"]) for t in trials]

    random_once, random_again = proposals("random", "r1"), proposals("random", "r2")
    assert random_once == random_again, "a seeded sampler proposes the same configurations"
    assert proposals("tpe", "t") != random_once
    assert proposals("cmaes", "c") != random_once
    generations = query(tmp_path / "hp.db", "SELECT COUNT(*) FROM trial_system_attributes a JOIN trials t "
                        "ON t.trial_id = a.trial_id JOIN studies s ON s.study_id = t.study_id "
                        "WHERE s.study_name = 'c' AND a.key = 'cma:generation'")
    assert generations[0][0] >= 1, "CMA-ES sampled relative to its distribution after the first trial"


def test_hyperband_pruner_and_regression(cli, tmp_path, db_url):
    space = tmp_path / "reg.yaml"
    space.write_text(
        "objective: val_mae\n"
        "params:\n"
        "  learning_rate: {type: float, low: 1.0e-4, high: 5.0e-2, log: true}\n"
        "fixed: {n_hidden: 1, n_neurons: 8, epochs: 4}\n"
    )
    result = cli("run", space, "--data", "diabetes", "--trials", "6", "--study", "r", "--quiet",
                 "--pruner", "hyperband", "--in-process")
    assert result.code == 0, result.err
    trials = json.loads(cli("trials", "r", "--json").out)
    assert len(trials) == 6
    assert all("val_mae" in t["curves"] for t in trials)
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    for trial in pruned:
        assert trial["epochs_run"] <= 4 and len(trial["curves"]["val_mae"]) == trial["epochs_run"]
    assert json.loads(cli("best", "r", "--json").out)["direction"] == "minimize"


def test_hyperband_pruner_prunes_hopeless_trials(cli, tmp_path):
    space = tmp_path / "prune.yaml"
    # Half the configurations barely learn (learning rate 1e-5): Hyperband's rungs must cut them short.
    space.write_text(
        "objective: val_accuracy\n"
        "params:\n"
        "  n_neurons: {type: int, low: 8, high: 32}\n"
        "  learning_rate: {type: categorical, choices: [1.0e-5, 5.0e-2]}\n"
        "fixed: {n_hidden: 1, epochs: 9, batch_size: 16}\n"
    )
    result = cli("run", space, "--data", "iris", "--trials", "12", "--study", "hb", "--quiet",
                 "--pruner", "hyperband", "--algorithm", "random", "--in-process")
    assert result.code == 0, result.err
    trials = json.loads(cli("trials", "hb", "--json").out)
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned, "the Hyperband pruner stopped at least one trial early"
    for trial in pruned:
        assert trial["epochs_run"] < 9 and len(trial["curves"]["val_accuracy"]) == trial["epochs_run"]
    assert sum(t["epochs_run"] for t in trials) < 12 * 9, "pruning saved epochs"
    # Optuna's own record agrees with ours on which trials were pruned.
    optuna_pruned = query(tmp_path / "hp.db", "SELECT COUNT(*) FROM trials WHERE state = 'PRUNED'")
    assert optuna_pruned == [(len(pruned),)]


def test_csv_data_with_categorical_column_and_class_weights(cli, tmp_path, tiny_space):
    import numpy as np

    rng = np.random.default_rng(0)
    rows = ["size,colour,label"]
    for _ in range(160):
        size = rng.normal()
        colour = rng.choice(["red", "green", "blue"])
        label = "yes" if size + (colour == "red") > 0.8 else "no"
        rows.append(f"{size:.3f},{colour},{label}")
    csv = tmp_path / "data.csv"
    csv.write_text("\n".join(rows) + "\n")
    result = cli("run", tiny_space, "--data", csv, "--target", "label", "--trials", "2", "--study", "c",
                 "--class-weight", "balanced", "--quiet", "--algorithm", "random", "--in-process",
                 "--pruner", "none")
    assert result.code == 0, result.err
    # size stays one column, colour becomes three one-hot columns
    assert "2 features (4 after encoding)" in result.out
    study = json.loads(cli("studies", "--json").out)[0]
    assert study["data"] == str(csv) and study["states"]["COMPLETE"] == 2
    # The same configurations without class weights train differently: the weights reached the fits.
    unweighted = cli("run", tiny_space, "--data", csv, "--target", "label", "--trials", "2", "--study", "u",
                     "--quiet", "--algorithm", "random", "--in-process", "--pruner", "none")
    assert unweighted.code == 0, unweighted.err
    weighted_trials = json.loads(cli("trials", "c", "--json").out)
    plain_trials = json.loads(cli("trials", "u", "--json").out)
    assert [t["params"] for t in weighted_trials] == [t["params"] for t in plain_trials]
    for weighted, plain in zip(weighted_trials, plain_trials, strict=True):
        assert weighted["curves"]["loss"][0] != pytest.approx(plain["curves"]["loss"][0], rel=1e-3)


def test_optuna_cli_opens_our_database(cli, tiny_space, db_url):
    assert cli("run", tiny_space, "--data", "iris", "--trials", "2", "--study", "shared", "--quiet",
               "--in-process").code == 0
    optuna = hpsearch_command()[0].replace("hpsearch", "optuna")
    listed = subprocess.run([optuna, "studies", "--storage", db_url, "-f", "json"], capture_output=True,
                            text=True, check=True)
    studies = json.loads(listed.stdout)
    assert [s["name"] for s in studies] == ["shared"]
    assert studies[0]["n_trials"] == 2


def test_dry_run_counts_grid_candidates_and_writes_nothing(cli, tmp_path):
    result = cli("run", "absenteeism-grid", "--data", "breast_cancer", "--dry-run")
    assert result.code == 0, result.err
    assert "768 grid candidates" in result.out
    assert not (tmp_path / "hp.db").exists()


def test_default_run_uses_bundled_space_and_digits(cli):
    result = cli("run", "--dry-run")
    assert result.code == 0, result.err
    assert "preset:default" in result.out and "digits" in result.out and "tpe" in result.out


def test_query_commands_do_not_import_tensorflow(cli, tiny_space, db_url):
    assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "q", "--quiet",
               "--in-process").code == 0
    code = (
        "import sys; from hpsearch.cli import main\n"
        f"for args in (['studies'], ['best', 'q'], ['trials', 'q', '--json']):\n"
        f"    assert main(args + ['--storage', {db_url!r}]) == 0\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'optuna', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout
    helped = subprocess.run(hpsearch_command("--help"), capture_output=True, text=True, check=True)
    assert "resume" in helped.stdout


def test_several_commands_in_one_process_share_the_database(cli, tiny_space):
    # Re-checking the file header used to drop this process's SQLite locks, letting a worker delete
    # the WAL of a database still open here ("disk I/O error" on the next command).
    for name in ("first", "second"):
        assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", name, "--quiet").code == 0
    studies = json.loads(cli("studies", "--json").out)
    assert sorted(s["name"] for s in studies) == ["first", "second"]


def test_searches_run_one_after_another_in_one_process_leave_no_thread_behind(cli, tiny_space):
    import threading

    for name in ("first", "second", "third"):
        assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", name, "--quiet",
                   "--in-process").code == 0
    # A trial's heartbeat thread (and the storage it holds) ends within one beat of the last trial.
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "hpsearch-heartbeat"], timeout_s=30)
