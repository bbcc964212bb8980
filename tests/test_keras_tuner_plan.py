"""The KerasTuner engine's Hyperband plan, dry run and option checks: nothing is trained here."""

from __future__ import annotations

import pytest
from hpsearch.engines.keras_tuner.plan import hyperband_plan, plan_epochs, plan_trials


@pytest.mark.parametrize(("max_epochs", "factor"), [(1, 3), (3, 3), (9, 3), (10, 3), (27, 3), (30, 4), (8, 2),
                                                     (100, 3), (243, 3)])
def test_plan_matches_keras_tuner_oracle_arithmetic(max_epochs, factor):
    from keras_tuner.oracles import HyperbandOracle

    oracle = HyperbandOracle(objective="val_loss", max_epochs=max_epochs, factor=factor, seed=1)
    plan = hyperband_plan(max_epochs, factor)
    assert len(plan) == oracle._get_num_brackets()
    for bracket in plan:
        assert [r.round for r in bracket] == list(range(oracle._get_num_rounds(bracket[0].bracket)))
        for r in bracket:
            assert r.configs == oracle._get_size(r.bracket, r.round)
            assert r.epochs == oracle._get_epochs(r.bracket, r.round)
            assert r.initial_epoch == (oracle._get_epochs(r.bracket, r.round - 1) if r.round else 0)
            assert r.trained >= 1
    assert plan[0][0].bracket == len(plan) - 1 and plan[-1][0].bracket == 0


def test_plan_for_three_epochs_factor_three():
    plan = hyperband_plan(3, 3)
    rounds = [(r.bracket, r.round, r.configs, r.trained, r.epochs) for bracket in plan for r in bracket]
    assert rounds == [(1, 0, 3, 1, 1), (1, 1, 1, 2, 3), (0, 0, 2, 3, 3)]
    assert plan_trials(plan) == 6 and plan_epochs(plan) == 11


def test_dry_run_shows_the_bracket_plan(cli, tiny_space):
    result = cli("run", tiny_space, "--engine", "keras-tuner", "--algorithm", "hyperband", "--data", "iris",
                 "--max-epochs", "9", "--factor", "3", "--dry-run")
    assert result.code == 0, result.err
    assert "engine keras-tuner, algorithm hyperband: max epochs 9, factor 3" in result.out
    assert "hyperband plan: 3 brackets, 23 trials, 75 epochs in all" in result.out
    assert "bracket 2 round 0: 9 configs x 1 epochs (to epoch 1)" in result.out
    assert "bracket 2 round 2: 1 configs x 6 epochs (to epoch 9, continuing epoch 3)" in result.out
    assert "bracket 0 round 0: 3 configs x 9 epochs (to epoch 9)" in result.out
    # Without --trials the budget is the whole plan; max epochs default to the space's epochs (3).
    assert "budget: 23 trials" in result.out
    default = cli("run", tiny_space, "--engine", "keras-tuner", "--algorithm", "hyperband", "--data", "iris",
                  "--dry-run")
    assert "max epochs 3, factor 3" in default.out and "budget: 6 trials" in default.out


def test_dry_run_random_and_bayesian(cli, tiny_space):
    for algorithm, oracle in (("random", "RandomSearchOracle"), ("bayesian", "BayesianOptimizationOracle")):
        result = cli("run", tiny_space, "--engine", "keras-tuner", "--algorithm", algorithm, "--data", "iris",
                     "--trials", "4", "--dry-run")
        assert result.code == 0, result.err
        assert f"algorithm {algorithm} ({oracle})" in result.out and "budget: 4 trials" in result.out


@pytest.mark.parametrize("flag", [["--max-epochs", "5"], ["--factor", "2"]])
def test_hyperband_options_are_refused_for_other_algorithms(cli, tiny_space, flag):
    result = cli("run", tiny_space, "--engine", "keras-tuner", "--algorithm", "random", "--data", "iris",
                 *flag)
    assert result.code == 2
    assert f"{flag[0]} apply to --algorithm hyperband only" in result.err


def test_bad_hyperband_settings_and_spaces_are_refused(cli, tiny_space, tmp_path):
    args = ("run", tiny_space, "--engine", "keras-tuner", "--algorithm", "hyperband", "--data", "iris")
    assert "--factor must be at least 2" in cli(*args, "--factor", "1").err
    assert "--max-epochs must be at least 1" in cli(*args, "--max-epochs", "0").err
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("objective: val_loss\nparams:\n  epochs: {type: int, low: 2, high: 4}\n")
    result = cli("run", tuned, "--engine", "keras-tuner", "--algorithm", "hyperband", "--data", "iris")
    assert result.code == 2 and "tunes 'epochs'" in result.err
    unknown = cli("run", tiny_space, "--engine", "keras-tuner", "--algorithm", "tpe", "--data", "iris")
    assert unknown.code == 2 and "random, hyperband, bayesian" in unknown.err
    assert "--cv does not apply to engine 'keras-tuner'" in cli(*args, "--cv", "3").err
