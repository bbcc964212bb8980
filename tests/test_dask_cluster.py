"""--dask: scikit-learn folds and KerasTuner trials as tasks on a real Dask cluster (a scheduler and two
workers started with the `dask` command on loopback), with a worker SIGKILLed mid-fit."""

from __future__ import annotations

import json
import subprocess

import pytest
from hpsearch.engines.keras_tuner.plan import hyperband_plan

from tests.conftest import hpsearch_command, query, spawn_hpsearch, wait_for
from tests.dask_cluster import dask_cluster
from tests.helpers import grid_space

pytestmark = pytest.mark.slow

#: 3 x 2 = 6 candidates, 3 folds each: 18 fits on two Dask workers.
GRID_SPACE = grid_space([4, 8, 16], [0.001, 0.01], epochs=2, batch_size=32)
CANDIDATES = 6

#: Fold scores are accuracies on held-out folds of 40 rows (steps of 0.025). Every fit is seeded (SciKeras'
#: random_state) and TensorFlow runs with op determinism, so a fold fitted on a Dask worker gives the very
#: score it gives in a local run, whatever the thread counts: the tolerance only absorbs float rounding.
SCORE_TOLERANCE = 1e-9
#: Candidates the local reference fits (the whole grid would double the test's time on two cores).
LOCAL_CANDIDATES = 4


def _fold_scores(db, study: str) -> dict[str, list[float]]:
    rows = query(db, "SELECT t.params, t.metrics FROM hp_trials t JOIN hp_studies s ON s.id = t.study_id "
                     "WHERE s.name = ? AND NOT t.interrupted", (study,))
    return {json.dumps(json.loads(params), sort_keys=True):
            [json.loads(metrics)[f"split{k}_test_score"] for k in range(3)] for params, metrics in rows}


def test_sklearn_grid_on_dask_loses_only_the_fit_of_a_killed_worker(tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text(GRID_SPACE)
    db = tmp_path / "d.db"
    url = f"sqlite:///{db}"
    common = ("--engine", "sklearn", "--cv", "3", "--data", "iris", "--seed", "3", "--storage", url,
              "--quiet")
    with dask_cluster(tmp_path, workers=2) as cluster:
        # The local reference (today's default: no --dask) runs meanwhile, in its own process: the first
        # LOCAL_CANDIDATES candidates of the grid, among them the one whose fit is killed below.
        local = subprocess.Popen(hpsearch_command("run", space, *common, "--study", "local", "--in-process",
                                                  "--trials", LOCAL_CANDIDATES),
                                 cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        process = spawn_hpsearch("run", space, *common, "--study", "dask", "--dask", cluster.scheduler_file,
                                 cwd=tmp_path)
        try:
            complete = ("SELECT COUNT(*) FROM hp_trials t JOIN hp_studies s ON s.id = t.study_id "
                        "WHERE s.name = 'dask' AND t.state = 'COMPLETE'")
            wait_for(lambda: query(db, complete)[0][0] >= 1)  # workers warm: TensorFlow imported
            # A fold of trial #1..#3 (compared with the local run) in Keras' training loop.
            victim, key = cluster.wait_until_training(("hpsearch-fold-trial1-", "hpsearch-fold-trial2-",
                                                       "hpsearch-fold-trial3-"))
            cluster.kill_worker(victim)
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, err
            assert len(cluster.client.nthreads()) == 1, "the killed worker stayed dead"
        finally:
            if process.poll() is None:
                process.kill()
            local_out, local_err = local.communicate(timeout=600)
        assert local.returncode == 0, local_err

    rows = query(db, "SELECT t.number, t.state, t.interrupted, t.retry_of, t.engine_trial_id "
                     "FROM hp_trials t JOIN hp_studies s ON s.id = t.study_id WHERE s.name = 'dask' "
                     "ORDER BY t.number")
    assert [row[0] for row in rows] == list(range(CANDIDATES)), "one trial per candidate, in grid order"
    assert [row[4] for row in rows] == [str(index) for index in range(CANDIDATES)]
    assert {row[1] for row in rows} == {"COMPLETE"} and not [row for row in rows if row[2] or row[3]], (
        "the killed worker cost only its fit, which Dask ran again elsewhere: no trial failed or retried")
    # Every fold of every candidate recorded once: 18 folds, each with its 2 epochs (split{k}_* in the
    # trial's epoch rows, which the store refuses to write twice).
    epochs = query(db, "SELECT e.trial_id, e.epoch, e.metrics FROM hp_trial_epochs e JOIN hp_trials t "
                       "ON t.id = e.trial_id JOIN hp_studies s ON s.id = t.study_id WHERE s.name = 'dask'")
    assert len(epochs) == CANDIDATES * 2 == len({(trial, epoch) for trial, epoch, _ in epochs})
    for _, _, metrics in epochs:
        assert {f"split{k}_loss" for k in range(3)} <= set(json.loads(metrics))
    fold_scores = query(db, "SELECT t.metrics FROM hp_trials t JOIN hp_studies s ON s.id = t.study_id "
                            "WHERE s.name = 'dask'")
    scored = sum(f"split{k}_test_score" in json.loads(m) for (m,) in fold_scores for k in range(3))
    assert scored == CANDIDATES * 3
    killed_trial = int(key.split("-trial")[1].split("-")[0])
    assert rows[killed_trial][1] == "COMPLETE"

    ours, theirs = _fold_scores(db, "dask"), _fold_scores(db, "local")
    assert len(ours) == CANDIDATES and len(theirs) == LOCAL_CANDIDATES and theirs.keys() <= ours.keys()
    for params, scores in theirs.items():
        assert ours[params] == pytest.approx(scores, abs=SCORE_TOLERANCE), params


#: Hyperband with --max-epochs 4 --factor 4: bracket 1 trains 4 configs 1 epoch and continues the best for 3
#: more; bracket 0 trains 2 configs 4 epochs. 7 trials.
HYPERBAND_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 8, high: 32}
  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 4, batch_size: 8}
"""
PLAN = hyperband_plan(4, 4)
BUDGET = sum(r.configs for bracket in PLAN for r in bracket)


def test_keras_tuner_hyperband_on_two_dask_workers_survives_one_killed_mid_trial(tmp_path):
    space = tmp_path / "hb.yaml"
    space.write_text(HYPERBAND_SPACE)
    db = tmp_path / "k.db"
    with dask_cluster(tmp_path, workers=2) as cluster:
        process = spawn_hpsearch("run", space, "--engine", "keras-tuner", "--algorithm", "hyperband",
                                 "--max-epochs", "4", "--factor", "4", "--data", "iris", "--study", "k",
                                 "--storage", f"sqlite:///{db}", "--quiet", "--dask", cluster.scheduler_file,
                                 cwd=tmp_path)
        try:
            victim, _ = cluster.wait_until_training("hpsearch-trial")
            cluster.kill_worker(victim)
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, err
        finally:
            if process.poll() is None:
                process.kill()

    rows = query(db, "SELECT number, state, interrupted, params, parent_number, epochs_run, engine_trial_id, "
                     "worker FROM hp_trials ORDER BY number")
    assert [row[0] for row in rows] == list(range(BUDGET)), "the budget reached, numbers without gaps"
    assert {row[1] for row in rows} == {"COMPLETE"} and not [row for row in rows if row[2]], (
        "the killed worker's trial ran again on the other worker, recorded once")
    assert len({row[6] for row in rows}) == BUDGET, "no KerasTuner trial trained twice"
    first_rounds = [json.dumps(json.loads(row[3]), sort_keys=True) for row in rows if row[4] is None]
    assert len(set(first_rounds)) == len(first_rounds), "no configuration trained twice from scratch"
    # The brackets hold: 4 x 1 epoch, 1 x 3 epochs continuing one of them, 2 x 4 epochs.
    assert sorted((row[4] is not None, row[5]) for row in rows) == sorted(
        (r.round > 0, r.trained) for bracket in PLAN for r in bracket for _ in range(r.configs))
    continued = [row for row in rows if row[4] is not None]
    assert json.loads(continued[0][3]) == json.loads(rows[continued[0][4]][3])
    epochs = query(db, "SELECT trial_id, epoch FROM hp_trial_epochs")
    assert len(set(epochs)) == len(epochs) == sum(row[5] for row in rows), "every epoch recorded once"
    assert not (tmp_path / "hpsearch-keras-tuner").exists(), "Hyperband's weights cleaned up"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "optuna"], "--dask does not apply to engine 'optuna'"),
        (["--engine", "sklearn", "--algorithm", "random", "--jobs", "2"],
         "--jobs 2 and --dask cannot be combined"),
        (["--engine", "sklearn", "--workers", "2"], "train on several machines with --dask"),
    ],
)
def test_dask_refusals_are_one_sentence_and_exit_2(cli, tiny_space, args, message):
    result = cli("run", tiny_space, "--data", "iris", "--study", "x", "--dask", "tcp://127.0.0.1:1", *args)
    assert result.code == 2, result.err
    assert message in result.err and "Traceback" not in result.err


def test_dry_run_names_the_cluster_and_the_cli_does_not_import_dask(cli, tiny_space):
    import sys

    result = cli("run", tiny_space, "--engine", "sklearn", "--algorithm", "random", "--trials", "2",
                 "--data", "iris", "--dask", "tcp://10.0.0.9:8786", "--dry-run")
    assert result.code == 0, result.err
    assert "tasks on the Dask cluster of scheduler tcp://10.0.0.9:8786" in result.out
    checked = subprocess.run(
        [sys.executable, "-c", "import sys, io\nfrom hpsearch.cli import main\n"
         "main(['run', '--help'], out=io.StringIO())\nprint('distributed' in sys.modules)"],
        capture_output=True, text=True, timeout=120,
    )
    assert checked.stdout.strip().splitlines()[-1] == "False", checked.stderr
