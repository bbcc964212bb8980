"""Population training (``--population``): configurations of one depth train as one stacked model, and
each member still trains, ends and is recorded as it would be alone.

Tolerance: a member without dropout starts from the same weights, sees the same batches and applies the
same update formulas as its solo fit; only the order of floating-point sums inside the batched kernels
differs. Its per-epoch curve is therefore compared within ``ROUNDING`` (measured differences on digits:
at most a few 1e-6 on losses after 3 epochs, none on accuracies); a member that saw another member's
batches, rate or state would differ by far more.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import curves_by_config, kill_9_then_resume_two_groups, trials_by_config

pytestmark = pytest.mark.slow

#: Largest per-epoch difference of any logged value between a member and its solo fit (relative above 1).
ROUNDING = 1e-4

CONFIGS = [
    {"n_hidden": 2, "n_neurons": 24, "activation": "relu", "optimizer": "adam", "learning_rate": 3e-3},
    {"n_hidden": 2, "n_neurons": 40, "activation": "tanh", "optimizer": "sgd(clipnorm=1.0)",
     "learning_rate": 3e-2, "kernel_regularizer": "l2(0.01)", "lr_schedule": "step(drop=0.5, every=1)"},
    # Diverges: the loss becomes NaN in its first epoch.
    {"n_hidden": 2, "n_neurons": 8, "optimizer": "sgd", "learning_rate": 1e8},
    {"n_hidden": 2, "n_neurons": 16, "activation": "elu", "optimizer": "rmsprop", "learning_rate": 1e-3,
     "kernel_constraint": "max_norm(1.0)"},
]


def _stop_after(epochs: int):
    import keras

    class StopAfter(keras.callbacks.Callback):
        """Stands for a pruner: stops its own member after ``epochs`` epochs."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= epochs:
                self.model.stop_training = True

    return StopAfter()


def _close(mine: float, theirs: float) -> bool:
    """Within rounding: ``ROUNDING`` absolute, or relative for values far above 1 (a diverging loss)."""
    return abs(mine - theirs) <= ROUNDING * max(1.0, abs(theirs))


def _assert_close(population, alone, label):
    assert sorted(population) == sorted(alone), label
    for name, values in alone.items():
        assert len(population[name]) == len(values), (label, name)
        for epoch, (mine, theirs) in enumerate(zip(population[name], values, strict=True)):
            assert _close(mine, theirs), f"{label}: {name} at epoch {epoch}: {mine} != {theirs}"


def test_each_member_records_the_curve_it_has_alone_within_rounding():
    from hpsearch.data import load_dataset
    from hpsearch.spaces import DEFAULTS
    from hpsearch.training.fit import EpochRecorderCallback, NonFiniteLossError, fit_config
    from hpsearch.training.population import PopulationMember, fit_population

    dataset = load_dataset("digits", seed=0)
    configs = [{**DEFAULTS, **config, "batch_size": 64, "epochs": 3} for config in CONFIGS]
    seeds = [11, 12, 13, 14]
    recorded: list[list[dict]] = [[] for _ in configs]
    callbacks = [[EpochRecorderCallback(lambda epoch, logs, i=i: recorded[i].append(dict(logs)))]
                 for i in range(4)]
    callbacks[3].append(_stop_after(1))  # the last one is stopped after one epoch, as a pruner would
    results = fit_population([PopulationMember(config, seed, callbacks=stop)
                              for config, seed, stop in zip(configs, seeds, callbacks, strict=True)],
                             dataset, objective="val_accuracy", direction="maximize")

    for index in (0, 1):
        alone = fit_config(configs[index], dataset, objective="val_accuracy", direction="maximize",
                           seed=seeds[index])
        _assert_close(results[index].history, alone.history, f"member {index}")
        assert results[index].epochs_run == 3 and results[index].best_epoch == alone.best_epoch
        # The recorder saw every epoch's logs, as the store records them.
        assert [logs["val_accuracy"] for logs in recorded[index]] == results[index].history["val_accuracy"]
    assert results[1].history["learning_rate"] == pytest.approx([3e-2, 1.5e-2, 7.5e-3])
    assert "val_auc" in results[0].history and "accuracy" in results[0].history

    # The diverging member fails alone, with the reason a solo trial gives; the others went on.
    assert isinstance(results[2], NonFiniteLossError) and "loss became nan at epoch 1" in str(results[2])
    # The stopped member has one epoch, its solo fit's first.
    alone = fit_config(configs[3], dataset, objective="val_accuracy", direction="maximize", seed=seeds[3],
                       callbacks=[_stop_after(1)])
    assert results[3].epochs_run == 1
    _assert_close(results[3].history, alone.history, "stopped member")


def test_members_with_their_own_rows_train_independently_and_hand_back_keras_models():
    from hpsearch.data import load_dataset
    from hpsearch.spaces import DEFAULTS
    from hpsearch.training.fit import task_info
    from hpsearch.training.population import Population, PopulationMember

    dataset = load_dataset("breast_cancer", seed=0)
    task = task_info(dataset)
    rows = np.arange(len(dataset.y_train))
    # Two "folds" of one configuration and another configuration with every row, as candidates x folds.
    config = {**DEFAULTS, "n_hidden": 1, "n_neurons": 12, "batch_size": 32, "epochs": 2,
              "optimizer": "sgd(momentum=0.9)", "learning_rate": 0.01}
    other = {**config, "n_neurons": 20, "optimizer": "adam", "activation": "elu"}
    members = [PopulationMember(config, 5, train_rows=rows[rows % 2 == 0], val_rows=np.arange(40)),
               PopulationMember(other, 6),
               PopulationMember(config, 7, train_rows=rows[rows % 2 == 1], val_rows=np.arange(40, 90))]
    together = Population(members, task, dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val,
                          step_metrics={"accuracy"})
    apart = [Population([member], task, dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val,
                        step_metrics={"accuracy"}) for member in members]
    for epoch in range(2):
        together.train_epoch(epoch)
        for population in apart:
            population.train_epoch(epoch)
    validated = together.validate()
    for index, population in enumerate(apart):
        assert together.train_logs(index) == pytest.approx(population.train_logs(0), abs=ROUNDING)
        assert validated[index] == pytest.approx(population.validate()[0], abs=ROUNDING)
    # The folds saw different rows: their curves differ.
    assert together.train_logs(0)["loss"] != together.train_logs(2)["loss"]

    # Each member hands back a plain Keras model predicting what the population predicts for it.
    predictions = together.predict(dataset.x_test)
    for index in range(3):
        model = together.keras_model(index)
        alone = model.predict(dataset.x_test, verbose=0)
        assert np.max(np.abs(alone - predictions[index])) < 1e-5
    # A stopped member keeps its weights while the others go on.
    together.stop(1)
    before = together.predict(dataset.x_test)
    together.train_epoch(2)
    after = together.predict(dataset.x_test)
    assert np.array_equal(before[1], after[1]) and not np.array_equal(before[0], after[0])
    assert together.validate()[1] == {} and math.isfinite(together.validate()[0]["loss"])


GRID_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: categorical, choices: [8, 24]}
  learning_rate: {type: categorical, choices: [3.0e-3, 1.0e+8]}
  optimizer: {type: categorical, choices: [adam, sgd]}
fixed: {n_hidden: 1, epochs: 2, batch_size: 64}
"""


def test_a_search_with_populations_records_every_trial_as_the_search_without_them(cli, tmp_path, db_url):
    import hpsearch

    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    # From Python (population=8) and from the command line (--population off), the same grid.
    hpsearch.run(str(space), "digits", algorithm="grid", pruner="none", trials=8, study="together",
                 storage=db_url, progress=False, in_process=True, population=8)
    result = cli("run", space, "--algorithm", "grid", "--pruner", "none", "--trials", "8", "--study", "alone",
                 "--population", "off", "--quiet")
    assert result.code == 0, result.err
    together, alone = trials_by_config(cli, "together"), trials_by_config(cli, "alone")
    assert sorted(together) == sorted(alone) and len(together) == 8
    for key, trial in together.items():
        other = alone[key]
        assert (trial["state"], trial["epochs_run"]) == (other["state"], other["epochs_run"]), key
        if trial["state"] == "COMPLETE":
            assert abs(trial["value"] - other["value"]) <= ROUNDING, key
    # sgd at 1e8 diverges: that trial fails alone, with the usual reason; its population's others complete.
    diverged = [t for t in together.values()
                if t["params"]["learning_rate"] == 1.0e8 and t["params"]["optimizer"] == "sgd"]
    assert len(diverged) == 2
    assert all(t["state"] == "FAILED" and "loss became" in t["error"] for t in diverged)
    assert sum(t["state"] == "COMPLETE" for t in together.values()) >= 4
    # Each trial has its own curve in the store, every metric of every epoch, within rounding of alone.
    curves = {study: curves_by_config(tmp_path / "hp.db", study) for study in ("together", "alone")}
    assert sorted(curves["together"]) == sorted(curves["alone"])
    for key, epochs in curves["together"].items():
        assert len(epochs) == together[key]["epochs_run"]
        for mine, theirs in zip(epochs, curves["alone"][key], strict=True):
            assert sorted(mine) == sorted(theirs), key
            if math.isfinite(float(theirs["loss"])):  # the epoch a loss diverges in: NaN arithmetic
                assert all(_close(mine[name], v) for name, v in theirs.items()), key
    dry = cli("run", space, "--algorithm", "tpe", "--population", "auto", "--dry-run")
    assert "populations: 16 configurations asked at a time" in dry.out
    dry = cli("run", space, "--algorithm", "random", "--population", "auto", "--dry-run")
    assert "populations: 256 configurations asked at a time" in dry.out


@pytest.mark.parametrize("value", ["zero", "0", "-3", "2000"])
def test_a_bad_population_is_refused_with_one_sentence(cli, tiny_space, value, db_url):
    import hpsearch

    result = cli("run", tiny_space, "--population", value, "--trials", "1")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith("error: --population must be auto, off or a whole "
                                                          "number from 1 to 1024"), result.err
    assert "Traceback" not in result.err
    with pytest.raises(ValueError, match="--population must be auto, off or a whole number"):
        hpsearch.run(str(tiny_space), "iris", trials=1, storage=db_url, progress=False, in_process=True,
                     population=value)


def test_kill_9_mid_population_then_resume_retrains_only_the_unfinished_members(tmp_path):
    # Four grid points asked at once: two populations (one per batch size), trained one after the other.
    before, rows = kill_9_then_resume_two_groups(tmp_path, "--population", "4", "--algorithm", "grid",
                                                 "--pruner", "none")
    finished = {number for number, state in before if state == "COMPLETE"}
    assert len(finished) == 2 and [state for _, state in before].count("RUNNING") == 2
    retried = sorted(row[2] for row in rows if row[2] is not None)
    assert retried == sorted({number for number, _ in before} - finished), "only the unfinished are retried"
    completed = [row for row in rows if row[1] == "COMPLETE"]
    assert all(row[3] == 20 for row in completed)
    points = sorted((json.loads(row[4])["n_neurons"], json.loads(row[4])["batch_size"]) for row in completed)
    assert points == sorted((n, b) for n in (8, 16) for b in (8, 16)), "every grid point trained once"
    assert all(state != "RUNNING" for _, state, *_ in rows)


def test_a_member_starts_from_the_weights_build_model_gives_it():
    import keras
    from hpsearch.spaces import TaskInfo, build_model
    from hpsearch.training.population_model import _initial_kernels, member_settings

    task = TaskInfo("binary", 20, 2)
    for config in ({"n_hidden": 2, "n_neurons": 30, "kernel_initializer": "he_normal", "dropout": 0.1},
                   {"n_hidden": 3, "n_neurons": 17, "dropout": 0.0, "kernel_initializer":
                    "variance_scaling(scale=2.0, mode=fan_avg, distribution=uniform)"},
                   {"n_hidden": 0}):
        keras.utils.set_random_seed(7)
        kernels = [w.numpy() for w in build_model(config, task).weights if len(w.shape) == 2]
        drawn = _initial_kernels(member_settings(config), 7, task.n_features, 1)
        assert len(drawn) == len(kernels)
        assert all(np.array_equal(mine, theirs) for mine, theirs in zip(drawn, kernels, strict=True)), config
