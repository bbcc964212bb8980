"""``--pruner asha``: asynchronous successive halving over the study's stored curves.

A trial goes on past a rung epoch only while among the best 1/factor of the configurations that reached
that epoch so far; nobody waits for a rung to fill, and the rungs are the stored curves, so a killed and
resumed study judges its new trials against the curves of the trials from before the kill.

The training functions are tiny pure-Python curves in a module written into the test's folder (worker
processes inherit it through PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import hpsearch_command, query, wait_for
from tests.helpers import run_hpsearch, trial_rows

FUNCTIONS = '''\
import math
import time
from pathlib import Path


def race(params, report):
    """The slow configuration waits (up to two minutes) until the fast one has finished all its epochs;
    each epoch is logged before it is reported."""
    folder = Path(params["folder"])
    fast = params["speed"] == "fast"
    if not fast:
        start = time.monotonic()
        while not (folder / "fast-finished").exists() and time.monotonic() - start < 120:
            time.sleep(0.05)
    level = 0.9 if fast else 0.3
    for epoch in range(1, params["epochs"] + 1):
        with (folder / "race.log").open("a") as log:
            log.write(f"{params['speed']} {epoch}\\n")
        report(epoch, val_accuracy=level * epoch / params["epochs"])
    if fast:
        (folder / "fast-finished").write_text("done")
    return level


def steady(params, report):
    """A deterministic curve that climbs towards ``quality``; a short sleep per epoch, so that a kill
    lands in the middle of a trial."""
    value = 0.0
    for epoch in range(1, params["epochs"] + 1):
        time.sleep(0.15)
        value = params["quality"] * (1 - math.exp(-epoch / 3))
        report(epoch, val_accuracy=value)
    return value
'''


@pytest.fixture
def functions(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "asha_functions.py").write_text(FUNCTIONS)
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def test_a_fast_trial_is_promoted_without_waiting_for_a_slow_one(tmp_path, functions):
    space = tmp_path / "race.yaml"
    space.write_text(f"""\
train: asha_functions:race
objective: val_accuracy
params:
  speed: {{type: categorical, choices: [slow, fast]}}
fixed: {{epochs: 4, folder: "{tmp_path}"}}
""")
    db = tmp_path / "race.db"
    run_hpsearch(tmp_path, "run", space, "--algorithm", "grid", "--trials", "2", "--workers", "2",
                 "--pruner", "asha", "--factor", "2", "--min-resources", "1", "--study", "race",
                 "--storage", f"sqlite:///{db}", "--quiet", env=functions)

    log = (tmp_path / "race.log").read_text().split()
    entries = list(zip(log[::2], map(int, log[1::2]), strict=True))
    # The fast trial went through both rungs (epochs 1 and 2) to its last epoch before the slow trial
    # reported its first: no rung waited for a second configuration.
    assert entries[:4] == [("fast", 1), ("fast", 2), ("fast", 3), ("fast", 4)]
    assert entries[4:] == [("slow", 1)]
    states = {json.loads(params)["speed"]: (state, epochs) for _, state, _, _, params, epochs
              in trial_rows(db, "epochs_run")}
    # The slow one arrived at rung 1 second, worse than the fast one's stored value there: with factor 2
    # only the better of the two goes on.
    assert states == {"fast": ("COMPLETE", 4), "slow": ("PRUNED", 1)}


def _rung_decisions_hold(db: Path, rungs: list[int], factor: int) -> int:
    """Check every finished trial's fate against ASHA's rule recomputed from the curves in Optuna's tables
    (one worker: a trial meets at a rung the configurations asked before it); returns how many were
    pruned."""
    hp = {str(engine_id): (number, retry_of, state) for number, state, engine_id, retry_of
          in query(db, "SELECT number, state, engine_trial_id, retry_of FROM hp_trials")}
    curves: dict[int, dict[int, float]] = {}
    for trial_id, step, value in query(db, "SELECT trial_id, step, intermediate_value "
                                           "FROM trial_intermediate_values"):
        curves.setdefault(trial_id, {})[step + 1] = value
    asked = [(trial_id, number) for trial_id, number in query(db, "SELECT trial_id, number FROM trials")
             if str(trial_id) in hp]
    asked.sort(key=lambda pair: pair[1])
    pruned = 0
    for place, (trial_id, _) in enumerate(asked):
        number, retry_of, state = hp[str(trial_id)]
        if state not in ("COMPLETE", "PRUNED"):
            continue
        key = retry_of if retry_of is not None else number
        curve = curves[trial_id]
        last = max(curve)
        for rung in [rung for rung in rungs if rung <= last]:
            others: dict[int, float] = {}
            for earlier_id, _ in asked[:place]:
                earlier_number, earlier_retry, _ = hp[str(earlier_id)]
                earlier_key = earlier_retry if earlier_retry is not None else earlier_number
                if earlier_key != key and rung in curves.get(earlier_id, {}):
                    others.setdefault(earlier_key, curves[earlier_id][rung])
            ranked = sorted([*others.values(), curve[rung]], reverse=True)
            goes_on = curve[rung] >= ranked[max(1, len(ranked) // factor) - 1]
            assert goes_on == (rung < last or state == "COMPLETE"), (number, rung, curve, others)
        pruned += state == "PRUNED"
    return pruned


def test_a_killed_and_resumed_asha_study_keeps_its_rungs(tmp_path, functions):
    space = tmp_path / "steady.yaml"
    space.write_text("""\
train: asha_functions:steady
objective: val_accuracy
params:
  quality: {type: float, low: 0.1, high: 1.0}
fixed: {epochs: 9}
""")
    db = tmp_path / "steady.db"
    url = f"sqlite:///{db}"
    process = subprocess.Popen(
        hpsearch_command("run", space, "--algorithm", "random", "--trials", "10", "--pruner", "asha",
                         "--study", "k", "--storage", url, "--quiet"),
        cwd=tmp_path, env={**os.environ, **functions}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(query(db, "SELECT number FROM hp_trials WHERE state IN ('COMPLETE', 'PRUNED')"))
                 >= 4 and query(db, "SELECT COUNT(*) FROM hp_trials WHERE state = 'RUNNING'") == [(1,)])
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = {row[0]: row[1] for row in trial_rows(db) if row[1] in ("COMPLETE", "PRUNED")}

    run_hpsearch(tmp_path, "resume", "k", "--storage", url, "--quiet", env=functions)

    after = {row[0]: row[1] for row in trial_rows(db)}
    assert {number: after[number] for number in before} == before, "decisions made before the kill hold"
    assert len([state for state in after.values() if state in ("COMPLETE", "PRUNED")]) == 10
    # Every trial, before and after the kill, met at each rung the curves of all trials asked before it,
    # the killed one's included: the rungs came back from the store.
    assert _rung_decisions_hold(db, rungs=[1, 3], factor=3) >= 1


STEADY_SPACE = {
    "train": "asha_functions:steady",
    "objective": "val_accuracy",
    "params": {"quality": {"type": "float", "low": 0.1, "high": 1.0}},
    "fixed": {"epochs": 9},
}


def test_python_asha_is_recorded_with_the_study_and_resumes_with_it(tmp_path, functions, monkeypatch):
    import hpsearch

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'py.db'}"
    study = hpsearch.run(STEADY_SPACE, trials=4, storage=url, study="py", pruner="asha", factor=2,
                         min_resources=2, progress=False, in_process=True)
    settings = study.record.settings
    assert (settings["pruner"], settings["factor"], settings["min_resources"]) == ("asha", 2, 2)
    study.resume(trials=6)
    trials = hpsearch.load_study("py", storage=url).trials
    assert len(trials) == 6
    # Rungs at epochs 2 and 4 (min_resources 2, factor 2): a pruned trial stopped on one of them.
    assert {trial.epochs_run for trial in trials if trial.state.value == "PRUNED"} <= {2, 4}
    # Another pruner on resume: the recorded rungs stay in the settings, unread, and are not in the way.
    study = hpsearch.load_study("py", storage=url).resume(trials=7, pruner="median")
    assert (study.record.settings["pruner"], study.record.settings["factor"]) == ("median", 2)
    assert len(study.trials) == 7


@pytest.mark.parametrize(("args", "sentence"), [
    (("--engine", "sklearn", "--pruner", "asha"), "--pruner does not apply to engine 'sklearn'"),
    (("--pruner", "median", "--factor", "2"),
     "--factor applies to optuna's asha and hyperband pruners only, not to pruner 'median'"),
    (("--pruner", "asha", "--min-resources", "exhaust"),
     "--min-resources must be a whole number of epochs of at least 1 for optuna's asha pruner, "
     "but got exhaust"),
    (("--pruner", "asha", "--factor", "1"), "--factor must be a whole number of at least 2"),
    (("--pruner", "sha"), "--pruner must be one of median, hyperband, asha, curve, none, but got 'sha'"),
])
def test_asha_options_that_cannot_apply_are_refused_in_one_sentence(cli, tmp_path, functions, args, sentence):
    space = tmp_path / "steady.yaml"
    space.write_text(json.dumps(STEADY_SPACE))
    result = cli("run", space, "--trials", "2", "--quiet", "--in-process", *args)
    assert result.code == 2
    assert sentence in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
