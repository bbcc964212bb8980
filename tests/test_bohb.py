"""``--algorithm bohb``: TPE fitted at the highest epoch enough configurations reached.

With a pruner most trials stop early; Optuna's TPE puts every completed trial in its good group first,
so a few completed but poor trials steer it. BOHB learns from the epoch most configurations reached.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")


def _study(tmp_path: Path, sampler, name: str):
    """A study in an SQLite file: 24 trials stopped at epoch 3 whose value there peaks at x = 0.8, and two
    completed trials (30 epochs) at x = 0.1 and 0.2, poor at every epoch."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'bohb.db'}", study_name=name,
                                direction="maximize", sampler=sampler)
    distributions = {"x": FloatDistribution(0.0, 1.0)}
    for i in range(24):
        x = (i + 0.5) / 24
        curve = {step: (1 - abs(x - 0.8)) * (step + 1) / 3 for step in range(3)}
        study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, params={"x": x},
                                                  distributions=distributions, intermediate_values=curve))
    for x in (0.1, 0.2):
        curve = {step: 0.3 * min(1.0, (step + 1) / 3) for step in range(30)}
        study.add_trial(optuna.trial.create_trial(value=0.3, params={"x": x}, distributions=distributions,
                                                  intermediate_values=curve))
    return study


def _proposals(study, count: int = 20) -> list[float]:
    xs = []
    for _ in range(count):
        trial = study.ask()
        xs.append(trial.suggest_float("x", 0.0, 1.0))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return xs


def test_bohb_learns_from_the_epoch_most_trials_reached_where_tpe_follows_the_few_completed(tmp_path):
    from hpsearch.engines.optuna.bohb import bohb_sampler_class

    bohb = _proposals(_study(tmp_path, bohb_sampler_class(1)(seed=0), "bohb"))
    tpe = _proposals(_study(tmp_path, optuna.samplers.TPESampler(seed=0), "tpe"))
    assert abs(statistics.median(bohb) - 0.8) < 0.15, bohb
    assert statistics.median(tpe) < 0.5, tpe


def test_bohb_is_recorded_runs_with_asha_by_default_and_resumes(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("""\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 16}
fixed: {n_hidden: 1, epochs: 3, batch_size: 32}
""")
    dry = cli("run", space, "--data", "iris", "--algorithm", "bohb", "--dry-run")
    assert dry.code == 0 and "sampler bohb, pruner asha" in dry.out
    ran = cli("run", space, "--data", "iris", "--algorithm", "bohb", "--trials", "2", "--study", "b",
              "--quiet", "--in-process")
    assert ran.code == 0, ran.err
    resumed = cli("resume", "b", "--trials", "3", "--quiet", "--in-process")
    assert resumed.code == 0, resumed.err
    import hpsearch

    study = hpsearch.load_study("b")
    assert study.record.settings["algorithm"] == "bohb" and len(study.trials) == 3
