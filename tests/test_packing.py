"""Packed training (``--pack K``): configurations that share batch size and epochs train together in one
process, and each still trains, ends and is recorded as it would be alone.

Tolerance: a packed member runs the same ``train_step``/``test_step`` on the same batches from the same
state as its solo fit, so its curve is compared for exact equality (it is bit for bit the same on this
CPU); a looser tolerance would hide a member that sees another member's batches or state.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess

import pytest

from tests.conftest import (
    curves_by_config,
    hpsearch_command,
    query,
    spawn_hpsearch,
    trials_by_config,
    wait_for,
)

pytestmark = pytest.mark.slow

CONFIGS = [
    {"n_hidden": 2, "n_neurons": 24, "activation": "relu", "dropout": 0.2, "optimizer": "adam",
     "learning_rate": 3e-3},
    {"n_hidden": 1, "n_neurons": 40, "activation": "tanh", "optimizer": "sgd(clipnorm=1.0)",
     "learning_rate": 3e-2, "kernel_regularizer": "l2(0.01)", "lr_schedule": "step(drop=0.5, every=1)"},
    # Diverges: the loss becomes NaN in its first epoch.
    {"n_hidden": 1, "n_neurons": 8, "optimizer": "sgd", "learning_rate": 1e8},
    {"n_hidden": 3, "n_neurons": 16, "activation": "elu", "optimizer": "rmsprop", "learning_rate": 1e-3},
]


def _stop_after(epochs: int):
    import keras

    class StopAfter(keras.callbacks.Callback):
        """Stands for a pruner: stops its own model after ``epochs`` epochs."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= epochs:
                self.model.stop_training = True

    return StopAfter()


def test_a_packed_configuration_trains_exactly_as_it_does_alone():
    from hpsearch.data import load_dataset
    from hpsearch.spaces import DEFAULTS
    from hpsearch.training.fit import NonFiniteLossError, fit_config
    from hpsearch.training.packing import PackMember, fit_pack

    dataset = load_dataset("digits", seed=0)
    configs = [{**DEFAULTS, **config, "batch_size": 64, "epochs": 3} for config in CONFIGS]
    seeds = [11, 12, 13, 14]
    # The last member is stopped after its first epoch, as a pruner would stop it.
    stops = [(), (), (), (_stop_after(1),)]
    packed = fit_pack([PackMember(config, seed, callbacks=stop)
                       for config, seed, stop in zip(configs, seeds, stops, strict=True)],
                      dataset, objective="val_accuracy", direction="maximize")

    for index in (0, 1):
        alone = fit_config(configs[index], dataset, objective="val_accuracy", direction="maximize",
                           seed=seeds[index])
        assert packed[index].history == alone.history, f"member {index} differs from its solo fit"
        assert packed[index].value == alone.value and packed[index].epochs_run == 3
    assert sorted(packed[0].history) == sorted(alone.history)  # the same curves: val_auc, learning_rate...
    assert packed[1].history["learning_rate"] == pytest.approx([3e-2, 1.5e-2, 7.5e-3])

    # The diverging member fails alone, with the reason a solo trial gives.
    assert isinstance(packed[2], NonFiniteLossError) and "loss became nan at epoch 1" in str(packed[2])
    # The stopped member has one epoch, the same as the first epoch of its solo fit.
    alone = fit_config(configs[3], dataset, objective="val_accuracy", direction="maximize", seed=seeds[3],
                       callbacks=[_stop_after(1)])
    assert packed[3].epochs_run == 1 and packed[3].history == alone.history


GRID_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: categorical, choices: [8, 24]}
  learning_rate: {type: categorical, choices: [3.0e-3, 1.0e+8]}
  optimizer: {type: categorical, choices: [adam, sgd]}
fixed: {n_hidden: 1, epochs: 3, batch_size: 64}
"""


def test_run_with_pack_records_every_trial_as_the_same_run_without_it(cli, tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    for study, pack in (("packed", "8"), ("alone", "1")):
        result = cli("run", space, "--algorithm", "grid", "--pruner", "none", "--trials", "8",
                     "--study", study, "--pack", pack, "--quiet")
        assert result.code == 0, result.err
    packed, alone = trials_by_config(cli, "packed"), trials_by_config(cli, "alone")
    assert sorted(packed) == sorted(alone) and len(packed) == 8
    for key, trial in packed.items():
        other = alone[key]
        assert (trial["state"], trial["value"], trial["epochs_run"]) == (
            other["state"], other["value"], other["epochs_run"]), key
    diverged = [t for t in packed.values() if t["params"]["learning_rate"] == 1.0e8]
    assert len(diverged) == 4
    # sgd at 1e8 diverges: that trial fails alone; its pack's other members complete.
    assert all(t["state"] == "FAILED" and "loss became" in t["error"]
               for t in diverged if t["params"]["optimizer"] == "sgd")
    assert sum(t["state"] == "COMPLETE" for t in packed.values()) >= 4
    # Each trial has its own curves in the store, every metric of every epoch it ran, as alone.
    curves = {study: curves_by_config(tmp_path / "hp.db", study) for study in ("packed", "alone")}
    assert curves["packed"] == curves["alone"]
    assert all(len(epochs) == packed[key]["epochs_run"] for key, epochs in curves["packed"].items())
    assert {"val_auc", "val_f1", "learning_rate", "loss"} <= set(curves["packed"][next(iter(packed))][0])
    dry = cli("run", space, "--algorithm", "grid", "--pack", "8", "--dry-run")
    assert "packs: 8 configurations asked at a time" in dry.out


def test_pruning_in_a_pack_stops_only_the_pruned_member(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("objective: val_accuracy\n"
                     "params:\n"
                     "  learning_rate: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}\n"
                     "  n_neurons: {type: int, low: 4, high: 64}\n"
                     "fixed: {n_hidden: 1, epochs: 6, batch_size: 64, optimizer: adam}\n")
    result = cli("run", space, "--algorithm", "random", "--pruner", "median", "--trials", "12", "--pack", "6",
                 "--study", "pr", "--quiet")
    assert result.code == 0, result.err
    trials = json.loads(cli("trials", "pr", "--json").out)
    second_pack = [t for t in trials if t["number"] >= 6]
    pruned = [t for t in second_pack if t["state"] == "PRUNED"]
    completed = [t for t in second_pack if t["state"] == "COMPLETE"]
    assert pruned and completed, [(t["state"], t["epochs_run"]) for t in second_pack]
    assert all(t["epochs_run"] < 6 for t in pruned)
    assert all(t["epochs_run"] == 6 for t in completed)
    assert all(not math.isnan(t["value"]) for t in completed)


INTERRUPT_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: categorical, choices: [8, 16]}
  batch_size: {type: categorical, choices: [8, 16]}
fixed: {n_hidden: 1, epochs: 40}
"""
# Small batches: a pack of two trains its 40 epochs in seconds, long enough for Ctrl-C to find it running.


def test_ctrl_c_interrupts_every_member_of_the_pack_and_resume_finishes_the_grid(tmp_path):
    space = tmp_path / "slow.yaml"
    space.write_text(INTERRUPT_SPACE)
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    # Four grid points asked at once: two packs (one per batch size), trained one after the other.
    process = spawn_hpsearch("run", space, "--data", "digits", "--trials", "4", "--pack", "4", "--study", "c",
                             "--algorithm", "grid", "--pruner", "none", "--storage", url, "--quiet",
                             cwd=tmp_path)
    # Both members of the first pack have trained an epoch and written its checkpoint.
    checkpoints = tmp_path / "hpsearch-checkpoints" / "c.db" / "c"
    wait_for(lambda: all((checkpoints / f"trial-{number}.npz").exists() for number in (0, 1)),
             interval_s=0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    rows = query(db, "SELECT number, state, interrupted FROM hp_trials ORDER BY number")
    assert rows == [(0, "FAILED", 1), (1, "FAILED", 1)], "the first pack's members, both interrupted"
    # The second pack was asked but never claimed: Optuna holds nothing RUNNING for it.
    assert query(db, "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'") == [(0,)]

    resumed = subprocess.run(hpsearch_command("resume", "c", "--storage", url, "--quiet"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    # The packed members' checkpoints serve their retries, which train alone.
    assert resumed.stdout.count("continuing after epoch") == 2, resumed.stdout
    rows = query(db, "SELECT number, state, retry_of, epochs_run, params FROM hp_trials ORDER BY number")
    retries = [row for row in rows if row[2] is not None]
    assert sorted(row[2] for row in retries) == [0, 1], "each interrupted member is retried once"
    finished = [row for row in rows if row[1] == "COMPLETE"]
    assert all(row[3] == 40 for row in finished)
    grid = {(n, b) for n in (8, 16) for b in (8, 16)}
    assert sorted((json.loads(row[4])["n_neurons"], json.loads(row[4])["batch_size"]) for row in finished) \
        == sorted(grid), "every grid point trained exactly once"
    assert query(db, "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'") == [(0,)]
