"""``--population`` with the keras-tuner engine: a random search's trials asked of the oracle at once and
trained as populations, each its own trial with its own curve, as the same search trains them alone."""

from __future__ import annotations

import json

import pytest

from tests.conftest import curves_by_config, kill_9_then_resume_two_groups, trials_by_config

pytestmark = pytest.mark.slow

#: Largest difference of a value between a member and the same trial trained alone (no dropout: rounding).
ROUNDING = 1e-4

SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: categorical, choices: [8, 16, 24, 32]}
  learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  optimizer: {type: categorical, choices: [adam, sgd, rmsprop]}
fixed: {n_hidden: 1, epochs: 2, batch_size: 32}
"""


def test_random_search_populations_record_the_trials_of_the_search_alone(cli, tmp_path, monkeypatch):
    from hpsearch.training import population

    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    sizes: list[int] = []
    fit_population = population.fit_population

    def counting(members, *args, **kwargs):
        sizes.append(len(members))
        return fit_population(members, *args, **kwargs)

    monkeypatch.setattr(population, "fit_population", counting)
    common = ("--engine", "keras-tuner", "--algorithm", "random", "--data", "iris", "--trials", "4",
              "--seed", "7", "--quiet", "--in-process")
    together = cli("run", space, *common, "--study", "together", "--population", "4")
    assert together.code == 0, together.err
    assert sizes == [4], "the four trials trained as one population"
    alone = cli("run", space, *common, "--study", "alone")
    assert alone.code == 0, alone.err
    assert sizes == [4], "without --population every trial trains alone"

    mine, theirs = trials_by_config(cli, "together"), trials_by_config(cli, "alone")
    assert sorted(mine) == sorted(theirs) and len(mine) == 4, "the same seed proposes the same configurations"
    for key, trial in mine.items():
        assert trial["state"] == theirs[key]["state"] == "COMPLETE", key
        assert trial["engine_trial_id"] is not None and trial["epochs_run"] == 2, key
        assert abs(trial["value"] - theirs[key]["value"]) <= ROUNDING, key
    curves = {study: curves_by_config(tmp_path / "hp.db", study) for study in ("together", "alone")}
    assert sorted(curves["together"]) == sorted(mine)
    for key, epochs in curves["together"].items():
        assert len(epochs) == 2, key
        for epoch, other in zip(epochs, curves["alone"][key], strict=True):
            assert sorted(epoch) == sorted(other), key
            assert all(abs(epoch[name] - value) <= ROUNDING * max(1.0, abs(value))
                       for name, value in other.items()), key
    dry = cli("run", space, *common, "--study", "dry", "--population", "auto", "--dry-run")
    assert "populations: 256 trials asked of the oracle at a time" in dry.out, dry.out


@pytest.mark.parametrize("algorithm", ["hyperband", "bayesian"])
def test_population_with_an_oracle_that_learns_between_trials_is_refused(cli, tiny_space, algorithm):
    result = cli("run", tiny_space, "--engine", "keras-tuner", "--algorithm", algorithm, "--population", "4",
                 "--data", "iris", "--trials", "2")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1] == (
        f"error: --population 4 works with --engine keras-tuner --algorithm random only, not '{algorithm}'; "
        "leave out --population (or use --engine optuna)"), result.err
    assert "Traceback" not in result.err


def test_kill_9_mid_population_then_resume_retrains_only_the_unfinished_trials_alone(tmp_path):
    # Four trials asked of the oracle at once: two populations (one per batch size), one after the other.
    before, rows = kill_9_then_resume_two_groups(tmp_path, "--population", "4", "--engine", "keras-tuner",
                                                 "--algorithm", "random", "--seed", "3")
    finished = {number for number, state in before if state == "COMPLETE"}
    assert len(finished) == 2 and [state for _, state in before].count("RUNNING") == 2
    retried = sorted(row[2] for row in rows if row[2] is not None)
    assert retried == sorted({number for number, _ in before} - finished), "only the unfinished are retried"
    completed = [row for row in rows if row[1] == "COMPLETE"]
    assert len(completed) == 4 and all(row[3] == 20 for row in completed)
    points = sorted((json.loads(row[4])["n_neurons"], json.loads(row[4])["batch_size"]) for row in completed)
    assert points == sorted((n, b) for n in (8, 16) for b in (8, 16)), "every configuration trained once"
    assert all(state != "RUNNING" for _, state, *_ in rows)
