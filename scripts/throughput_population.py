"""The population trainer's workloads of ``scripts/bench_throughput.py`` (issue 42's three goals).

``seed-grid`` (goal 1): the absenteeism grid (``spaces/presets/absenteeism-grid.yaml``, 768 candidates)
at its full size, 5 folds x 50 epochs, on a table of the absenteeism data's shape written here with a
fixed seed (``make_classification``: 740 rows, 20 features, a binary target; see ``write_seed_table``).
Contenders, each a fresh process, one after the other:

- ``hpsearch run --engine sklearn --cv 5 --jobs 2`` with the population trainer (the whole grid);
- the same with ``--trainer hpsearch`` (every fold trained alone, outside Keras' fit) on a 32-candidate
  sub-grid (one activation, initializer, constraint and dropout rate; both batch sizes, learning rates and
  regularizers and all four optimizers, so the grid's mix of costs), extrapolated to 768 candidates as its
  wall time x 768 / 32;
- ``GridSearchCV(n_jobs=2)`` over SciKeras on an 8-candidate sub-grid of that one (both batch sizes, all
  optimizers), extrapolated as wall time x 768 / 8.

Parity: the median |difference| of the mean fold score over the candidates both trained.

``population`` (goal 2): a random search of ``--population-trials`` (default 200) configurations of the
default space on digits, 10 epochs, through ``hpsearch run --engine optuna --algorithm random`` with the
population trainer; the plain Keras loop (``PLAIN_LOOP``) trains every ``k``-th of the same configurations
(``--plain-sample`` of them) and its trials per minute are that sample's. Quality: the median |difference|
of the validation accuracy on the sampled configurations, and both mean values on them.

``flops`` (goal 3, run with either): the machine's float32 rate (a 2048 x 2048 matmul with TensorFlow's
default threads, and a population-shaped batched matmul, members x 32 rows x 30 x 30), next to the
population trainer's achieved rate: the forward and backward arithmetic of its members,
6 x rows x sum(fan_in x fan_out) per epoch per member, over its wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_results import table  # noqa: E402

GRID_PRESET = ROOT / "spaces" / "presets" / "absenteeism-grid.yaml"
GRID_SIZE = 768
SEED_FOLDS = 5

#: How each engine's search runs with the population trainer.
POPULATION_SKLEARN = ["--trainer", "population"]
POPULATION_OPTUNA = ["--population", "auto"]

#: The direct-fit sample: the grid with one value of each of these parameters (32 candidates).
DIRECT_FIXED = {"activation": "relu", "kernel_initializer": "he_normal", "kernel_constraint": "none",
                "dropout": 0.1}
#: GridSearchCV's sample: a sub-grid of the direct sample (8 candidates).
GRIDSEARCH_FIXED = {**DIRECT_FIXED, "kernel_regularizer": "none", "learning_rate": 0.01}
#: ``--seed-quick``'s GridSearchCV sample: adam at both batch sizes (2 candidates).
QUICK_FIXED = {**GRIDSEARCH_FIXED, "optimizer": "adam"}

# The machine's float32 matmul rate with TensorFlow's default threads (all cores), large and
# population-shaped; each timed for about two seconds after a warm-up call.
MATMUL = r"""
import json, sys, time
import tensorflow as tf

def rate(a_shape, b_shape, flops):
    a, b = tf.random.normal(a_shape), tf.random.normal(b_shape)
    step = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    step(a, b).numpy()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 2.0:
        step(a, b).numpy()
        calls += 1
    return flops * calls / (time.perf_counter() - started) / 1e9

n, members = 2048, int(sys.argv[1])
print(json.dumps({"large_gflops": rate([n, n], [n, n], 2 * n ** 3),
                  "population_gflops": rate([members, 32, 30], [members, 30, 30], 2 * members * 32 * 30 * 30),
                  "members": members}))
"""


# Where a population's time goes (goal 3's "what stops it"): one population of the seed grid's shape
# (3 x 30 units, batch 32, a fold's 425 training and 48 validation rows, the grid's mix of optimizers,
# dropout, regularizers and constraints), its epochs 2-4 timed: training and validation per member-epoch.
PROFILE = r"""
import itertools, json, sys, time
import numpy as np
from hpsearch.spaces import TaskInfo
from hpsearch.training.population_model import Population, PopulationMember
members_n, table = int(sys.argv[1]), np.load(sys.argv[2])
x, y = table["X"][:592].astype("float32"), table["y"][:592].astype("float32")
grid = list(itertools.product([0.01, 0.001], ["relu", "elu"],
                              ["adam", "sgd", "sgd(clipvalue=1.0)", "sgd(clipnorm=1.0)"], [0.1, 0.2],
                              ["none", "l2(0.01)"], ["none", "max_norm(1.0)"]))
rng = np.random.default_rng(0)
members = []
for i in range(members_n):
    lr, act, opt, dr, reg, con = grid[i % len(grid)]
    rows = rng.permutation(592)[:473]
    members.append(PopulationMember(dict(n_hidden=3, n_neurons=30, learning_rate=lr, activation=act,
                                         optimizer=opt, dropout=dr, kernel_regularizer=reg,
                                         kernel_constraint=con, batch_size=32, epochs=5),
                                    0, train_rows=rows[:425], val_rows=rows[425:]))
population = Population(members, TaskInfo(kind="binary", n_features=20, n_classes=2), x, y, x, y,
                        step_metrics={"accuracy"})
train = validate = 0.0
for epoch in range(5):
    started = time.perf_counter()
    population.train_epoch(epoch)
    trained = time.perf_counter()
    population.validate()
    if epoch >= 2:  # the first epochs trace
        train += trained - started
        validate += time.perf_counter() - trained
print(json.dumps({"members": members_n, "steps": 14,
                  "train_ms_per_member_epoch": 1000 * train / 3 / members_n,
                  "validate_ms_per_member_epoch": 1000 * validate / 3 / members_n}))
"""


def write_seed_table(path: Path) -> Path:
    """The absenteeism data's shape with a fixed seed: 740 rows, 20 features (10 informative, 4 redundant),
    a binary target with 5% of labels flipped, as ``X`` and ``y`` in an ``.npz``."""
    import numpy as np
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=740, n_features=20, n_informative=10, n_redundant=4,
                               flip_y=0.05, weights=[0.6, 0.4], random_state=0)
    np.savez(path, X=x.astype("float32"), y=y)
    return path


def sub_grid(fixed: dict[str, Any], epochs: int, path: Path) -> Path:
    """The absenteeism grid with one value for each parameter of ``fixed``, and ``epochs`` epochs."""
    import yaml

    space = yaml.safe_load(GRID_PRESET.read_text())
    for name, value in fixed.items():
        space["params"][name]["choices"] = [value]
    space["params"]["epochs"]["choices"] = [epochs]
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def key(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


def median_gap(ours: dict[str, float | None], theirs: dict[str, float | None]) -> tuple[float | None, int]:
    """The median |difference| over the keys both have a value for, and how many they are."""
    shared = [k for k in ours if ours[k] is not None and theirs.get(k) is not None]
    if not shared:
        return None, 0
    return statistics.median(abs(ours[k] - theirs[k]) for k in shared), len(shared)


def mlp_flops(layer_sizes: list[int], rows: int, epochs: int) -> float:
    """Forward and backward arithmetic of one member: 6 x rows x sum(fan_in x fan_out) per epoch."""
    weights = sum(a * b for a, b in zip(layer_sizes, layer_sizes[1:], strict=False))
    return 6.0 * rows * weights * epochs


def matmul_rates(python: Any, env: dict, members: int) -> dict:
    return python(MATMUL, env, str(members))


def _cv_trained_rows(data: str, folds: int) -> list[int]:
    """Rows each fold's fit trains on: its training part less SciKeras' last 10% (``validation_split``)."""
    from hpsearch.data import load_dataset
    from sklearn.model_selection import StratifiedKFold

    dataset = load_dataset(data, seed=0)
    rows = len(dataset.y_train) + len(dataset.y_val)
    train_sizes = [len(train) for train, _ in StratifiedKFold(folds).split(range(rows), [0] * rows)]
    return [math.floor(size * 0.9) for size in train_sizes]


def workload_seed_grid(args: argparse.Namespace, env: dict, tmp: Path, hpsearch: Any, python: Any,
                       plain_gridsearch: str) -> dict:
    """Goal 1; returns the tables and raw figures for the result file."""
    data = str(write_seed_table(tmp / "absenteeism-shape.npz"))
    url = f"sqlite:///{tmp / 'seed-grid.db'}"
    epochs = args.seed_epochs
    full = sub_grid({}, epochs, tmp / "seed-grid.yaml")
    # The population trainer uses every core in one process; the others fit two folds at once.
    alone = ["--engine", "sklearn", "--algorithm", "grid", "--data", data, "--cv", str(SEED_FOLDS)]
    common = [*alone, "--jobs", "2"]
    limit = ["--trials", str(args.seed_candidates)] if args.seed_candidates < GRID_SIZE else []
    # --seed-quick: every contender one sub-grid smaller (the population trainer the 32-candidate one,
    # --trainer hpsearch the 8-candidate one, GridSearchCV 2 candidates), each extrapolated.
    pop_fixed, direct_fixed, plain_fixed = ((DIRECT_FIXED, GRIDSEARCH_FIXED, QUICK_FIXED) if args.seed_quick
                                            else ({}, DIRECT_FIXED, GRIDSEARCH_FIXED))
    pop_space = full if not pop_fixed else sub_grid(pop_fixed, epochs, tmp / "population.yaml")
    population = hpsearch(env, url, "seed-population", str(pop_space), *alone, *POPULATION_SKLEARN, *limit)
    direct = hpsearch(env, url, "seed-direct", str(sub_grid(direct_fixed, epochs, tmp / "direct.yaml")),
                      *common, "--trainer", "hpsearch")
    # GridSearchCV's sample: the direct run's candidates of its sub-grid, named as the engine names them.
    sample = [t["params"] for t in direct["trials"]
              if all(t["params"].get(name) == value for name, value in plain_fixed.items())]
    plain = python(plain_gridsearch, env, str(full), data, str(SEED_FOLDS), "2", points=sample)

    def scores(run: dict) -> dict[str, float | None]:
        return {key(t["params"]): t["metrics"].get("mean_test_score") for t in run["trials"]}

    pop_scores, direct_scores = scores(population), scores(direct)
    plain_scores = {key(point): value for point, value in zip(sample, plain["values"], strict=True)}
    n_pop = len(population["trials"])
    rows, per = [], {}
    for name, run, n in (("population trainer (--trainer population)", population, n_pop),
                         ("--trainer hpsearch, every fold alone", direct, len(direct["trials"])),
                         ("GridSearchCV(n_jobs=2) over SciKeras", plain, len(sample))):
        whole = run["wall_s"] * GRID_SIZE / n
        per[name] = whole
        rows.append([name, n, round(run["wall_s"], 1), round(whole, 1)])
    reference = per["GridSearchCV(n_jobs=2) over SciKeras"]
    for row in rows:
        row.append(round(reference / row[3], 2))
    gap_direct, shared_direct = median_gap(pop_scores, direct_scores)
    gap_plain, shared_plain = median_gap(pop_scores, plain_scores)
    gap_direct_plain, _ = median_gap(direct_scores, plain_scores)
    rows[0].append(_parity_text(gap_direct, shared_direct, "--trainer hpsearch")
                   + "; " + _parity_text(gap_plain, shared_plain, "GridSearchCV"))
    rows[1].append(_parity_text(gap_direct_plain, len(sample), "GridSearchCV"))
    rows[2].append("")
    fold_rows = _cv_trained_rows(data, SEED_FOLDS)
    flops = sum(mlp_flops([20, 30, 30, 30, 1], r, epochs) for r in fold_rows) * n_pop
    best_pop = max((v, k) for k, v in pop_scores.items() if v is not None)
    summary_rows = [
        ["population trainer, whole grid (s)", round(population["wall_s"] * GRID_SIZE / n_pop, 1)],
        ["goal: whole grid in (s)", 300],
        ["median |mean fold score difference| vs alone",
         None if gap_direct is None else round(gap_direct, 4)],
        ["goal: median |difference| at most", 0.01],
        ["best mean fold score (population)", round(best_pop[0], 4)],
    ]
    tables = [
        table(f"Goal 1: the absenteeism grid, {GRID_SIZE} candidates x {SEED_FOLDS} folds x {epochs} epochs, "
              "740-row table (make_classification, seed 0), 2 cores",
              ["contender", "candidates run", "wall s", "whole grid s (extrapolated)", "x GridSearchCV",
               "parity (mean fold score)"], rows,
              notes="A sample's whole-grid time is its wall time x 768 / its candidates (each sub-grid "
                    "has both batch sizes, half its candidates each, as the grid); the population trainer "
                    f"ran {n_pop} candidates" + (", a sub-grid of one activation, initializer, constraint "
                                                 "and dropout rate." if pop_fixed else ".")),
        table("Goal 1 against its targets", ["figure", "value"], summary_rows),
    ]
    return {"tables": tables, "flops": flops, "wall_s": population["wall_s"],
            "data": {"seed_grid": {"population_wall_s": population["wall_s"], "candidates": n_pop,
                                   "direct_wall_s": direct["wall_s"], "gridsearch_wall_s": plain["wall_s"],
                                   "median_gap_vs_direct": gap_direct, "median_gap_vs_gridsearch": gap_plain,
                                   "flops": flops}}}


def _parity_text(gap: float | None, shared: int, against: str) -> str:
    if gap is None:
        return f"no candidate in common with {against}"
    return f"median |diff| {gap:.4f} vs {against} ({shared} candidates)"


def workload_population(args: argparse.Namespace, env: dict, tmp: Path, hpsearch: Any, python: Any,
                        plain_loop: str) -> dict:
    """Goal 2; returns the tables and raw figures for the result file."""
    url = f"sqlite:///{tmp / 'population.db'}"
    run = hpsearch(env, url, "digits-population", "default", "--data", "digits", "--trials",
                   str(args.population_trials), "--engine", "optuna", "--algorithm", "random",
                   "--pruner", "none", *POPULATION_OPTUNA)
    trials = [t for t in run["trials"] if t["state"] == "COMPLETE"]
    n = len(run["trials"])
    step = max(1, len(trials) // args.plain_sample)
    sample = trials[::step][:args.plain_sample]
    plain = python(plain_loop, env, "default", "digits", points=[t["params"] for t in sample])
    ours = {key(t["params"]): t["value"] for t in sample}
    theirs = {key(t["params"]): v for t, v in zip(sample, plain["values"], strict=True)}
    gap, shared = median_gap(ours, theirs)
    pop_rate = 60.0 * n / run["wall_s"]
    plain_rate = 60.0 * len(sample) / plain["wall_s"]
    rows = [
        ["plain Keras loop (reference), a sample", len(sample), round(plain["wall_s"], 1),
         round(plain_rate, 1), 1.0, round(statistics.mean(theirs.values()), 4)],
        ["population trainer (--population auto)", n, round(run["wall_s"], 1), round(pop_rate, 1),
         round(pop_rate / plain_rate, 2), round(statistics.mean(ours.values()), 4)],
    ]
    flops = 0.0
    rows_train = _digits_train_rows()
    for t in run["trials"]:
        p = t["params"]
        layers = [64, *[int(p["n_neurons"])] * int(p["n_hidden"]), 10]
        flops += mlp_flops(layers, rows_train, 10)
    tables = [
        table(f"Goal 2: random search of {n} configurations of the default space on digits, 10 epochs, "
              "2 cores", ["contender", "trials", "wall s", "trials/min", "x plain loop",
                          "mean val_accuracy on the sample"], rows,
              notes=f"The plain loop trains every {step}-th configuration the population run trained "
                    f"({len(sample)}); its trials/min is that sample's. Validation accuracy on those "
                    f"configurations: median |difference| "
                    + ("-" if gap is None else f"{gap:.4f}") + f" over {shared}."),
    ]
    return {"tables": tables, "flops": flops, "wall_s": run["wall_s"],
            "data": {"population": {"wall_s": run["wall_s"], "trials": n, "plain_wall_s": plain["wall_s"],
                                    "plain_sample": len(sample), "median_gap": gap, "flops": flops,
                                    "ratio": pop_rate / plain_rate}}}


def _digits_train_rows() -> int:
    from hpsearch.data import load_dataset

    return len(load_dataset("digits", seed=0).y_train)


def profile_table(python: Any, env: dict, tmp: Path, members: int, rates: dict) -> tuple[dict, dict]:
    """Goal 3's profile: a seed-grid population's time per member-epoch against its arithmetic's."""
    table_path = write_seed_table(tmp / "profile-table.npz")
    found = python(PROFILE, env, str(members), str(table_path))
    arithmetic = 1000 * mlp_flops([20, 30, 30, 30, 1], 425, 1) / (rates["population_gflops"] * 1e9)
    rows = [["training (14 steps of 32 rows)", round(found["train_ms_per_member_epoch"], 3)],
            ["validation (loss and every metric, 48 rows)", round(found["validate_ms_per_member_epoch"], 3)],
            ["the training's arithmetic at the population-shaped matmul rate", round(arithmetic, 3)]]
    return table(f"Goal 3: where a population's time goes, ms per member-epoch ({members} members of the "
                 "seed grid's shape, epochs 3-5)", ["part", "ms per member-epoch"], rows,
                 notes="Arithmetic: 6 x 425 rows x 2430 weights per member-epoch over the batched matmul "
                       "rate above."), {**found, "arithmetic_ms_per_member_epoch": arithmetic}


def flops_table(rates: dict, achieved: list[tuple[str, float, float]]) -> dict:
    """Goal 3: the machine's matmul rates next to each population run's achieved rate."""
    rows = [["float32 matmul 2048 x 2048 (TensorFlow, all cores)", round(rates["large_gflops"], 1), ""],
            [f"batched matmul {rates['members']} x (32 x 30) @ (30 x 30), population-shaped",
             round(rates["population_gflops"], 1), ""]]
    for name, flops, wall in achieved:
        rate = flops / wall / 1e9
        rows.append([name, round(rate, 2), round(100 * rate / rates["large_gflops"], 1)])
    return table("Goal 3: floating-point rate, GFLOP/s", ["what", "GFLOP/s", "% of the large matmul"], rows,
                 notes="A population run's rate counts its members' forward and backward arithmetic, "
                       "6 x rows x sum(fan_in x fan_out) per epoch, over its whole wall time (start-up, "
                       "validation and records included).")


def summary(data: dict) -> str:
    """What a user should conclude, from the figures of this run (third person, no figure typed by hand)."""
    parts = []
    seed = data.get("seed_grid")
    if seed:
        whole = seed["population_wall_s"] * GRID_SIZE / seed["candidates"]
        gap = seed["median_gap_vs_direct"]
        met = whole <= 300 and gap is not None and gap <= 0.01
        parts.append(f"The population trainer {'meets' if met else 'does not meet'} goal 1 on this machine: "
                     f"the whole absenteeism grid in {whole:.0f} s (goal 300 s), mean fold scores within a "
                     f"median {gap if gap is not None else float('nan'):.4f} of every fold trained alone "
                     "(goal 0.01).")
    pop = data.get("population")
    if pop:
        parts.append(f"On the digits random search it ran {pop['ratio']:.1f}x the plain Keras loop's "
                     "trials per minute (goal 10x).")
    load = data.get("load_average_5min")
    if load:
        parts.append(f"The machine was shared: its 5-minute load average was {load['start']:.1f} at the "
                     "start "
                     f"and {load['end']:.1f} at the end, on {os.cpu_count()} cores.")
    return " ".join(parts)
