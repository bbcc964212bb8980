"""``--pruner curve``: learning-curve early stopping from the study's stored curves.

A trial stops when its curve, extrapolated to its last epoch by a small ensemble of parametric curves,
is unlikely (below 5%) to beat the best completed trial; one whose curve can still get there goes on.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.conftest import query

EPOCHS = 30


def _curves(direction: str = "maximize") -> dict[str, list[float]]:
    """Synthetic accuracy curves over ``EPOCHS`` epochs (error rates with ``minimize``)."""
    shapes = {
        "best": lambda t: 0.9 * (1 - math.exp(-0.3 * t)),
        # Flattens at 0.5 within a few epochs: it cannot reach 0.9.
        "flat": lambda t: 0.5 * (1 - math.exp(-0.8 * t)),
        # Slow: far below the best at the first decisions, yet it ends at 0.88 * 1.1 = 0.97 > 0.9.
        "slow": lambda t: 0.97 * (1 - math.exp(-0.08 * t)),
    }
    flip = (lambda v: 1 - v) if direction == "minimize" else (lambda v: v)
    return {name: [flip(shape(t)) for t in range(1, EPOCHS + 1)] for name, shape in shapes.items()}


def _study(tmp_path: Path, completed: int, direction: str = "maximize"):
    """An Optuna study in an SQLite file with ``completed`` trials of the "best" curve, and the pruner
    (with ``minimize``, every curve is turned into an error rate, ``1 - accuracy``)."""
    import optuna
    from hpsearch.engines.optuna.curve_stopping import curve_pruner

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'curves.db'}", direction=direction,
                                pruner=curve_pruner(EPOCHS))
    best = _curves(direction)["best"]
    for _ in range(completed):
        study.add_trial(optuna.trial.create_trial(
            value=best[-1], intermediate_values=dict(enumerate(best)), params={},
            distributions={}))
    return study


def _first_stop(study, curve: list[float]) -> int | None:
    """The epoch (from 1) at which the study's pruner stops a new trial reporting ``curve``, if any."""
    trial = study.ask()
    for step, value in enumerate(curve):
        trial.report(value, step)
        if trial.should_prune():
            return step + 1
    return None


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_a_curve_that_cannot_reach_the_best_stops_and_one_that_can_goes_on(tmp_path, direction):
    study = _study(tmp_path, completed=3, direction=direction)
    curves = _curves(direction)
    stopped_at = _first_stop(study, curves["flat"])
    assert stopped_at is not None and stopped_at < EPOCHS // 2, "a curve flat at 0.5 against 0.9 stops early"
    assert _first_stop(study, curves["slow"]) is None, "a slow curve that ends above the best goes on"


def test_nothing_stops_before_a_trial_has_completed(tmp_path):
    study = _study(tmp_path, completed=0)
    assert _first_stop(study, _curves()["flat"]) is None


FUNCTIONS = '''\
import math


def shaped(params, report):
    rate, ceiling = {"best": (0.3, 0.9), "flat": (0.8, 0.5), "slow": (0.08, 0.97)}[params["shape"]]
    value = 0.0
    for epoch in range(1, params["epochs"] + 1):
        value = ceiling * (1 - math.exp(-rate * epoch))
        report(epoch, val_accuracy=value)
    return value
'''


@pytest.mark.parametrize("warm", [False, True])
def test_python_curve_pruner_stops_flat_curves_after_a_best_one_completed(tmp_path, monkeypatch, warm):
    """Through ``hpsearch.run`` and a training function: each flat trial that starts after a completed
    trial stops early; the others run to their end. With ``warm_start``, the copied trials' curves count
    from the first trial on."""
    import hpsearch

    (tmp_path / "curve_functions.py").write_text(FUNCTIONS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    space = {"train": "curve_functions:shaped", "objective": "val_accuracy",
             "params": {"shape": {"type": "categorical", "choices": ["best", "flat", "slow"]}},
             "fixed": {"epochs": EPOCHS}}
    options = {"storage": url, "progress": False, "in_process": True, "pruner": "curve"}
    if warm:
        hpsearch.run({**space, "params": {"shape": {"type": "categorical", "choices": ["best"]}}},
                     trials=1, study="source", **options)
        options["warm_start"] = "source"
    # With the copy, the flat curve is the one configuration left to train: only the copied curve can
    # stop it.
    choices = ["best", "flat"] if warm else ["best", "flat", "slow"]
    study = hpsearch.run({**space, "params": {"shape": {"type": "categorical", "choices": choices}}},
                         algorithm="grid", trials=len(choices) - warm, study="c", **options)
    assert study.record.settings["pruner"] == "curve"
    completed_before = warm
    rows = query(tmp_path / "c.db", "SELECT t.state, t.epochs_run, t.params FROM hp_trials t JOIN "
                 "hp_studies s ON s.id = t.study_id WHERE s.name = 'c' AND t.copied_from_study IS NULL "
                 "ORDER BY t.number")
    assert sorted(json.loads(row[2])["shape"] for row in rows) == choices[warm:]
    for state, epochs, params in rows:
        shape = json.loads(params)["shape"]
        if shape == "flat" and completed_before:
            assert (state, epochs < EPOCHS // 2) == ("PRUNED", True)
        else:
            assert (state, epochs) == ("COMPLETE", EPOCHS)
        completed_before = completed_before or state == "COMPLETE"
