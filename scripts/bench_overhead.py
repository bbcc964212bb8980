"""Overhead of hpsearch against a plain Keras loop (and plain KerasTuner) training the same configurations.

Runs, side by side in one invocation, for each engine asked for (``--engines``, default both):

1. ``hpsearch run --engine optuna --algorithm random`` (pruning off, so every trial trains its full
   epochs) or ``hpsearch run --engine keras-tuner --algorithm random`` for N trials, a real subprocess as
   a user runs it, then reads back the N configurations it trained;
2. a plain Keras loop (another subprocess) that builds and fits exactly those N configurations on the
   same split with ``model.fit``, and nothing else: no storage, no recorder, no engine;
3. for keras-tuner only: plain KerasTuner used directly (``keras_tuner.RandomSearch`` with the same
   declared ``HyperParameters`` and seed, so its oracle proposes the same N configurations, each built by
   the same model builder), with KerasTuner's own checkpointing and ``oracle.json``/``trial.json`` files.
   The script checks that it trained the same configurations and reports the disk it left behind.

For ``sklearn`` (``hpsearch run --engine sklearn --algorithm random --cv 3``) the side-by-side baseline is
plain scikit-learn: ``GridSearchCV`` (``refit=False``) over exactly the candidates hpsearch fitted, with the
same SciKeras estimator, folds and scoring; a trial there is one candidate, i.e. 3 fits.

It prints seconds per trial, measured two ways: wall time of the whole process divided by N (start-up
included), and time inside the training loop divided by N, and the ratios. Run it with
``.venv/bin/python scripts/bench_overhead.py --trials 8``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN_LOOP = r"""
import json, sys, time
t0 = time.perf_counter()
from search.data import load_dataset
from search.training import seed_everything, task_info
from spaces import build_model, load_space, resolve_config
import keras
space = load_space(sys.argv[1])
dataset = load_dataset(sys.argv[2], seed=0)
points = json.loads(sys.argv[3])
task = task_info(dataset)
t1 = time.perf_counter()
for number, point in enumerate(points):
    config = resolve_config(space, point)
    seed_everything(number)
    model = build_model(config, task)
    model.fit(dataset.x_train, dataset.y_train, validation_data=(dataset.x_val, dataset.y_val),
              epochs=config["epochs"], batch_size=config["batch_size"], verbose=0)
    keras.backend.clear_session()
t2 = time.perf_counter()
print(json.dumps({"loop_s": t2 - t1, "startup_s": t1 - t0}))
"""

# Plain KerasTuner as its users write it: a HyperModel, RandomSearch, search(); KerasTuner's defaults for
# checkpoints and state files. Same declared space and oracle seed as hpsearch's engine (--seed 0 -> 1).
PLAIN_KERAS_TUNER = r"""
import json, os, sys, time
t0 = time.perf_counter()
import keras, keras_tuner
from search.data import load_dataset
from search.training import task_info
from spaces import build_model, load_space, resolve_config
from spaces.compile_keras_tuner import declare_hyperparameters, point_from_hyperparameters
space = load_space(sys.argv[1])
dataset = load_dataset(sys.argv[2], seed=0)
trials, directory = int(sys.argv[3]), sys.argv[4]
task = task_info(dataset)

class SpaceModel(keras_tuner.HyperModel):
    def build(self, hp):
        return build_model(resolve_config(space, point_from_hyperparameters(space, hp)), task)

    def fit(self, hp, model, *args, **kwargs):
        config = resolve_config(space, point_from_hyperparameters(space, hp))
        return model.fit(*args, epochs=config["epochs"], batch_size=config["batch_size"], **kwargs)

tuner = keras_tuner.RandomSearch(
    SpaceModel(), objective=keras_tuner.Objective(space.objective, "min" if space.direction == "minimize"
                                                  else "max"),
    max_trials=trials, seed=1, hyperparameters=declare_hyperparameters(space), allow_new_entries=False,
    tune_new_entries=False, directory=directory, project_name="plain", overwrite=True)
t1 = time.perf_counter()
tuner.search(dataset.x_train, dataset.y_train, validation_data=(dataset.x_val, dataset.y_val), verbose=0)
t2 = time.perf_counter()
points = [point_from_hyperparameters(space, trial.hyperparameters)
          for _, trial in sorted(tuner.oracle.trials.items())]
disk = sum(os.path.getsize(os.path.join(root, name))
           for root, _, names in os.walk(directory) for name in names)
files = sum(len(names) for _, _, names in os.walk(directory))
print(json.dumps({"loop_s": t2 - t1, "startup_s": t1 - t0, "points": points, "disk_bytes": disk,
                  "files": files}))
"""

# Plain scikit-learn: GridSearchCV over the very candidates hpsearch fitted (one single-point grid each).
PLAIN_GRIDSEARCHCV = r"""
import json, sys, time
t0 = time.perf_counter()
from sklearn.model_selection import GridSearchCV
from search.data import load_dataset
from search.engines.sklearn_engine import cv_rows
from search.scoring import scoring_for
from search.engines.sklearn_estimators import make_estimator
from spaces import load_space, resolve_config
from spaces.compile_sklearn import WRAPPER_PARAMS
space = load_space(sys.argv[1])
dataset = load_dataset(sys.argv[2], seed=0)
points, folds = json.loads(sys.argv[3]), int(sys.argv[4])
grid = [{(k if k in WRAPPER_PARAMS else "model__" + k): [v] for k, v in point.items()} for point in points]
x, y = cv_rows(dataset)
search = GridSearchCV(make_estimator(dataset.task, resolve_config(space, {}), seed=0), grid, cv=folds,
                      scoring=scoring_for(space.objective, dataset.task).name, refit=False)
t1 = time.perf_counter()
search.fit(x, y)
t2 = time.perf_counter()
print(json.dumps({"loop_s": t2 - t1, "startup_s": t1 - t0,
                  "scores": [float(v) for v in search.cv_results_["mean_test_score"]]}))
"""

SKLEARN_FOLDS = 3


def _hpsearch(
    bin_dir: Path, env: dict, engine: str, args: argparse.Namespace, url: str
) -> tuple[float, list]:
    extra = {"optuna": ["--pruner", "none"], "sklearn": ["--cv", str(SKLEARN_FOLDS)]}.get(engine, [])
    started = time.perf_counter()
    subprocess.run(
        [str(bin_dir / "hpsearch"), "run", args.space, "--engine", engine, "--algorithm", "random", *extra,
         "--data", args.data, "--trials", str(args.trials), "--study", engine, "--storage", url, "--quiet"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    trials = json.loads(subprocess.run(
        [str(bin_dir / "hpsearch"), "trials", engine, "--storage", url, "--json"],
        check=True, capture_output=True, text=True, env=env,
    ).stdout)
    return wall, trials


def _python(code: str, env: dict, *argv: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True,
                          env=env)
    return time.perf_counter() - started, json.loads(done.stdout.strip().splitlines()[-1])


def _disk(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--space", default="default")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--engines", default="optuna,keras-tuner,sklearn",
                        help="comma-separated: optuna, keras-tuner, sklearn (default all three)")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    rows: list[tuple[str, float, float, float, float]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        for engine in args.engines.split(","):
            service_wall, trials = _hpsearch(bin_dir, env, engine, args, url)
            points = [trial["params"] for trial in trials]
            n = len(points)
            service_loop = sum(trial["duration_s"] for trial in trials)
            if engine == "sklearn":
                plain_wall, plain = _python(PLAIN_GRIDSEARCHCV, env, args.space, args.data,
                                            json.dumps(points), str(SKLEARN_FOLDS))
                rows.append((f"hpsearch sklearn ({SKLEARN_FOLDS} folds/trial)", service_loop / n,
                             service_wall / n, service_loop / plain["loop_s"], service_wall / plain_wall))
                rows.append(("  plain GridSearchCV (same candidates)", plain["loop_s"] / n, plain_wall / n,
                             1.0, 1.0))
                ours = [abs(trial["metrics"]["mean_test_score"]) for trial in trials]
                same = all(abs(a - abs(b)) < 1e-6 for a, b in zip(ours, plain["scores"], strict=True))
                notes.append(f"sklearn: same mean CV scores as GridSearchCV: {same}")
                continue
            plain_wall, plain = _python(PLAIN_LOOP, env, args.space, args.data, json.dumps(points))
            rows.append((f"hpsearch {engine}", service_loop / n, service_wall / n,
                         service_loop / plain["loop_s"], service_wall / plain_wall))
            rows.append((f"  plain Keras ({engine}'s configs)", plain["loop_s"] / n, plain_wall / n,
                         1.0, 1.0))
            if engine == "keras-tuner":
                folder = Path(tmp) / "plain-keras-tuner"
                kt_wall, kt = _python(PLAIN_KERAS_TUNER, env, args.space, args.data, str(n), str(folder))
                same = kt["points"] == points
                rows.append(("  plain KerasTuner", kt["loop_s"] / n, kt_wall / n,
                             kt["loop_s"] / plain["loop_s"], kt_wall / plain_wall))
                notes.append(
                    f"keras-tuner: hpsearch / plain KerasTuner = {service_loop / kt['loop_s']:.2f} (training "
                    f"loop), {service_wall / kt_wall:.2f} (whole process); same configurations: {same}"
                )
                ours = _disk(Path(tmp)) - _disk(folder) - _db_size(url)
                notes.append(
                    f"keras-tuner disk after {n} trials: plain KerasTuner {kt['disk_bytes'] / 1024:.0f} KiB "
                    f"in {kt['files']} files; hpsearch {ours:.0f} bytes outside its database"
                )

    print(f"{args.trials} configurations per engine from space '{args.space}' on '{args.data}'")
    print(f"{'':36}{'s/trial loop':>14}{'s/trial wall':>14}{'loop ratio':>12}{'wall ratio':>12}")
    for name, loop, wall, loop_ratio, wall_ratio in rows:
        print(f"{name:36}{loop:>14.3f}{wall:>14.3f}{loop_ratio:>12.2f}{wall_ratio:>12.2f}")
    print("(ratios are against the plain Keras loop training the same configurations; for sklearn, against "
          "plain GridSearchCV)")
    for note in notes:
        print(note)


def _db_size(url: str) -> int:
    path = Path(url.removeprefix("sqlite:///"))
    return sum(candidate.stat().st_size for candidate in path.parent.glob(path.name + "*"))


if __name__ == "__main__":
    main()
