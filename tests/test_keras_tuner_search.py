"""End-to-end KerasTuner searches through the CLI on bundled data (trained in this process)."""

from __future__ import annotations

import json
import os

import pytest
from hpsearch.engines.keras_tuner.oracle import STATE_KEY
from hpsearch.engines.keras_tuner.plan import hyperband_plan
from hpsearch.storage import open_storage

from tests.helpers import run_in_process

#: One tuned parameter: Bayesian optimisation fits its Gaussian process after 3 random points.
ONE_PARAM_SPACE = """\
objective: val_loss
params:
  n_neurons: {type: int, low: 4, high: 16}
fixed: {n_hidden: 1, epochs: 2, batch_size: 64}
"""

DIVERGING_SPACE = """\
objective: val_loss
params:
  n_neurons: {type: int, low: 4, high: 8}
fixed: {n_hidden: 1, epochs: 2, optimizer: sgd, learning_rate: 1.0e+8}
"""


def _run(cli, space, *args):
    return run_in_process(cli, "keras-tuner", space, *args)


def _check_search(cli, study: str, data_classes: int, n_trials: int) -> list[dict]:
    """Trials listed, engine recorded, and the best config rebuilds to the trial's architecture."""
    from hpsearch.spaces import TaskInfo, build_model, resolve_config, space_from_dict

    trials = json.loads(cli("trials", study, "--json").out)
    assert [t["number"] for t in trials] == list(range(n_trials))
    assert all(t["state"] == "COMPLETE" for t in trials)
    for trial in trials:
        assert trial["engine_trial_id"] is not None
        assert len(trial["curves"]["loss"]) == trial["epochs_run"] >= 1
        assert trial["duration_s"] > 0 and trial["value"] is not None
    summary = json.loads(cli("studies", "--json").out)
    assert [s["engine"] for s in summary if s["name"] == study] == ["keras-tuner"]

    best = json.loads(cli("best", study, "--json").out)
    top = min(trials, key=lambda t: (t["value"], t["number"])) if best["direction"] == "minimize" else \
        max(trials, key=lambda t: (t["value"], -t["number"]))
    assert best["value"] == pytest.approx(top["value"])
    assert best["params"] == top["params"]
    study_record = _study(study)
    space = space_from_dict(study_record.space, "study")
    config = resolve_config(space, best["params"])
    n_features = int(study_record.dataset["summary"].split(" rows, ")[1].split()[0])
    model = build_model(config, TaskInfo(kind="multiclass", n_features=n_features, n_classes=data_classes))
    dense = [(layer.name, layer.units) for layer in model.layers if type(layer).__name__ == "Dense"]
    hidden = [(f"hidden_{index}", config["n_neurons"]) for index in range(config["n_hidden"])]
    assert dense == [*hidden, ("output", data_classes)]
    return trials


def _study(study: str):
    with open_storage(os.environ["HPSEARCH_STORAGE"], create=False) as storage:
        return storage.get_study(study)


def _settings(study: str) -> dict:
    return _study(study).settings


def test_random_search(cli, tiny_space):
    result = _run(cli, tiny_space, "--algorithm", "random", "--data", "iris", "--trials", "3", "--study", "r")
    assert result.code == 0, result.err
    assert "best trial #" in result.out
    trials = _check_search(cli, "r", data_classes=3, n_trials=3)
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 3, "random search never repeats"
    assert all(t["parent_number"] is None and t["epochs_run"] == 3 for t in trials)
    # The oracle's state lives in the study, so nothing of KerasTuner's is left on disk.
    snapshot = _settings("r")[STATE_KEY]
    assert sorted(snapshot["trials"]) == sorted(t["engine_trial_id"] for t in trials)
    assert snapshot["oracle"]["ongoing_trials"] == {}


def test_bayesian_search_and_resume_continue_the_oracle(cli, tmp_path):
    space = tmp_path / "one.yaml"
    space.write_text(ONE_PARAM_SPACE)
    result = _run(cli, space, "--algorithm", "bayesian", "--data", "wine", "--trials", "4", "--study", "b")
    assert result.code == 0, result.err
    _check_search(cli, "b", data_classes=3, n_trials=4)
    resumed = cli("resume", "b", "--trials", "5", "--quiet", "--in-process")
    assert resumed.code == 0, resumed.err
    trials = _check_search(cli, "b", data_classes=3, n_trials=5)
    # The resumed oracle went on from its saved state: new KerasTuner trial ids, none reused.
    assert [t["engine_trial_id"] for t in trials] == [f"{n:04d}" for n in range(5)]


def test_hyperband_rounds_follow_the_plan_and_continue_their_parents(cli, tiny_space, tmp_path, monkeypatch):
    from hpsearch.engines.keras_tuner import local as keras_tuner_local

    loaded: list[str] = []
    load_weights = keras_tuner_local.load_weights

    def spy(path):
        loaded.append(path.parent.name)
        return load_weights(path)

    monkeypatch.setattr(keras_tuner_local, "load_weights", spy)
    result = _run(cli, tiny_space, "--algorithm", "hyperband", "--data", "iris", "--max-epochs", "3",
                  "--factor", "3", "--study", "h")
    assert result.code == 0, result.err
    plan = hyperband_plan(3, 3)
    expected = [(r.round, r.trained) for bracket in plan for r in bracket for _ in range(r.configs)]
    trials = _check_search(cli, "h", data_classes=3, n_trials=len(expected))
    by_number = {t["number"]: t for t in trials}

    def round_of(trial: dict) -> int:
        return 0 if trial["parent_number"] is None else 1 + round_of(by_number[trial["parent_number"]])

    assert [(round_of(t), t["epochs_run"]) for t in trials] == expected
    for trial in trials:
        if trial["parent_number"] is not None:
            parent = by_number[trial["parent_number"]]
            assert trial["params"] == parent["params"], "a round continues its parent's configuration"
            # The best of the previous round is the one continued.
            previous = [t for t in trials if t["number"] < trial["number"] and t["parent_number"] is None
                        and t["epochs_run"] == parent["epochs_run"]]
            assert parent["value"] == max(t["value"] for t in previous)
    # Total epochs per configuration: the chain of rounds adds up to max_epochs.
    continued = [t for t in trials if t["parent_number"] is not None]
    # Each continued round started from its parent's saved weights, as KerasTuner's Hyperband does.
    assert loaded == [f"trial_{by_number[t['parent_number']]['engine_trial_id']}" for t in continued]
    assert continued and all(t["epochs_run"] + by_number[t["parent_number"]]["epochs_run"] == 3
                             for t in continued)
    assert not (tmp_path / "hpsearch-keras-tuner").exists(), "weights are deleted once no round needs them"
    # The table shows each continued round's parent and what its configuration cost in all.
    table = cli("trials", "h").out.splitlines()
    assert "continues (epochs)" in table[0]
    for trial in continued:
        row = next(line for line in table[1:] if line.split()[0] == str(trial["number"]))
        assert f"#{trial['parent_number']}, 3 in all" in row


def test_nan_trial_fails_but_search_goes_on_until_the_space_is_exhausted(cli, tmp_path, capsys):
    space = tmp_path / "mixed.yaml"
    space.write_text(
        "objective: val_loss\n"
        "params:\n"
        "  learning_rate: {type: categorical, choices: [1.0e+8, 3.0e-3]}\n"
        "fixed: {n_hidden: 1, n_neurons: 8, epochs: 2, optimizer: sgd}\n"
    )
    result = _run(cli, space, "--algorithm", "random", "--data", "diabetes", "--trials", "5", "--study", "g")
    assert result.code == 0, result.err
    # The failed trial is recorded with its reason, not reported as a traceback on the console.
    assert "Traceback" not in capsys.readouterr().err
    trials = {t["params"]["learning_rate"]: t for t in json.loads(cli("trials", "g", "--json").out)}
    assert len(trials) == 2, "the oracle stops once both values were tried"
    assert trials[1.0e8]["state"] == "FAILED" and "loss became" in trials[1.0e8]["error"]
    assert trials[3.0e-3]["state"] == "COMPLETE"
    assert json.loads(cli("best", "g", "--json").out)["params"]["learning_rate"] == 3.0e-3


def test_a_hyperband_round_with_a_failed_trial_leaves_no_weights_behind(cli, tmp_path):
    """KerasTuner promotes a round's best while its completed, unpromoted trials outnumber those the next
    round leaves out, so a round with a failed trial may never promote: its bracket never ends, and the
    weights its candidates kept must still be deleted when no round can continue them."""
    space = tmp_path / "sometimes-nan.yaml"
    space.write_text(
        "objective: val_loss\n"
        "params:\n"
        "  n_neurons: {type: int, low: 4, high: 32}\n"
        "  learning_rate: {type: categorical, choices: [1.0e+8, 3.0e-3]}\n"
        "fixed: {n_hidden: 1, epochs: 3, optimizer: sgd}\n"
    )
    result = _run(cli, space, "--algorithm", "hyperband", "--max-epochs", "3", "--factor", "3",
                  "--data", "diabetes", "--seed", "0", "--study", "f")
    assert result.code == 0, result.err
    # The run says why it ended below its plan, rather than leave "[5/6]" to read as a lost trial.
    assert ("the keras-tuner hyperband search ended after 5 of its 6 trials: KerasTuner promotes a round's "
            "best only while") in result.out
    trials = json.loads(cli("trials", "f", "--json").out)
    first_round = trials[:hyperband_plan(3, 3)[0][0].configs]  # 3 configurations for 1 epoch
    assert {t["state"] for t in first_round} == {"COMPLETE", "FAILED"}, "this seed fails one of them"
    assert all(t["parent_number"] is None for t in trials), "so the round promoted none"
    assert not (tmp_path / "hpsearch-keras-tuner").exists(), "and no weights are left on disk"


def test_every_trial_failing_ends_with_one_message(cli, tmp_path):
    space = tmp_path / "nan.yaml"
    space.write_text(DIVERGING_SPACE)
    result = _run(cli, space, "--algorithm", "random", "--data", "diabetes", "--trials", "3", "--study", "n")
    assert result.code == 1
    assert result.err.count("\n") == 1 and result.err.startswith("error: every trial failed (3 of 3)")
    stopped = _run(cli, space, "--algorithm", "random", "--data", "diabetes", "--trials", "10",
                   "--max-failures", "2", "--study", "m")
    assert stopped.code == 1 and "Traceback" not in stopped.err
    assert stopped.err.startswith("error: the search stopped after 2 consecutive failed trials")
    assert len(json.loads(cli("trials", "m", "--json").out)) == 2


def test_resume_settles_the_trial_a_kill_left_between_our_table_and_the_snapshot(cli, tiny_space):
    """Simulate kills at the two instants that leave the snapshot behind our table."""
    assert _run(cli, tiny_space, "--algorithm", "random", "--data", "iris", "--trials", "3", "--study",
                "s").code == 0
    with open_storage(os.environ["HPSEARCH_STORAGE"], create=False) as storage:
        study = storage.get_study("s")
        snapshot = study.settings[STATE_KEY]
        oracle = snapshot["oracle"]
        # 1. Killed after trial 0002 was recorded COMPLETE, before the next snapshot: still "running".
        snapshot["trials"]["0002"].update(status="RUNNING", score=None)
        oracle["end_order"].remove("0002")
        oracle["ongoing_trials"] = {"tuner0": "0002"}
        # 2. Killed after the oracle snapshotted a new trial, before we recorded it.
        values = {"n_neurons": 13, "learning_rate": 0.01, "activation": "tanh"}
        snapshot["trials"]["0003"] = {"values": values, "status": "RUNNING", "score": None, "best_step": 0}
        oracle["start_order"].append("0003")
        oracle["ongoing_trials"]["tuner1"] = "0003"
        storage.update_study_settings(study.id, {STATE_KEY: snapshot})

    resumed = cli("resume", "s", "--trials", "5", "--quiet", "--in-process")
    assert resumed.code == 0, resumed.err
    trials = json.loads(cli("trials", "s", "--json").out)
    assert [t["number"] for t in trials] == list(range(5))
    ids = [t["engine_trial_id"] for t in trials]
    assert ids == ["0000", "0001", "0002", "0003", "0004"], "0002 is not trained again; 0003 runs once"
    assert trials[3]["params"] == {"n_neurons": 13, "learning_rate": 0.01, "activation": "tanh"}
    state = _settings("s")[STATE_KEY]
    assert state["oracle"]["ongoing_trials"] == {} and state["oracle"]["retry_queue"] == []
    assert state["trials"]["0002"]["status"] == "COMPLETED"
    assert state["trials"]["0002"]["score"] == pytest.approx(trials[2]["value"])
