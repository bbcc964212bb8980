"""Successive halving in the scikit-learn engine, end to end through the CLI on iris: the rungs follow
scikit-learn's plan, each candidate keeps one trial chain, the kept candidates are the previous rung's best,
and a resumed study does not refit finished rungs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.helpers import grid_space, run_in_process

#: 2 x 2 = 4 candidates; factor 2 and 4 epochs give rungs of 4 x 1, 2 x 2 and 1 x 4 epochs (7 trials).
SPACE = grid_space([4, 16], [0.003, 0.03], epochs=4, batch_size=32)


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def _run(cli, space, *args):
    return run_in_process(cli, "sklearn", space, "--data", "iris", "--cv", "2", "--factor", "2", *args)


def _key(trial) -> str:
    return json.dumps(trial["params"], sort_keys=True)


def _check_halving(trials: list[dict], rungs: list[tuple[int, int]], *, rows: int | None = None) -> None:
    """``rungs``: (candidates, resources) per iteration. Checks resources, counts, chains, promotions."""
    assert len(trials) == sum(count for count, _ in rungs)
    by_number = {trial["number"]: trial for trial in trials}
    last = len(rungs) - 1
    previous: list[dict] = []
    for iteration, (count, resources) in enumerate(rungs):
        rung = [trial for trial in trials if trial["metrics"]["iter"] == iteration]
        assert len(rung) == count
        assert len({_key(trial) for trial in rung}) == count, "each candidate once per rung"
        for trial in rung:
            assert trial["metrics"]["n_resources"] == resources
            assert trial["state"] == ("COMPLETE" if iteration == last else "PRUNED")
            assert trial["value"] == pytest.approx(trial["metrics"]["mean_test_score"])
            if rows is None:  # every fold trained exactly the rung's epochs
                assert len(trial["curves"]["split0_loss"]) == len(trial["curves"]["split1_loss"]) == resources
                assert trial["epochs_run"] == resources
        if iteration == 0:
            assert all(trial["parent_number"] is None for trial in rung)
        else:
            # One chain per candidate: the next rung's trial names the previous rung's trial of it ...
            for trial in rung:
                parent = by_number[trial["parent_number"]]
                assert parent["metrics"]["iter"] == iteration - 1 and _key(parent) == _key(trial)
            # ... and the candidates kept are the previous rung's best by mean test score.
            scores = sorted((trial["metrics"]["mean_test_score"] for trial in previous), reverse=True)
            kept = sorted((by_number[trial["parent_number"]]["metrics"]["mean_test_score"] for trial in rung),
                          reverse=True)
            assert kept == scores[:count]
            cut = scores[count] if len(scores) > count else -math.inf
            assert min(kept) >= cut
        previous = rung


def test_halving_grid_on_epochs_runs_the_plan_and_resumes_without_refitting(cli, space):
    dry = _run(cli, space, "--algorithm", "halving-grid", "--dry-run")
    assert dry.code == 0, dry.err
    assert "successive halving on epochs: factor 2, min_resources 1, max_resources 4" in dry.out
    assert "iter 0: 4 candidates x 1 epochs, 2 folds each = 8 fits" in dry.out
    assert "iter 1: 2 candidates x 2 epochs" in dry.out and "iter 2: 1 candidates x 4 epochs" in dry.out
    assert "budget: 7 trials" in dry.out

    # Stopped by the trial budget after rung 0 and one fit of rung 1, then resumed to the whole plan.
    first = _run(cli, space, "--algorithm", "halving-grid", "--study", "h", "--trials", "5")
    assert first.code == 0, first.err
    before = {t["number"]: t for t in json.loads(cli("trials", "h", "--json").out)}
    assert sorted(t["metrics"]["iter"] for t in before.values()) == [0, 0, 0, 0, 1]
    resumed = cli("resume", "h", "--trials", "7", "--quiet", "--in-process")
    assert resumed.code == 0, resumed.err
    trials = json.loads(cli("trials", "h", "--json").out)
    for trial in trials:  # finished fits untouched, none fitted twice
        if trial["number"] in before:
            assert trial == before[trial["number"]]
    _check_halving(trials, [(4, 1), (2, 2), (1, 4)])
    # `best` is the last rung's candidate, as HalvingGridSearchCV.best_params_.
    best = json.loads(cli("best", "h", "--json").out)
    assert best["number"] == next(t["number"] for t in trials if t["metrics"]["iter"] == 2)
    # A resume of a finished plan fits nothing.
    assert cli("resume", "h", "--quiet", "--in-process").code == 0
    assert json.loads(cli("trials", "h", "--json").out) == trials


def test_halving_random_on_rows_subsamples_the_folds(cli, space):
    result = _run(cli, space, "--algorithm", "halving-random", "--halving-resource", "rows", "--n-candidates",
                  "3", "--min-resources", "30", "--study", "r", "--seed", "3")
    assert result.code == 0, result.err
    trials = json.loads(cli("trials", "r", "--json").out)
    # 120 train+validation rows: rungs of 3 x 30 rows and 2 x 60 rows (2 required iterations).
    _check_halving(trials, [(3, 30), (2, 60)], rows=120)
    from hpsearch.spaces import load_space
    from hpsearch.spaces.compile_sklearn import to_param_distributions
    from sklearn.model_selection import ParameterSampler

    sampled = list(ParameterSampler(to_param_distributions(load_space(str(space))), 3, random_state=3))
    first = sorted((t["params"]["n_neurons"], t["params"]["learning_rate"]) for t in trials
                   if t["metrics"]["iter"] == 0)
    assert first == sorted((p["model__n_neurons"], p["model__learning_rate"]) for p in sampled)


def test_the_plan_is_scikit_learns(cli):
    """Our rungs against HalvingGridSearchCV's own n_candidates_ / n_resources_ on a fast estimator."""
    from hpsearch.engines.sklearn.halving import halving_plan
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    class Quick(ClassifierMixin, BaseEstimator):
        def __init__(self, a: int = 0, epochs: int = 1) -> None:
            self.a, self.epochs = a, epochs

        def fit(self, x, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, x):
            return np.full(len(x), self.classes_[0])

    x, y = np.zeros((60, 1)), np.arange(60) % 2
    cases = [(9, 3, "exhaust", 4), (4, 2, "exhaust", 4), (10, 3, "smallest", 30), (5, 2, 3, 20),
             (27, 3, "exhaust", 30)]
    for n, factor, min_resources, max_resources in cases:
        search = HalvingGridSearchCV(Quick(), {"a": list(range(n))}, factor=factor, resource="epochs",
                                     min_resources=min_resources, max_resources=max_resources, cv=2).fit(x, y)
        plan = halving_plan(n, factor=factor, min_resources=min_resources, max_resources=max_resources,
                            smallest=1)
        assert [rung.candidates for rung in plan.rungs] == search.n_candidates_
        assert [rung.resources for rung in plan.rungs] == search.n_resources_


@pytest.mark.parametrize(("args", "message"), [
    (["--algorithm", "grid"], "--factor applies to --algorithm halving-grid or halving-random"),
    (["--algorithm", "halving-grid", "--trials", "8"],
     "--trials 8 is more than the 7 fits of the halving plan"),
    (["--algorithm", "halving-grid", "--n-candidates", "3"], "--n-candidates applies to --algorithm "
                                                            "halving-random only"),
    (["--algorithm", "halving-random", "--min-resources", "exhaust"], "cannot both be exhaust"),
    (["--algorithm", "halving-random", "--halving-resource", "rows"], "needs --n-candidates N"),
    (["--algorithm", "halving-grid", "--min-resources", "9"], "--min-resources 9 is more than the most"),
    (["--algorithm", "halving-grid", "--min-resources", "0"],
     "--min-resources must be a positive integer or exhaust or smallest, but got 0"),
    (["--algorithm", "halving-random", "--n-candidates", "all"],
     "--n-candidates must be a positive integer or exhaust, but got all"),
])
def test_bad_halving_options_are_one_sentence_and_exit_2(cli, space, args, message):
    result = _run(cli, space, "--study", "bad", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
