"""Learning-rate schedules: one definition, applied per epoch in every engine and in retrain, and the
rate actually trained with recorded in every curve."""

from __future__ import annotations

import csv
import json
import math

import pytest
from hpsearch.spaces import DEFAULTS, SpaceError, load_space
from hpsearch.spaces.schedules import learning_rates

BASE = 0.01
#: step(drop=0.1, every=2) over 6 epochs: 1x, 1x, 0.1x, 0.1x, 0.01x, 0.01x of the base rate.
STEPPED = [BASE, BASE, BASE / 10, BASE / 10, BASE / 100, BASE / 100]

SPACE = """\
objective: {objective}
params:
  n_neurons: {{type: categorical, choices: [8]}}
fixed:
  n_hidden: 1
  epochs: 6
  batch_size: 64
  learning_rate: 0.01
  lr_schedule: step(drop=0.1, every=2)
"""


@pytest.mark.parametrize(("engine", "objective", "extra", "curves"), [
    ("optuna", "val_recall", ["--pruner", "none"], ["learning_rate"]),
    ("keras-tuner", "val_pr_auc", [], ["learning_rate"]),
    # One model per fold: each fold's curve steps the same way.
    ("sklearn", "val_f1", ["--cv", "2"], ["split0_learning_rate", "split1_learning_rate"]),
])
def test_step_decay_is_recorded_per_epoch_in_every_engine(cli, tmp_path, engine, objective, extra, curves):
    space = tmp_path / "step.yaml"
    space.write_text(SPACE.format(objective=objective))
    result = cli("run", space, "--engine", engine, "--data", "breast_cancer", "--trials", "1", "--study", "s",
                 "--quiet", "--in-process", *extra)
    assert result.code == 0, result.err
    [trial] = json.loads(cli("trials", "s", "--json").out)
    assert trial["state"] == "COMPLETE"
    for name in curves:
        assert trial["curves"][name] == pytest.approx(STEPPED, rel=1e-6), name

    # The new objective by name, wherever a study is shown.
    best = json.loads(cli("best", "s", "--json").out)
    assert best["objective"] == objective and best["direction"] == "maximize"
    assert math.isfinite(best["value"])
    assert f"best trial #0: {objective} = " in cli("best", "s").out
    assert f"{objective} (max)" in cli("compare", "s").out
    assert json.loads(cli("compare", "s", "--json").out)[0]["objective"] == objective

    if engine != "optuna":
        return
    # Retrain applies the same schedule, with ReduceLROnPlateau off since the config has a schedule.
    result = cli("retrain", "s", "--epochs", "6", "--patience", "10", "--quiet", "--out", tmp_path / "m")
    assert result.code == 0, result.err
    assert "learning rate schedule step(drop=0.1, every=2)" in result.out
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["training"]["callbacks"]["reduce_lr_on_plateau"] is None
    assert card["training"]["callbacks"]["lr_schedule"] == "step(drop=0.1, every=2)"
    with open(tmp_path / "m" / "training.csv", newline="") as handle:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(handle)]
    assert rates == pytest.approx(STEPPED, rel=1e-6)


def test_schedules_give_the_documented_factors() -> None:
    config = {**DEFAULTS, "learning_rate": 1.0, "epochs": 4}
    assert learning_rates({**config, "lr_schedule": "none"}) == [1.0] * 4
    assert learning_rates({**config, "lr_schedule": "step"}, epochs=21)[::10] == pytest.approx([1, 0.1, 0.01])
    assert learning_rates({**config, "lr_schedule": "exponential(rate=0.5)"}) == pytest.approx(
        [1, 0.5, 0.25, 0.125])
    # Cosine from 1 to alpha over the config's epochs (or its own), then alpha.
    def cosine(epoch: int) -> float:
        return 0.1 + 0.9 * (1 + math.cos(math.pi * epoch / 4)) / 2

    assert learning_rates({**config, "lr_schedule": "cosine(alpha=0.1)"}, epochs=6) == pytest.approx(
        [1, cosine(1), 0.55, cosine(3), 0.1, 0.1])
    assert learning_rates({**config, "lr_schedule": "cosine(epochs=2)"}) == pytest.approx([1, 0.5, 0, 0])


def test_schedules_are_tuned_like_other_categoricals(tmp_path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text('params:\n  lr_schedule: {type: categorical, choices: [none, "step(drop=0.5, every=3)", '
                    '"exponential(rate=0.9)", cosine]}\n')
    assert load_space(path).params["lr_schedule"].choices[1] == "step(drop=0.5, every=3)"
    path.write_text("fixed:\n  lr_schedule: exponential(rate=2)\n")
    expected = (r"space\.yaml: fixed value 'lr_schedule': value 'exponential\(rate=2\)' is not valid: "
                r"argument 'rate' of 'exponential' must be a number in \(0, 1\), but got 2")
    with pytest.raises(SpaceError, match=expected):
        load_space(path)


def test_reduce_lr_on_plateau_stays_off_beside_a_schedule_unless_asked() -> None:
    from hpsearch.results.retrain import RetrainOptions

    scheduled = {**DEFAULTS, "lr_schedule": "step"}
    assert RetrainOptions().plateau(DEFAULTS) is True
    assert RetrainOptions().plateau(scheduled) is False
    # `--lr-factor` or `--lr-patience` given on the command line asks for it (reduce_lr=True).
    assert RetrainOptions(reduce_lr=True).plateau(scheduled) is True
