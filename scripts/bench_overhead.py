"""Overhead of hpsearch against a plain Keras loop training the same configurations.

Runs, side by side in one invocation:

1. ``hpsearch run --engine optuna --algorithm random`` for N trials (a real subprocess, as a user runs
   it, pruning off so every trial trains its full epochs), then reads back the N configurations it
   trained;
2. a plain Keras loop (another subprocess) that builds and fits exactly those N configurations on the
   same split with ``model.fit``, and nothing else: no storage, no recorder, no engine.

It prints seconds per trial for both, measured two ways: wall time of the whole process divided by N
(start-up included), and time inside the training loop divided by N, and the ratios. Run it with
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
from search.training import seed_everything
from spaces import TaskInfo, build_model, load_space, resolve_config
import keras
space = load_space(sys.argv[1])
dataset = load_dataset(sys.argv[2], seed=0)
points = json.loads(sys.argv[3])
task = TaskInfo(dataset.task, dataset.n_features, dataset.n_classes)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--space", default="default")
    parser.add_argument("--data", default="digits")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        url = f"sqlite:///{db}"
        started = time.perf_counter()
        subprocess.run(
            [str(bin_dir / "hpsearch"), "run", args.space, "--engine", "optuna", "--algorithm", "random",
             "--pruner", "none", "--data", args.data, "--trials", str(args.trials), "--study", "bench",
             "--storage", url, "--quiet"],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )
        service_wall = time.perf_counter() - started
        trials = json.loads(subprocess.run(
            [str(bin_dir / "hpsearch"), "trials", "bench", "--storage", url, "--json"],
            check=True, capture_output=True, text=True, env=env,
        ).stdout)
        points = [trial["params"] for trial in trials]
        service_loop = sum(trial["duration_s"] for trial in trials)

        started = time.perf_counter()
        plain = subprocess.run(
            [sys.executable, "-c", PLAIN_LOOP, args.space, args.data, json.dumps(points)],
            check=True, capture_output=True, text=True, env=env,
        )
        plain_wall = time.perf_counter() - started
        plain_loop = json.loads(plain.stdout.strip().splitlines()[-1])["loop_s"]

    n = len(points)
    print(f"{n} configurations from space '{args.space}' on '{args.data}', trained by both")
    print(f"{'':28}{'hpsearch optuna':>18}{'plain Keras':>14}{'ratio':>8}")
    print(f"{'s/trial, training loop':28}{service_loop / n:>18.3f}{plain_loop / n:>14.3f}"
          f"{service_loop / plain_loop:>8.2f}")
    print(f"{'s/trial, whole process':28}{service_wall / n:>18.3f}{plain_wall / n:>14.3f}"
          f"{service_wall / plain_wall:>8.2f}")


if __name__ == "__main__":
    main()
