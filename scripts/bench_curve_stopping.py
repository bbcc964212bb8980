"""How well ``--pruner curve`` decides, on LCBench's learning curves (the offline surrogate).

For each development task and seed, 50 random configurations of the LCBench space are trained (their
52-epoch validation-accuracy curves read from the surrogate) one after the other, as a one-worker
search would, and each stopping rule judges every trial at its decision epochs against the trials
before it:

- ``curve``: hpsearch's learning-curve stopper (``hpsearch.engines.optuna.curve_stopping``: its own
  decision epochs, extrapolation, calibration on the completed curves and 5% threshold);
- ``median``: Optuna's median rule as the optuna engine configures it (a trial below the median of the
  earlier trials at the same epoch stops, after 5 trials);
- ``asha``: hpsearch's ASHA rule (factor 3, first rung 1 epoch) over the same order.

Reported per rule: the share of the 50 x 52 epochs trained, how often the search's final best is lower
than random search's without stopping (the best configuration was stopped), the mean loss of final
best accuracy (points), and the share of stopped trials that would have beaten the best completed
trial at the time they were stopped (a wrong stop).

Usage: ``python scripts/bench_curve_stopping.py [--seeds 5] [--trials 50] [--tasks N]`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_results  # noqa: E402

LCBENCH = ROOT.parent / "shared" / "benchmarks" / "lcbench"
EPOCHS = 52
#: x_cont's order after ``epoch``, with each parameter's range and whether it is sampled on a log scale.
SPACE = (("batch_size", 16, 512, True, True), ("learning_rate", 1e-4, 1e-1, True, False),
         ("momentum", 0.1, 0.99, False, False), ("weight_decay", 1e-5, 0.1, False, False),
         ("num_layers", 1, 5, False, True), ("max_units", 64, 1024, True, True),
         ("max_dropout", 0.0, 1.0, False, False))


def _surrogate(folder: Path) -> tuple[object, dict[str, int]]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    codes = json.loads((folder / "encoding.json").read_text())["OpenML_task_id"]
    return session, codes


def _curves(session: object, code: int, rng: np.random.Generator, count: int) -> np.ndarray:
    """Validation-accuracy curves (percent), ``count`` random configurations x 52 epochs."""
    columns = []
    for _, low, high, log, integer in SPACE:
        draw = (np.exp(rng.uniform(math.log(low), math.log(high), count)) if log
                else rng.uniform(low, high, count))
        columns.append(np.round(draw) if integer else draw)
    configs = np.stack(columns, axis=1)
    epochs = np.tile(np.arange(1, EPOCHS + 1, dtype=float), count)[:, None]
    x_cont = np.hstack([epochs, np.repeat(configs, EPOCHS, axis=0)]).astype(np.float32)
    x_cat = np.full((len(x_cont), 1), code, dtype=np.int32)
    out = session.run(None, {"x_cat": x_cat, "x_cont": x_cont})[0]
    return out[:, 1].reshape(count, EPOCHS).astype(float)


def _curve_rule() -> object:
    from hpsearch.engines.optuna.curve_stopping import (
        STOP_PROBABILITY,
        _Calibration,
        decision_epochs,
        probability_to_beat,
    )

    epochs = decision_epochs(EPOCHS)

    def run(curves: np.ndarray) -> list[int]:
        calibration, completed, stopped_at = _Calibration(), [], []
        for index, curve in enumerate(curves):
            stop = EPOCHS
            if completed:
                best = min(-float(done[-1]) for _, done in completed)
                trials = [SimpleNamespace(_trial_id=i, intermediate_values=dict(enumerate(done)))
                          for i, done in completed]
                for epoch in epochs:
                    rms = calibration.rms(trials, epoch, -1.0)
                    if probability_to_beat(list(-curve[:epoch]), EPOCHS, best, rms) < STOP_PROBABILITY:
                        stop = epoch
                        break
            stopped_at.append(stop)
            if stop == EPOCHS:
                completed.append((index, curve))
        return stopped_at

    return run


def _median_rule(curves: np.ndarray) -> list[int]:
    stopped_at = []
    for index, curve in enumerate(curves):
        stop = EPOCHS
        if index >= 5:
            for epoch in range(2, EPOCHS):  # n_warmup_steps=1: steps from 1, i.e. epochs from 2
                earlier = [curves[i][epoch - 1] for i in range(index) if stopped_at[i] >= epoch]
                if earlier and curve[epoch - 1] < float(np.median(earlier)):
                    stop = epoch
                    break
        stopped_at.append(stop)
    return stopped_at


def _asha_rule(curves: np.ndarray, factor: int = 3) -> list[int]:
    from hpsearch.engines.optuna.asha import promoted, rung_epochs

    stopped_at: list[int] = []
    for index, curve in enumerate(curves):
        stop = EPOCHS
        for rung in rung_epochs(1, factor, EPOCHS):
            others = [curves[i][rung - 1] for i in range(index) if stopped_at[i] >= rung]
            if not promoted(float(curve[rung - 1]), others, factor, minimize=False):
                stop = rung
                break
        stopped_at.append(stop)
    return stopped_at


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=None, help="the first N development tasks")
    parser.add_argument("--out-dir", type=Path, default=bench_results.RESULTS,
                        help="where the result file goes (default scripts/results)")
    args = parser.parse_args(argv)
    session, codes = _surrogate(LCBENCH)
    tasks = (LCBENCH / "tasks-dev.txt").read_text().split()[:args.tasks]
    rules = {"curve": _curve_rule(), "median": _median_rule, "asha": _asha_rule}
    totals = {name: {"epochs": 0.0, "missed": 0, "loss": [], "stops": 0, "wrong": 0} for name in rules}
    per_task = {name: [] for name in rules}
    runs = 0
    for task in tasks:
        task_epochs = {name: 0.0 for name in rules}
        for seed in range(args.seeds):
            curves = _curves(session, codes[task], np.random.default_rng(seed), args.trials)
            full_best = float(curves[:, -1].max())
            runs += 1
            for name, rule in rules.items():
                stops = rule(curves)
                share = sum(stops) / (EPOCHS * len(curves))
                totals[name]["epochs"] += share
                task_epochs[name] += share / args.seeds
                finished = [curve[-1] for curve, stop in zip(curves, stops, strict=True) if stop == EPOCHS]
                best = max(finished) if finished else 0.0
                totals[name]["missed"] += best < full_best
                totals[name]["loss"].append(full_best - best)
                running = -math.inf
                for curve, stop in zip(curves, stops, strict=True):
                    if stop < EPOCHS:
                        totals[name]["stops"] += 1
                        totals[name]["wrong"] += curve[-1] > running
                    else:
                        running = max(running, curve[-1])
        for name in rules:
            per_task[name].append(task_epochs[name])
    rows = []
    for name, total in totals.items():
        rows.append([name, round(100 * total["epochs"] / runs, 1), round(100 * total["missed"] / runs, 1),
                     round(float(np.mean(total["loss"])), 2),
                     round(100 * total["wrong"] / total["stops"], 1) if total["stops"] else 0.0])
    table = bench_results.table(
        f"Stopping rules on LCBench, {len(tasks)} development tasks x {args.seeds} seeds x {args.trials} "
        "random configurations, one after the other",
        ["rule", "epochs trained (% of all)", "best config stopped (% of runs)",
         "final best lost (accuracy points, mean)", "wrong stops (% of stops)"],
        rows,
        notes="A wrong stop: the stopped trial's 52nd epoch would have beaten the best completed trial at "
              "the time. The best configuration stopped: the search's best is below the best of the same "
              "configurations trained in full.")
    path = bench_results.write_result(
        "curve-stopping", title="How the stopping rules decide on LCBench curves", tables=[table],
        summary="With the same configurations tried, the curve stopper trains more epochs than the median "
                "rule and ASHA and in exchange almost never stops a trial that would have won; the epochs "
                "the others save buy more configurations, which the LCBench benchmark weighs.",
        out_dir=args.out_dir,
        data={"tasks": tasks, "seeds": args.seeds, "trials": args.trials,
              "epochs_share_per_task": per_task})
    print(json.dumps(rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
