"""Search throughput: hpsearch against the plain loops a user would write, on the same configurations.

Everything runs side by side in one invocation, each contender in its own fresh process (a real
``hpsearch run`` as a user types it, or a plain script), one after the other so none shares the CPU:

Workload 1, the default space on digits (10 epochs, ``--trials`` configurations, default 40):

- ``hpsearch run --engine optuna --algorithm random --pruner none`` with one worker: the configurations
  it trained are read back and become everyone else's;
- the **plain Keras loop** (the reference): one process, ``build_model`` then ``model.fit`` on the arrays
  with ``validation_data``, compiled with the metrics a user compiles (accuracy), nothing stored;
- ``hpsearch run --engine keras-tuner --algorithm random`` and plain KerasTuner ``RandomSearch`` (same
  declared space and oracle seed, so the same configurations; KerasTuner's own files);
- the same with ``--recycle-after 5`` (a worker replaced every 5 trials; see warm workers in
  ``search/executors/supervisor.py``);
- ``hpsearch`` with ``--workers 2``, and with ``--workers 2`` plus Optuna's TPE and median pruner;
- ``hpsearch`` with ``--pack 8`` (configurations sharing a batch size train together, see
  ``search/training/packing.py``), with one worker and with two: the same configurations, whose values must
  equal
  those trained alone; and TPE with the median pruner, ``--pack 8`` and ``--workers 2`` (all hpsearch does
  together; its best value is printed next to the plain loop's best).

Workload 2, the absenteeism grid's shape (``spaces/presets/absenteeism-grid.yaml``: 768 candidates, 3
folds) on breast_cancer with ``--grid-epochs`` epochs (default 2): the first ``--grid-candidates``
candidates (default all 768) through ``hpsearch run --engine sklearn --cv 3 --jobs 2`` (SciKeras' fit, the
default ``--trainer scikeras``, whose scores must equal GridSearchCV's), the same with ``--trainer hpsearch``
(the direct fit, ``search/training/direct_fit.py``: scores within noise) and through
``GridSearchCV(n_jobs=2)`` over the same SciKeras estimator, candidates and folds. The estimator's model is
the builder's, compiled with the cheap metrics (accuracy) as a user compiles it; hpsearch adds, per
epoch, the validation curves of the others, its compiled-model reuse and its records.

Workload 3 (``--workloads backend``, not in the default set), the Keras backends: the default space on
digits with ``--backend-epochs`` epochs (default 10), ``--trials`` configurations, through the plain loop
on TensorFlow (the reference) and on JAX (``jit_compile``, as the builder compiles for JAX), and through
``hpsearch run --backend tensorflow|jax`` with one and two workers; parity against the plain TensorFlow
loop's values.

Workload 4 (``--workloads workers``, not in the default set): one hpsearch worker against ``--workers
2`` on the default workload's configurations, next to the plain loop alone and two plain loops at once
(each on half the configurations, one thread per TensorFlow pool): the most two processes get out of
this machine's two cores on this workload.

Workloads ``seed-grid`` and ``population`` (issue 42's goals, ``scripts/throughput_population.py`` says
what each contender is): the absenteeism grid at full size (768 candidates x 5 folds x 50 epochs) with the
population trainer against ``--trainer hpsearch`` and ``GridSearchCV(n_jobs=2)`` on samples; a random
search of 200 configurations of the default space on digits with the population trainer against the
plain loop on a sample; and in the same run a matmul micro-benchmark beside the population trainer's
achieved floating-point rate. Their tables go to ``scripts/results/throughput-population.json``
(``scripts/bench_results.py``).

Reported per contender: seconds per trial, trials per minute, latency from launch to the first finished
trial, and the ratio of trials per minute to the reference; score parity as the median absolute
difference of the objective between the same configurations; and, from a probe that trains one
configuration at two batch sizes both ways, milliseconds per training step and the fixed cost per epoch.
Timings are printed, never asserted. Run:

    .venv/bin/python scripts/bench_throughput.py                      # both workloads, about 95 min here
    .venv/bin/python scripts/bench_throughput.py --trials 20 --grid-candidates 48   # a shorter look
    .venv/bin/python scripts/bench_throughput.py --workloads backend --trials 24    # TensorFlow vs JAX
    .venv/bin/python scripts/bench_throughput.py --workloads workers --trials 40    # 2 workers vs 2 loops
    .venv/bin/python scripts/bench_throughput.py --workloads seed-grid,population   # the population goals
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# The reference: a plain loop over the same configurations. Compiled with accuracy only, as a user
# would; hpsearch's trials also score AUC, F1 and top-k accuracy on the validation split every epoch.
PLAIN_LOOP = r"""
import json, sys, time
t0 = time.perf_counter()
points = json.load(sys.stdin)
from hpsearch.data import load_dataset
from hpsearch.training.fit import seed_everything, task_info
from hpsearch.spaces import build_model, load_space, resolve_config
import keras
space = load_space(sys.argv[1])
dataset = load_dataset(sys.argv[2], seed=0)
task = task_info(dataset)
values, first = [], None
for number, point in enumerate(points):
    config = resolve_config(space, point)
    seed_everything(number)
    model = build_model(config, task, metrics={"accuracy"})
    history = model.fit(dataset.x_train, dataset.y_train, validation_data=(dataset.x_val, dataset.y_val),
                        epochs=config["epochs"], batch_size=config["batch_size"], verbose=0).history
    values.append(max(history[space.objective]) if space.direction == "maximize"
                  else min(history[space.objective]))
    keras.backend.clear_session()
    first = first or time.perf_counter() - t0
print(json.dumps({"wall_s": time.perf_counter() - t0, "first_s": first, "values": values}))
"""

# Plain KerasTuner as its users write it: a HyperModel, RandomSearch, search(); KerasTuner's defaults for
# checkpoints and state files. Same declared space and oracle seed as hpsearch's engine (--seed 0 -> 1).
PLAIN_KERAS_TUNER = r"""
import json, sys, time
t0 = time.perf_counter()
import keras, keras_tuner
from hpsearch.data import load_dataset
from hpsearch.training.fit import task_info
from hpsearch.spaces import build_model, load_space, resolve_config
from hpsearch.spaces.compile_keras_tuner import declare_hyperparameters, point_from_hyperparameters
space = load_space(sys.argv[1])
dataset = load_dataset(sys.argv[2], seed=0)
trials, directory = int(sys.argv[3]), sys.argv[4]
task = task_info(dataset)
ended = []

class SpaceModel(keras_tuner.HyperModel):
    def build(self, hp):
        return build_model(resolve_config(space, point_from_hyperparameters(space, hp)), task,
                           metrics={"accuracy"})

    def fit(self, hp, model, *args, **kwargs):
        config = resolve_config(space, point_from_hyperparameters(space, hp))
        history = model.fit(*args, epochs=config["epochs"], batch_size=config["batch_size"], **kwargs)
        ended.append(time.perf_counter() - t0)
        return history

tuner = keras_tuner.RandomSearch(
    SpaceModel(), objective=keras_tuner.Objective(space.objective, "min" if space.direction == "minimize"
                                                  else "max"),
    max_trials=trials, seed=1, hyperparameters=declare_hyperparameters(space), allow_new_entries=False,
    tune_new_entries=False, directory=directory, project_name="plain", overwrite=True)
tuner.search(dataset.x_train, dataset.y_train, validation_data=(dataset.x_val, dataset.y_val), verbose=0)
points = [point_from_hyperparameters(space, trial.hyperparameters)
          for _, trial in sorted(tuner.oracle.trials.items())]
print(json.dumps({"wall_s": time.perf_counter() - t0, "first_s": ended[0], "points": points}))
"""

# Plain scikit-learn: GridSearchCV over the very candidates hpsearch fitted (one single-point grid each).
PLAIN_GRIDSEARCHCV = r"""
import json, sys, time
t0 = time.perf_counter()
points = json.load(sys.stdin)
from sklearn.model_selection import GridSearchCV
from hpsearch.data import load_dataset
from hpsearch.engines.sklearn.cross_validation import cv_rows
from hpsearch.training.scoring import scoring_for
from hpsearch.engines.sklearn.estimators import make_estimator
from hpsearch.spaces import load_space, resolve_config
from hpsearch.spaces.compile_sklearn import WRAPPER_PARAMS
space = load_space(sys.argv[1])
dataset = load_dataset(sys.argv[2], seed=0)
folds, jobs = int(sys.argv[3]), int(sys.argv[4])
grid = [{(k if k in WRAPPER_PARAMS else "model__" + k): [v] for k, v in point.items()} for point in points]
x, y = cv_rows(dataset)
search = GridSearchCV(make_estimator(dataset.task, resolve_config(space, {}), seed=0), grid, cv=folds,
                      scoring=scoring_for(space.objective, dataset.task).name, refit=False, n_jobs=jobs)
search.fit(x, y)
print(json.dumps({"wall_s": time.perf_counter() - t0, "first_s": None,
                  "values": [float(v) for v in search.cv_results_["mean_test_score"]]}))
"""

# Milliseconds per training step and fixed cost per epoch, both ways: epochs 2..E of one configuration
# at batch sizes 16 and 256 give two (steps, seconds) points; the line through them is cost = fixed +
# steps * per_step. "plain" is model.fit on arrays; "hpsearch" is the trial runner's fit_config.
PROBE = r"""
import json, sys, time
import keras
from hpsearch.data import load_dataset
from hpsearch.training.fit import fit_config, seed_everything, task_info
from hpsearch.spaces import build_model, load_space, resolve_config
space = load_space(sys.argv[1])
dataset = load_dataset(sys.argv[2], seed=0)
task = task_info(dataset)
epochs = 12

class Clock(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.ends = getattr(self, "ends", []) + [time.perf_counter()]

def per_epoch(mode, batch):
    config = dict(resolve_config(space, {"n_hidden": 2, "n_neurons": 64, "activation": "relu"}),
                  batch_size=batch, epochs=epochs)
    clock = Clock()
    if mode == "plain":
        seed_everything(0)
        model = build_model(config, task, metrics={"accuracy"})
        model.fit(dataset.x_train, dataset.y_train, validation_data=(dataset.x_val, dataset.y_val),
                  epochs=epochs, batch_size=batch, verbose=0, callbacks=[clock])
        keras.backend.clear_session()
    else:
        fit_config(config, dataset, objective=space.objective, direction=space.direction, callbacks=[clock])
    gaps = [b - a for a, b in zip(clock.ends, clock.ends[1:])]  # the first epoch holds the compile
    return sorted(gaps)[len(gaps) // 2]

out = {}
rows = len(dataset.x_train)
for mode in ("plain", "hpsearch"):
    per_epoch(mode, 32)  # warm-up: the process's first fit pays one-time costs
    (s1, t1), (s2, t2) = [(-(-rows // batch), per_epoch(mode, batch)) for batch in (16, 256)]
    per_step = (t1 - t2) / (s1 - s2)
    out[mode] = {"ms_per_step": 1000 * per_step, "fixed_ms_per_epoch": 1000 * (t1 - s1 * per_step)}
print(json.dumps(out))
"""

GRID_SPACE = "absenteeism-grid"
FOLDS = 3


def _python(code: str, env: dict, *argv: str, points: list | None = None) -> dict:
    """Run a plain script in a fresh process; its last stdout line, parsed. ``points`` (the configurations)
    go on stdin: as one argument, the grid's 768 overflow Linux's 128 KiB limit on an argument."""
    done = subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True,
                          env=env, input=None if points is None else json.dumps(points))
    return json.loads(done.stdout.strip().splitlines()[-1])


def _python_pair(code: str, env: dict, space: str, data: str, points: list) -> dict:
    """Two plain loops at once, each on every other configuration and one thread per TensorFlow pool
    (as hpsearch sizes two workers' pools): what two independent processes get out of this machine."""
    one_thread = {**env, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    halves = [points[0::2], points[1::2]]
    started = time.perf_counter()
    inputs = []  # each half in a file of its own, the script's stdin, so neither waits for a pipe reader
    for half in halves:
        inputs.append(tempfile.TemporaryFile("w+"))
        json.dump(half, inputs[-1])
        inputs[-1].seek(0)
    processes = [subprocess.Popen([sys.executable, "-c", code, space, data], stdin=stdin,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=one_thread)
                 for stdin in inputs]
    results = []
    for process in processes:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode, process.args, stdout, stderr)
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    for stdin in inputs:
        stdin.close()
    wall = time.perf_counter() - started
    values = [None] * len(points)
    values[0::2], values[1::2] = results[0]["values"], results[1]["values"]
    return {"wall_s": wall, "first_s": min(result["first_s"] for result in results), "values": values}


def _hpsearch(env: dict, url: str, study: str, *args: str) -> dict:
    """Run ``hpsearch run`` to the end; wall time, first-trial latency and the trials it trained."""
    hpsearch = str(Path(sys.executable).parent / "hpsearch")
    launched = time.time()
    started = time.perf_counter()
    subprocess.run([hpsearch, "run", *args, "--study", study, "--storage", url, "--quiet"], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    trials = json.loads(subprocess.run([hpsearch, "trials", study, "--storage", url, "--json"], check=True,
                                       capture_output=True, text=True, env=env).stdout)
    trained = [trial for trial in trials if trial["state"] in ("COMPLETE", "PRUNED")]
    ends = [_epoch_seconds(trial["ended_at"]) for trial in trained if trial["ended_at"]]
    return {"wall_s": wall, "first_s": min(ends) - launched if ends else None, "trials": trained}


def _epoch_seconds(stamp: str) -> float:
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _key(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


def _parity(ours: dict[str, float], theirs: dict[str, float]) -> str:
    shared = [key for key in ours if key in theirs and ours[key] is not None and theirs[key] is not None]
    if not shared:
        return "no configuration in common"
    gaps = [abs(ours[key] - theirs[key]) for key in shared]
    return f"median |diff| {statistics.median(gaps):.4f} over {len(shared)} configurations"


def _best(ours: dict[str, float], theirs: dict[str, float]) -> str:
    """Both searches' best mean fold score, and whether they pick the same candidate."""
    mine = max(ours, key=lambda key: ours[key] or 0.0)
    reference = max(theirs, key=lambda key: theirs[key] or 0.0)
    return (f"; best {ours[mine]:.4f} against GridSearchCV's {theirs[reference]:.4f}"
            f" ({'the same' if mine == reference else 'another'} candidate)")


def _same(ours: dict[str, float], theirs: dict[str, float], what: str) -> str:
    """Whether the configurations both trained have exactly the same values (two workers asking packs at
    once may leave a few different configurations to the last places of the budget)."""
    shared = [key for key in ours if key in theirs]
    same = all(ours[key] == theirs[key] for key in shared)
    return f"same values as {what}: {same} ({len(shared)} configurations in common)"


def _row(rows: list, name: str, n: int, result: dict, reference_per_min: float | None,
         parity: str = "") -> float:
    per_min = 60.0 * n / result["wall_s"]
    first = result.get("first_s")
    rows.append((name, n, result["wall_s"] / n, per_min,
                 per_min / reference_per_min if reference_per_min else 1.0,
                 "-" if first is None else f"{first:.1f}", parity))
    return per_min


def _print(title: str, rows: list) -> None:
    print(f"\n{title}")
    print(f"{'':52}{'trials':>7}{'s/trial':>9}{'trials/min':>12}{'x ref':>7}{'1st trial s':>13}  parity")
    for name, n, per_trial, per_min, ratio, first, parity in rows:
        print(f"{name:52}{n:>7}{per_trial:>9.2f}{per_min:>12.1f}{ratio:>7.2f}{first:>13}  {parity}")


def workload_default(args: argparse.Namespace, env: dict, tmp: Path) -> None:
    url = f"sqlite:///{tmp / 'throughput.db'}"
    common = ["default", "--data", "digits", "--trials", str(args.trials)]
    rows: list = []
    random_run = _hpsearch(env, url, "optuna-1", *common, "--engine", "optuna", "--algorithm", "random",
                           "--pruner", "none")
    points = [trial["params"] for trial in random_run["trials"]]
    n = len(points)
    plain = _python(PLAIN_LOOP, env, "default", "digits", points=points)
    reference = _row(rows, "plain Keras loop (reference)", n, plain, None)
    plain_values = {_key(point): value for point, value in zip(points, plain["values"], strict=True)}
    ours = {_key(trial["params"]): trial["value"] for trial in random_run["trials"]}
    _row(rows, "hpsearch optuna random, 1 worker", n, random_run, reference, _parity(ours, plain_values))

    # Recycling every 5 trials: 7 replacements, each started warm while its predecessor trains.
    recycled = _hpsearch(env, url, "optuna-recycled", *common, "--engine", "optuna", "--algorithm", "random",
                         "--pruner", "none", "--recycle-after", "5")
    _row(rows, "hpsearch optuna random, 1 worker, --recycle-after 5", len(recycled["trials"]), recycled,
         reference, _same({_key(t["params"]): t["value"] for t in recycled["trials"]}, ours, "1 worker"))

    two = _hpsearch(env, url, "optuna-2", *common, "--engine", "optuna", "--algorithm", "random",
                    "--pruner", "none", "--workers", "2")
    two_values = {_key(trial["params"]): trial["value"] for trial in two["trials"]}
    _row(rows, "hpsearch optuna random, 2 workers", len(two["trials"]), two, reference,
         _parity(two_values, plain_values))

    # Packs: the same configurations (the sampler draws by proposal index), trained in packs of up to
    # --pack configurations sharing a batch size; each trial's value must equal its value alone.
    packed = _hpsearch(env, url, "optuna-pack-1", *common, "--engine", "optuna", "--algorithm", "random",
                       "--pruner", "none", "--pack", str(args.pack))
    packed_values = {_key(trial["params"]): trial["value"] for trial in packed["trials"]}
    _row(rows, f"hpsearch optuna random, --pack {args.pack}, 1 worker", len(packed["trials"]), packed,
         reference, _same(packed_values, ours, "alone"))
    packed_two = _hpsearch(env, url, "optuna-pack-2", *common, "--engine", "optuna", "--algorithm", "random",
                           "--pruner", "none", "--pack", str(args.pack), "--workers", "2")
    packed_two_values = {_key(trial["params"]): trial["value"] for trial in packed_two["trials"]}
    # Against the unpacked two workers: a worker's TensorFlow threads (cores / workers) change float
    # rounding, so one worker and two do not give the same values even alone.
    _row(rows, f"hpsearch optuna random, --pack {args.pack}, 2 workers", len(packed_two["trials"]),
         packed_two, reference, _same(packed_two_values, two_values, "alone with 2 workers"))

    kt = _hpsearch(env, url, "kt-1", *common, "--engine", "keras-tuner", "--algorithm", "random")
    kt_values = {_key(trial["params"]): trial["value"] for trial in kt["trials"]}
    _row(rows, "hpsearch keras-tuner random, 1 worker", len(kt["trials"]), kt, reference)
    plain_kt = _python(PLAIN_KERAS_TUNER, env, "default", "digits", str(args.trials),
                       str(tmp / "plain-keras-tuner"))
    same = {_key(point) for point in plain_kt["points"]} == set(kt_values)
    _row(rows, "plain KerasTuner RandomSearch", len(plain_kt["points"]), plain_kt, reference,
         f"same configurations as hpsearch keras-tuner: {same}")

    best = _hpsearch(env, url, "optuna-tpe-2", *common, "--engine", "optuna", "--algorithm", "tpe",
                     "--pruner", "median", "--workers", "2")
    best_value = max(trial["value"] for trial in best["trials"] if trial["value"] is not None)
    _row(rows, "hpsearch optuna tpe+median pruner, 2 workers", len(best["trials"]), best, reference,
         f"best {best_value:.4f} vs plain loop's best {max(plain['values']):.4f}")
    together = _hpsearch(env, url, "optuna-tpe-pack-2", *common, "--engine", "optuna", "--algorithm", "tpe",
                         "--pruner", "median", "--workers", "2", "--pack", str(args.pack))
    together_value = max(trial["value"] for trial in together["trials"] if trial["value"] is not None)
    _row(rows, f"hpsearch tpe+median, --pack {args.pack}, 2 workers", len(together["trials"]), together,
         reference, f"best {together_value:.4f} vs plain loop's best {max(plain['values']):.4f}")
    _print(f"Workload 1: space 'default' on digits, 10 epochs, {n} configurations (x ref: trials/min "
           "against the plain loop)", rows)

    probe = _python(PROBE, env, "default", "digits")
    print("\nPer-epoch costs (one configuration, 2x64 relu, median of epochs 2-12 at batch 16 and 256):")
    for mode, label in (("plain", "plain model.fit"), ("hpsearch", "hpsearch trial fit")):
        print(f"  {label:20} {probe[mode]['ms_per_step']:.2f} ms per step, "
              f"{probe[mode]['fixed_ms_per_epoch']:.0f} ms fixed per epoch")


def workload_grid(args: argparse.Namespace, env: dict, tmp: Path) -> None:
    space = tmp / "grid.yaml"
    preset = Path(__file__).resolve().parent.parent / "spaces" / "presets" / f"{GRID_SPACE}.yaml"
    epochs = f"epochs: {{type: categorical, choices: [{args.grid_epochs}]}}"
    space.write_text(preset.read_text().replace("epochs: {type: categorical, choices: [50]}", epochs))
    url = f"sqlite:///{tmp / 'grid.db'}"
    ours = _hpsearch(env, url, "grid", str(space), "--engine", "sklearn", "--algorithm", "grid",
                     "--data", "breast_cancer", "--cv", str(FOLDS), "--jobs", "2",
                     "--trials", str(args.grid_candidates))
    points = [trial["params"] for trial in ours["trials"]]
    plain = _python(PLAIN_GRIDSEARCHCV, env, str(space), "breast_cancer", str(FOLDS), "2", points=points)
    theirs = {_key(point): value for point, value in zip(points, plain["values"], strict=True)}
    mine = {_key(trial["params"]): trial["metrics"].get("mean_test_score") for trial in ours["trials"]}
    direct = _hpsearch(env, url, "grid-direct", str(space), "--engine", "sklearn", "--algorithm", "grid",
                       "--data", "breast_cancer", "--cv", str(FOLDS), "--jobs", "2", "--trainer", "hpsearch",
                       "--trials", str(args.grid_candidates))
    direct_scores = {_key(trial["params"]): trial["metrics"].get("mean_test_score")
                     for trial in direct["trials"]}
    rows: list = []
    reference = _row(rows, "GridSearchCV(n_jobs=2) over SciKeras", len(points), plain, None)
    _row(rows, "hpsearch sklearn grid --jobs 2", len(points), ours, reference, _parity(mine, theirs))
    _row(rows, "hpsearch sklearn grid --jobs 2 --trainer hpsearch", len(direct["trials"]), direct, reference,
         _parity(direct_scores, theirs) + _best(direct_scores, theirs))
    _print(f"Workload 2: the absenteeism grid's shape on breast_cancer, {len(points)} candidates x {FOLDS} "
           f"folds, {args.grid_epochs} epochs (whole grid: GridSearchCV {plain['wall_s']:.0f} s, hpsearch "
           f"{ours['wall_s']:.0f} s, --trainer hpsearch {direct['wall_s']:.0f} s)", rows)


def workload_workers(args: argparse.Namespace, env: dict, tmp: Path) -> None:
    """``--workers 2`` against one worker, next to what two independent plain loops at once get from
    this machine (the ceiling two workers can approach: they share its cores, caches and memory)."""
    url = f"sqlite:///{tmp / 'workers.db'}"
    common = ["default", "--data", "digits", "--trials", str(args.trials), "--engine", "optuna",
              "--algorithm", "random", "--pruner", "none"]
    one = _hpsearch(env, url, "workers-1", *common)
    points = [trial["params"] for trial in one["trials"]]
    n = len(points)
    plain = _python(PLAIN_LOOP, env, "default", "digits", points=points)
    pair = _python_pair(PLAIN_LOOP, env, "default", "digits", points)
    two = _hpsearch(env, url, "workers-2", *common, "--workers", "2")
    rows: list = []
    reference = _row(rows, "plain Keras loop (reference)", n, plain, None)
    pair_rate = _row(rows, "two plain loops at once, half the configurations each", n, pair, reference)
    one_rate = _row(rows, "hpsearch, 1 worker", n, one, reference)
    two_rate = _row(rows, "hpsearch, --workers 2", len(two["trials"]), two, reference)
    _print(f"Workers: space 'default' on digits, 10 epochs, {n} configurations (x ref: trials/min against "
           "the plain loop)", rows)
    print(f"\ntwo plain loops at once: {pair_rate / reference:.2f}x one plain loop; --workers 2: "
          f"{two_rate / one_rate:.2f}x one worker")


def workload_backend(args: argparse.Namespace, env: dict, tmp: Path) -> None:
    """TensorFlow against JAX (``--backend``), each as the plain loop and as hpsearch, on the same
    configurations of the default space with ``--backend-epochs`` epochs."""
    space = tmp / "backend.yaml"
    preset = Path(__file__).resolve().parent.parent / "spaces" / "presets" / "default.yaml"
    space.write_text(preset.read_text().replace("epochs: 10", f"epochs: {args.backend_epochs}"))
    url = f"sqlite:///{tmp / 'backend.db'}"
    common = [str(space), "--data", "digits", "--trials", str(args.trials), "--engine", "optuna",
              "--algorithm", "random", "--pruner", "none"]
    tf_one = _hpsearch(env, url, "tensorflow-1", *common)
    points = [trial["params"] for trial in tf_one["trials"]]
    n = len(points)
    plain_tf = _python(PLAIN_LOOP, {**env, "KERAS_BACKEND": "tensorflow"}, str(space), "digits",
                       points=points)
    plain_jax = _python(PLAIN_LOOP, {**env, "KERAS_BACKEND": "jax"}, str(space), "digits", points=points)
    tf_values = {_key(point): value for point, value in zip(points, plain_tf["values"], strict=True)}
    jax_values = {_key(point): value for point, value in zip(points, plain_jax["values"], strict=True)}
    rows: list = []
    reference = _row(rows, "plain Keras loop, tensorflow (reference)", n, plain_tf, None)
    _row(rows, "plain Keras loop, jax (jit_compile)", n, plain_jax, reference, _parity(jax_values, tf_values))
    for workers in (1, 2):
        run = tf_one if workers == 1 else _hpsearch(env, url, "tensorflow-2", *common, "--workers", "2")
        values = {_key(trial["params"]): trial["value"] for trial in run["trials"]}
        _row(rows, f"hpsearch --backend tensorflow, {workers} worker(s)", len(run["trials"]), run, reference,
             _parity(values, tf_values))
        run = _hpsearch(env, url, f"jax-{workers}", *common, "--backend", "jax", "--workers", str(workers))
        values = {_key(trial["params"]): trial["value"] for trial in run["trials"]}
        _row(rows, f"hpsearch --backend jax, {workers} worker(s)", len(run["trials"]), run, reference,
             _parity(values, tf_values))
    _print(f"Backends: space 'default' on digits, {args.backend_epochs} epochs, {n} configurations (x ref: "
           "trials/min against the plain TensorFlow loop; parity against it)", rows)


def workload_goals(args: argparse.Namespace, env: dict, tmp: Path) -> None:
    """The population trainer's goals (``scripts/throughput_population.py``), written as a result file."""
    import throughput_population as goals
    from bench_results import write_result

    tables, data, achieved = [], {}, []
    started_load = os.getloadavg()[1]  # the machine is shared: how busy it was says what a figure means
    if "seed-grid" in args.workloads:
        seed = goals.workload_seed_grid(args, env, tmp, _hpsearch, _python, PLAIN_GRIDSEARCHCV)
        tables += seed["tables"]
        data.update(seed["data"])
        achieved.append(("population trainer, absenteeism grid", seed["flops"], seed["wall_s"]))
    if "population" in args.workloads:
        digits = goals.workload_population(args, env, tmp, _hpsearch, _python, PLAIN_LOOP)
        tables += digits["tables"]
        data.update(digits["data"])
        achieved.append(("population trainer, digits random search", digits["flops"], digits["wall_s"]))
    rates = goals.matmul_rates(_python, env, args.matmul_members)
    data["matmul"] = rates
    tables.append(goals.flops_table(rates, achieved))
    profile, data["profile"] = goals.profile_table(_python, env, tmp, args.profile_members, rates)
    tables.append(profile)
    data["load_average_5min"] = {"start": started_load, "end": os.getloadavg()[1]}
    for entry in tables:
        print(f"\n{entry['title']}")
        print("  " + " | ".join(entry["columns"]))
        for row in entry["rows"]:
            print("  " + " | ".join(str(cell) for cell in row))
    path = write_result(args.result_name, title="Population trainer throughput (issue 42's goals)",
                        tables=tables, data=data, summary=goals.summary(data))
    print(f"\nwritten: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="configurations of workload 1")
    parser.add_argument("--pack", type=int, default=8, help="--pack of the packed contenders of workload 1")
    parser.add_argument("--grid-candidates", type=int, default=768, help="candidates of workload 2")
    parser.add_argument("--grid-epochs", type=int, default=2)
    parser.add_argument("--backend-epochs", type=int, default=10, help="epochs of the backend workload")
    parser.add_argument("--seed-epochs", type=int, default=50, help="epochs of the seed-grid workload")
    parser.add_argument("--seed-candidates", type=int, default=768,
                        help="candidates the population trainer runs in the seed-grid workload")
    parser.add_argument("--seed-quick", action="store_true",
                        help="seed-grid: every contender on a smaller sub-grid, extrapolated to the grid")
    parser.add_argument("--population-trials", type=int, default=200, help="configurations of goal 2")
    parser.add_argument("--plain-sample", type=int, default=20,
                        help="of those, how many the plain loop trains (every k-th)")
    parser.add_argument("--matmul-members", type=int, default=512,
                        help="members of the population-shaped matmul of the micro-benchmark")
    parser.add_argument("--profile-members", type=int, default=512,
                        help="members of the population whose time per member-epoch is profiled")
    parser.add_argument("--result-name", default="throughput-population",
                        help="result file of the seed-grid and population workloads (scripts/results/)")
    parser.add_argument("--workloads", default="default,grid",
                        help="comma-separated: default, grid; workers, backend, seed-grid and population run "
                             "only when named")
    args = parser.parse_args()
    args.workloads = set(args.workloads.split(","))  # a set: "grid" is not "seed-grid"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # Warm the disk cache first: whichever contender ran first would otherwise pay for the cold imports
    # (measured: 19 s to hpsearch's first trial cold, 8.5 s warm).
    subprocess.run([sys.executable, "-c", "import keras, keras_tuner, optuna, sklearn, scikeras, sqlalchemy"],
                   check=True, env=env, capture_output=True)
    with tempfile.TemporaryDirectory() as folder:
        if "default" in args.workloads:
            workload_default(args, env, Path(folder))
        if "grid" in args.workloads:
            workload_grid(args, env, Path(folder))
        if "workers" in args.workloads:
            workload_workers(args, env, Path(folder))
        if "backend" in args.workloads:
            workload_backend(args, env, Path(folder))
        if "seed-grid" in args.workloads or "population" in args.workloads:
            workload_goals(args, env, Path(folder))


if __name__ == "__main__":
    main()
