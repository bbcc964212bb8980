"""Search efficiency: epochs and seconds each engine and algorithm needs to reach random search's best.

    .venv/bin/python scripts/bench_efficiency.py --benchmark lcbench [...]   (see scripts/bench_lcbench.py)
    .venv/bin/python scripts/bench_efficiency.py [--benchmark toy] [--seeds 5] [--trials 12] [--epochs 9]
                                                 [--equal-budget] [--datasets wine,diabetes]
                                                 [--only LABEL,...] [--space small|default]
                                                 [--out bench-efficiency] [--result efficiency-toy]

``--benchmark lcbench`` (the benchmark the defaults are chosen by) searches the LCBench surrogate's real
learning curves on 20 OpenML tasks: ``scripts/bench_lcbench.py`` says how. The toy benchmark below trains
Keras models on bundled datasets with tiny validation sets; what it still teaches is in
``docs/benchmarks/efficiency.md``.

Every algorithm of every engine searches the same small space (below) on bundled datasets, one study per
(dataset, algorithm, seed), one worker, each study in a fresh Python process running its trials itself
(``--in-process``, so no worker start-up is counted). A fresh process per study matters: one process
running study after study grows its heap, and ``keras.backend.clear_session()`` (a full garbage
collection, once per fit) then costs seconds per fit, charging the studies that run last.
Studies already in ``OUT/efficiency.db`` are reused, so an interrupted benchmark continues and
``--only`` adds algorithms to an earlier run.

For each study, trials are taken in the order they ended, with the epochs trained so far (a scikit-learn
candidate trains once per fold: its epochs count ``--cv`` times, and the benchmark uses ``--cv 2``; a
Hyperband round counts the epochs of that round only) and the training seconds of its trials so far
(summed durations: a study the benchmark resumed is not charged for the pause).

A pruned trial, or a halving candidate stopped at a lower rung, counts with the value it reached then.

- target: the best value that the *same engine's* random search reaches with its whole budget, on the same
  dataset and seed. Values of different engines are not comparable with one another (scikit-learn's value
  is a cross-validated mean over folds of the training split, the others score one validation split), so
  each engine is measured against its own random search.
- time to target: epochs and seconds until an algorithm's best-so-far first reaches that target; the
  median over seeds where it did, and how many seeds did (``reached``).
- best at equal epochs: every algorithm's best value within the smallest total epoch count any algorithm
  of that engine spent on that dataset and seed; the median over seeds.
- ratio: the median time to target in epochs over random search's own (random search reaches its own best
  at the epoch its best trial ended).
- ``--equal-budget``: an algorithm with a pruner (Optuna's median and Hyperband pruners) spends fewer
  epochs on ``--trials`` trials than random search does, and so gets a smaller budget. With this option it
  runs trials until it has spent random search's epochs (``--trials`` x ``--epochs``); only the trials that
  ended within that budget count. Use a new ``--out`` for each ``--epochs``: studies are named by dataset,
  algorithm and seed only.

``--space default`` searches the bundled default space instead (``spaces/presets/default.yaml``: 1-3 layers of
16-128 neurons, four activations, three initializers, dropout, four optimizers, learning rates over three
decades, three batch sizes), the kind of space a user writes, where many configurations are poor. Its
grid is too large to enumerate, so the grid searches (``sklearn grid``, ``sklearn halving-grid``) are
left out.

Writes ``OUT/efficiency.md``, ``OUT/efficiency.json`` and ``OUT/efficiency.png`` (best so far against
epochs, one line per algorithm, the median over seeds), and the result file
``scripts/results/<--result>.json`` with its PNG (``scripts/bench_results.py``) that the docs show.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Small enough to run 5 seeds of every algorithm on two cores; every range has a finite grid so the grid
#: searches can run it (3 x 2 x 2 x 3 = 36 candidates).
SPACE = """\
objective: {objective}
params:
  n_neurons: {{type: int, low: 8, high: 64, log: true, grid: [8, 24, 64]}}
  activation: {{type: categorical, choices: [relu, tanh]}}
  optimizer: {{type: categorical, choices: [adam, "sgd(momentum=0.9, nesterov=true)"]}}
  learning_rate: {{type: float, low: 1.0e-3, high: 1.0e-1, log: true, grid: [1.0e-3, 1.0e-2, 1.0e-1]}}
fixed: {{n_hidden: 1, epochs: {epochs}, batch_size: 32}}
"""

DEFAULT_SPACE = ROOT / "spaces" / "presets" / "default.yaml"
#: algorithms that enumerate the space's grid: they run the small space only
GRID_ALGORITHMS = ("sklearn grid", "sklearn halving-grid")


def space_text(space: str, objective: str, epochs: int) -> str:
    """The space file a study of this benchmark searches."""
    if space == "small":
        return SPACE.format(objective=objective, epochs=epochs)
    import yaml

    document = yaml.safe_load(DEFAULT_SPACE.read_text())
    document["objective"] = objective
    document["fixed"] = {**document.get("fixed", {}), "epochs": epochs}
    return yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class Algorithm:
    label: str
    engine: str
    args: tuple[str, ...]
    #: the engine's random search, the target of every algorithm of this engine
    reference: str
    #: a pruner stops its weak trials early, so a trial budget leaves it epochs unspent; with
    #: ``--equal-budget`` it runs trials until it has spent random search's epochs
    prunes: bool = False


ALGORITHMS = (
    Algorithm("optuna random", "optuna", ("--algorithm", "random", "--pruner", "none"), "optuna random"),
    Algorithm("optuna tpe+median", "optuna", ("--algorithm", "tpe", "--pruner", "median"), "optuna random",
              prunes=True),
    Algorithm("optuna tpe+hyperband", "optuna", ("--algorithm", "tpe", "--pruner", "hyperband"),
              "optuna random", prunes=True),
    Algorithm("optuna cmaes", "optuna", ("--algorithm", "cmaes", "--pruner", "none"), "optuna random"),
    Algorithm("keras-tuner random", "keras-tuner", ("--algorithm", "random"), "keras-tuner random"),
    Algorithm("keras-tuner bayesian", "keras-tuner", ("--algorithm", "bayesian"), "keras-tuner random"),
    Algorithm("keras-tuner hyperband", "keras-tuner", ("--algorithm", "hyperband", "--factor", "3"),
              "keras-tuner random"),
    Algorithm("sklearn random", "sklearn", ("--algorithm", "random", "--cv", "2"), "sklearn random"),
    Algorithm("sklearn grid", "sklearn", ("--algorithm", "grid", "--cv", "2"), "sklearn random"),
    Algorithm("sklearn halving-grid", "sklearn", ("--algorithm", "halving-grid", "--cv", "2"),
              "sklearn random"),
    Algorithm("sklearn halving-random", "sklearn", ("--algorithm", "halving-random", "--cv", "2"),
              "sklearn random"),
)
#: dataset -> (objective, direction). wine's validation split is 36 rows: most algorithms reach accuracy
#: 1.0 within a few trials, which would tell them apart by luck, so wine is scored by its validation loss.
DATASETS = {"digits": ("val_accuracy", "maximize"), "diabetes": ("val_mae", "minimize"),
            "wine": ("val_loss", "minimize"), "breast_cancer": ("val_loss", "minimize")}


@dataclass(frozen=True)
class Point:
    """One ended trial of a study, in the order trials ended."""

    epochs: int  # epochs trained by the study up to and including this trial
    seconds: float  # training seconds of the study's trials up to and including this one
    value: float | None


def study_name(dataset: str, algorithm: Algorithm, seed: int) -> str:
    return f"{dataset}-{algorithm.label.replace(' ', '-').replace('+', '-')}-s{seed}"


def hpsearch(args: Sequence[str]) -> int:
    """``hpsearch ARGS`` in a fresh Python process importing this checkout's code; its exit code."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "hpsearch.cli", *args], env=env, check=False).returncode


def run_study(out: Path, dataset: str, algorithm: Algorithm, seed: int, trials: int, epochs: int,
              resume: bool, space_name: str) -> None:
    storage_url = f"sqlite:///{out / 'efficiency.db'}"
    if resume:
        _resume(storage_url, dataset, algorithm, seed, ())
        return
    objective, _ = DATASETS[dataset]
    space = out / f"space-{dataset}.yaml"
    space.write_text(space_text(space_name, objective, epochs))
    budget = ("--trials", str(trials))
    if algorithm.args[1] == "hyperband" and algorithm.engine == "keras-tuner":
        budget = ()  # Hyperband's plan (max epochs, factor) sets the number of trials
    if "halving" in algorithm.args[1]:
        budget = ()  # the halving plan sets the number of fits
    code = hpsearch(["run", str(space), "--engine", algorithm.engine, *algorithm.args, "--data", dataset,
                     "--seed", str(seed), "--study", study_name(dataset, algorithm, seed), "--storage",
                     storage_url, "--in-process", "--quiet", *budget])
    if code != 0:
        raise SystemExit(f"{algorithm.label} on {dataset} (seed {seed}) exited {code}")


def _resume(storage_url: str, dataset: str, algorithm: Algorithm, seed: int, extra: Sequence[str]) -> None:
    code = hpsearch(["resume", study_name(dataset, algorithm, seed), "--storage", storage_url,
                     "--in-process", "--quiet", *extra])
    if code != 0:
        raise SystemExit(f"resuming {algorithm.label} on {dataset} (seed {seed}) exited {code}")


def spend_epoch_budget(out: Path, storage, dataset: str, algorithm: Algorithm, seed: int,
                       budget: int) -> None:
    """Continue a pruning study with more trials until it has trained ``budget`` epochs.

    The number of trials that spend the budget is not known ahead (it depends on how many the pruner
    stops, and when), so the study resumes with as many more trials as its epochs per trial so far
    predict, until the budget is spent. One worker runs the trials in order, so the trials below the
    budget are those a study stopped exactly at the budget would have run; ``points`` leaves out the
    trial that crosses it."""
    storage_url = f"sqlite:///{out / 'efficiency.db'}"
    for _ in range(20):  # each round predicts the rest from the epochs per trial so far: a few suffice
        series = points(storage, study_name(dataset, algorithm, seed))
        spent = series[-1].epochs if series else 0
        if spent >= budget:
            return
        per_trial = max(1.0, spent / max(1, len(series)))
        more = max(1, math.ceil((budget - spent) / per_trial))
        total = len(storage.list_trials(storage.get_study(study_name(dataset, algorithm, seed)).id))
        _resume(storage_url, dataset, algorithm, seed, ("--trials", str(total + more)))
    raise SystemExit(f"{algorithm.label} on {dataset} (seed {seed}) did not spend {budget} epochs "
                     "in 20 rounds")


def points(storage, name: str, budget: int | None = None) -> list[Point]:
    """The study's ended trials as points, or [] when the study was not run; with a ``budget``, only the
    trials that ended within that many epochs."""
    from hpsearch.storage import StudyNotFoundError, TrialState

    try:
        study = storage.get_study(name)
    except StudyNotFoundError:
        return []
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)
    trials = [trial for trial in storage.list_trials(study.id) if trial.state in ended and trial.ended_at]
    if not trials:
        return []
    trials.sort(key=lambda trial: trial.ended_at)
    spent, seconds, result = 0, 0.0, []
    for trial in trials:
        folds = sum(1 for key in trial.metrics if key.startswith("split") and key.endswith("_test_score"))
        spent += trial.epochs_run * max(1, folds)
        # Training time summed over trials, so a study the benchmark resumed is not charged for the pause.
        # An interrupted trial (the benchmark was stopped) "ended" when the resume found it, so its duration
        # holds the pause: it is charged its epochs but no seconds (at most one partial trial's worth).
        seconds += 0.0 if trial.interrupted else trial.duration_s or 0.0
        # A pruned trial (and a halving candidate stopped at a lower rung) counts with the score it reached:
        # that model was trained, as a short Hyperband round's model, which KerasTuner records as complete.
        value = trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        if budget is not None and spent > budget:
            break
        result.append(Point(spent, seconds, value))
    return result


def best_so_far(series: Sequence[Point], direction: str) -> list[float | None]:
    best: float | None = None
    out = []
    for point in series:
        if point.value is not None and math.isfinite(point.value) and (
                best is None or (point.value > best if direction == "maximize" else point.value < best)):
            best = point.value
        out.append(best)
    return out


def reaches(value: float | None, target: float, direction: str) -> bool:
    if value is None:
        return False
    # Scores are means of a few dozen 0/1 outcomes or MAEs: equal up to float rounding counts as reached.
    slack = 1e-9 * max(1.0, abs(target))
    return value >= target - slack if direction == "maximize" else value <= target + slack


def summarize(storage, datasets: Sequence[str], algorithms: Sequence[Algorithm], seeds: int,
              budget: Callable[[Algorithm], int | None]) -> dict:
    runs = {(dataset, algorithm.label, seed): points(storage, study_name(dataset, algorithm, seed),
                                                     budget(algorithm))
            for dataset in datasets for algorithm in algorithms for seed in range(seeds)}
    rows = {}
    for dataset in datasets:
        _, direction = DATASETS[dataset]
        for algorithm in algorithms:
            reached_epochs, reached_seconds, at_budget, totals = [], [], [], []
            for seed in range(seeds):
                series = runs[(dataset, algorithm.label, seed)]
                ref_series = runs.get((dataset, algorithm.reference, seed))
                if not series or not ref_series:
                    continue
                target = best_so_far(ref_series, direction)[-1]
                curve = best_so_far(series, direction)
                hit = next((point for point, best in zip(series, curve, strict=True)
                            if target is not None and reaches(best, target, direction)), None)
                if hit is not None:
                    reached_epochs.append(hit.epochs)
                    reached_seconds.append(hit.seconds)
                # The equal epoch budget: the least any algorithm of this engine spent on this seed.
                budget = min(runs[(dataset, other.label, seed)][-1].epochs for other in algorithms
                             if other.engine == algorithm.engine and runs[(dataset, other.label, seed)])
                within = [best for point, best in zip(series, curve, strict=True) if point.epochs <= budget]
                at_budget.append(within[-1] if within and within[-1] is not None else float("nan"))
                totals.append(series[-1].epochs)
            rows[(dataset, algorithm.label)] = {
                "dataset": dataset, "algorithm": algorithm.label, "engine": algorithm.engine,
                "seeds": len(totals), "reached": len(reached_epochs),
                "epochs_to_target": _spread(reached_epochs), "seconds_to_target": _spread(reached_seconds),
                "best_at_equal_epochs": _spread([v for v in at_budget if math.isfinite(v)]),
                "total_epochs": _spread(totals),
            }
        for algorithm in algorithms:
            row = rows[(dataset, algorithm.label)]
            reference = rows.get((dataset, algorithm.reference))
            mine, theirs = row["epochs_to_target"]["median"], (reference or {}).get("epochs_to_target", {})
            row["epochs_ratio"] = (mine / theirs["median"] if mine is not None and theirs.get("median")
                                   else None)
    return {"rows": list(rows.values())}


def _spread(values: Sequence[float]) -> dict:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _fmt(spread: dict, digits: int = 0) -> str:
    if spread["median"] is None:
        return "–"
    return f"{spread['median']:.{digits}f} ({spread['min']:.{digits}f}–{spread['max']:.{digits}f})"


def table(summary: dict, seeds: int, command: str) -> str:
    lines = [f"Median (min–max) over {seeds} seeds; `{command}`.", "",
             "| dataset | algorithm | reached | epochs to target | × random | seconds to target "
             "| best at equal epochs | epochs spent |",
             "|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        ratio = "–" if row["epochs_ratio"] is None else f"{row['epochs_ratio']:.2f}"
        lines.append(
            f"| {row['dataset']} | {row['algorithm']} | {row['reached']}/{row['seeds']} | "
            f"{_fmt(row['epochs_to_target'])} | {ratio} | {_fmt(row['seconds_to_target'], 1)} | "
            f"{_fmt(row['best_at_equal_epochs'], 3)} | {_fmt(row['total_epochs'])} |")
    return "\n".join(lines) + "\n"


def plot(storage, out: Path, datasets: Sequence[str], algorithms: Sequence[Algorithm], seeds: int,
         budget: Callable[[Algorithm], int | None]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 5), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        objective, direction = DATASETS[dataset]
        for algorithm in algorithms:
            curves = []
            for seed in range(seeds):
                series = points(storage, study_name(dataset, algorithm, seed), budget(algorithm))
                if series:
                    curves.append((series, best_so_far(series, direction)))
            if not curves:
                continue
            grid = sorted({point.epochs for series, _ in curves for point in series})
            medians = []
            for epoch in grid:
                values = [next((best for point, best in reversed(list(zip(series, curve, strict=True)))
                                if point.epochs <= epoch), None) for series, curve in curves]
                values = [value for value in values if value is not None]
                medians.append(statistics.median(values) if len(values) * 2 > len(curves) else math.nan)
            style = {"optuna": "-", "keras-tuner": "--", "sklearn": ":"}[algorithm.engine]
            axis.plot(grid, medians, style, label=algorithm.label, drawstyle="steps-post")
        axis.set_title(f"{dataset}: best {objective} so far (median of {seeds} seeds)")
        axis.set_xlabel("epochs trained (a scikit-learn candidate counts each fold)")
        axis.set_ylabel(objective)
        axis.set_xscale("log")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "efficiency.png", dpi=110)


def write_result(summary: dict, args: argparse.Namespace, command: str) -> None:
    """The run's table as ``scripts/results/<--result>.json`` (the docs render it), its PNG beside it."""
    import shutil

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_results

    def spread(values: dict, digits: int) -> float | None:
        return None if values["median"] is None else round(values["median"], digits)

    rows = [[row["dataset"], row["algorithm"], f"{row['reached']}/{row['seeds']}",
             spread(row["epochs_to_target"], 0),
             None if row["epochs_ratio"] is None else round(row["epochs_ratio"], 2),
             spread(row["seconds_to_target"], 1), spread(row["best_at_equal_epochs"], 3),
             spread(row["total_epochs"], 0)] for row in summary["rows"]]
    columns = ["dataset", "algorithm", "reached", "epochs to target", "x random", "seconds to target",
               "best at equal epochs", "epochs spent"]
    figure = f"{args.result}.png"
    bench_results.RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.out / "efficiency.png", bench_results.RESULTS / figure)
    bench_results.write_result(
        args.result, title="Search efficiency on bundled toy datasets",
        tables=[bench_results.table(
            f"Median over {args.seeds} seeds, {args.trials} trials of {args.epochs} epochs", columns, rows,
            notes="Target: the same engine's random search's best on that dataset and seed; time to target "
                  "is where an algorithm's best so far first reaches it (the median over the seeds that "
                  "did). 'x random' divides by random search's own epochs to its best.")],
        summary="On tiny validation sets the order of the algorithms changes from dataset to dataset; "
                "the LCBench benchmark is the one the defaults are chosen by.",
        figures=[figure], data=summary, command="python " + command)


def main() -> None:
    if "--benchmark" in sys.argv[1:]:
        position = sys.argv.index("--benchmark")
        benchmark = sys.argv[position + 1] if position + 1 < len(sys.argv) else ""
        if benchmark not in ("toy", "lcbench"):
            raise SystemExit(f"--benchmark must be toy or lcbench, but got {benchmark!r}")
        if benchmark == "lcbench":
            sys.path.insert(0, str(ROOT / "scripts"))
            import bench_lcbench

            bench_lcbench.main(sys.argv[1:])
            return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=("toy", "lcbench"), default="toy")
    parser.add_argument("--result", default="efficiency-toy",
                        help="the result file's name in scripts/results (letters, digits, dashes)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=12,
                        help="budget of the algorithms whose plan does not size it")
    parser.add_argument("--epochs", type=int, default=9, help="epochs of a full trial (Hyperband's max)")
    parser.add_argument("--datasets", default="wine,diabetes")
    parser.add_argument("--only", default=None, help="comma-separated algorithm labels (default: all)")
    parser.add_argument("--out", type=Path, default=Path("bench-efficiency"))
    parser.add_argument("--space", choices=("small", "default"), default="small",
                        help="the 36-point space, or the bundled default space (no grid searches)")
    parser.add_argument("--equal-budget", action="store_true",
                        help="algorithms with a pruner run trials until they have spent random search's "
                             "epochs (trials x epochs) instead of stopping at --trials")
    parser.add_argument("--report-only", action="store_true", help="summarize the studies already run")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    datasets = args.datasets.split(",")
    wanted = set(args.only.split(",")) if args.only else None
    algorithms = [a for a in ALGORITHMS if wanted is None or a.label in wanted]
    if args.space != "small":
        skipped = [a.label for a in algorithms if a.label in GRID_ALGORITHMS]
        if skipped:
            print(f"left out with --space {args.space} (its grid is too large to enumerate): "
                  + ", ".join(skipped))
        algorithms = [a for a in algorithms if a.label not in GRID_ALGORITHMS]
    args.out.mkdir(parents=True, exist_ok=True)

    from hpsearch.storage import StudyNotFoundError, open_storage

    for dataset in datasets:
        space = args.out / f"space-{dataset}.yaml"
        if space.exists() and space.read_text() != space_text(args.space, DATASETS[dataset][0], args.epochs):
            raise SystemExit(f"{args.out} holds studies of another space or --epochs ({space}): "
                             "choose another --out")
    storage = open_storage(f"sqlite:///{args.out / 'efficiency.db'}")
    # Seed by seed: a benchmark stopped early has every algorithm on its first seeds.
    todo = [(dataset, algorithm, seed) for dataset in datasets for seed in range(args.seeds)
            for algorithm in algorithms]
    finished_file = args.out / "finished.json"
    finished = set(json.loads(finished_file.read_text())) if finished_file.exists() else set()
    epoch_budget = args.trials * args.epochs

    def budget(algorithm: Algorithm) -> int | None:
        return epoch_budget if args.equal_budget and algorithm.prunes else None

    started = time.perf_counter()
    for index, (dataset, algorithm, seed) in enumerate(todo, 1):
        name = study_name(dataset, algorithm, seed)
        if args.report_only:
            continue
        if name in finished:
            if budget(algorithm) is not None:  # run earlier with a trial budget: continue to the epochs
                spend_epoch_budget(args.out, storage, dataset, algorithm, seed, epoch_budget)
            continue  # run earlier: reused
        try:
            storage.get_study(name)
            resume = True  # an interrupted benchmark: the study continues where it stopped
        except StudyNotFoundError:
            resume = False
        began = time.perf_counter()
        run_study(args.out, dataset, algorithm, seed, args.trials, args.epochs, resume=resume,
                  space_name=args.space)
        if budget(algorithm) is not None:
            spend_epoch_budget(args.out, storage, dataset, algorithm, seed, epoch_budget)
        finished.add(name)
        # Two benchmark processes may share OUT (one per dataset, on two cores): keep what the other added.
        if finished_file.exists():
            finished |= set(json.loads(finished_file.read_text()))
        finished_file.write_text(json.dumps(sorted(finished)))
        print(f"[{index}/{len(todo)}] {name}: {time.perf_counter() - began:.1f} s "
              f"(total {time.perf_counter() - started:.0f} s)", flush=True)

    # Reference algorithms are summarized even when --only left them out: ratios need them.
    shown = [a for a in ALGORITHMS if a in algorithms or any(a.label == b.reference for b in algorithms)]
    command = ("scripts/bench_efficiency.py " + " ".join(sys.argv[1:])).strip()
    summary = summarize(storage, datasets, shown, args.seeds, budget)
    (args.out / "efficiency.json").write_text(json.dumps(summary, indent=2))
    text = table(summary, args.seeds, command)
    (args.out / "efficiency.md").write_text(text)
    plot(storage, args.out, datasets, shown, args.seeds, budget)
    storage.close()
    write_result(summary, args, command)
    print(text)
    print(f"wrote efficiency.md, efficiency.png and efficiency.json in {args.out}")


if __name__ == "__main__":
    main()
