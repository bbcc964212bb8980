"""ASHA's wall-time gain: trials per simulated hour with K worker processes, on the LCBench surrogate.

    .venv/bin/python scripts/bench_asha.py [--workers 1,4,8,16] [--pruners asha,hyperband]
        [--seconds 40] [--sleep-scale 0.02] [--task ID] [--result lcbench-asha-workers]

One LCBench development task is searched by ``hpsearch.run(..., train="lcbench:sleepy_fit",
engine="optuna", algorithm="tpe", pruner=P, workers=K, timeout=--seconds)``: K worker processes, each
epoch sleeping ``--sleep-scale`` times the surrogate's training seconds for it (0.02: a 2-second epoch
takes 40 ms), so wall time follows simulated training time. For each pruner and K it reports the trials
ended per simulated hour (wall seconds divided by the sleep scale), their ratio to one worker's, and the
normalized regret of the best accuracy found (``lcbench_report``: 0 the best known, 1 the median random
configuration). Results go to ``scripts/results/<--result>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]

import bench_results  # noqa: E402
import lcbench  # noqa: E402


def run_one(task: str, pruner: str, workers: int, seconds: float, folder: Path) -> dict:
    """One search; its trials, epochs and best accuracy, and the wall seconds its trials took."""
    import hpsearch

    name = f"asha-{pruner}-{workers}"
    began = time.perf_counter()
    study = hpsearch.run(lcbench.space(task), train="lcbench:sleepy_fit", engine="optuna", algorithm="tpe",
                         pruner=pruner, workers=workers, trials=100_000, timeout=seconds,
                         storage=f"sqlite:///{folder / 'asha.db'}", study=name, seed=0, progress=False)
    wall = time.perf_counter() - began
    trials = [trial for trial in study.trials if trial.ended_at is not None]
    # The steady window: from when every worker had started a trial (worker processes start one by one,
    # and each pays its imports) to the last trial's end; the rate counts the trials that ended in it.
    starts = sorted(trial.started_at for trial in trials)
    steady = starts[min(workers, len(starts)) - 1] if starts else None
    last = max((trial.ended_at for trial in trials), default=None)
    ended = [trial for trial in trials if steady is not None and trial.ended_at > steady]
    span = (last - steady).total_seconds() if ended else 0.0
    values = [trial.value for trial in trials if trial.value is not None]
    return {"pruner": pruner, "workers": workers, "trials": len(trials), "steady_trials": len(ended),
            "span_s": span, "wall_s": wall,
            "epochs": sum(trial.epochs_run for trial in trials), "best": max(values) if values else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,4,8,16")
    parser.add_argument("--pruners", default="asha,hyperband")
    parser.add_argument("--seconds", type=float, default=40.0, help="wall seconds each search starts trials")
    parser.add_argument("--sleep-scale", type=float, default=0.02)
    parser.add_argument("--task", default=None, help="an LCBench development task (default: the first)")
    parser.add_argument("--result", default="lcbench-asha-workers")
    args = parser.parse_args()
    import lcbench_report

    task = args.task or lcbench.dev_tasks()[0]
    # Worker processes import the training function by name and read the sleep scale from the environment.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPTS), str(SCRIPTS.parent),
                                                             os.environ.get("PYTHONPATH")]))
    os.environ["HPSEARCH_LCBENCH_SLEEP"] = str(args.sleep_scale)
    counts = [int(part) for part in args.workers.split(",")]
    # hpsearch refuses more than 8 workers on one machine unless told: this benchmark asks for more.
    os.environ["HPSEARCH_MAX_WORKERS"] = str(max(counts + [int(os.environ.get("HPSEARCH_MAX_WORKERS", 8))]))
    best_known, median = lcbench_report.reference_values(task)
    runs = []
    with tempfile.TemporaryDirectory(prefix="hpsearch-asha-") as name:
        for pruner in args.pruners.split(","):
            for workers in counts:
                result = run_one(task, pruner, workers, args.seconds, Path(name))
                runs.append(result)
                print(result, flush=True)
    best_known = max([best_known, *(run["best"] for run in runs if run["best"] is not None)])
    rows = []
    for run in runs:
        hours = run["span_s"] / args.sleep_scale / 3600
        per_hour = run["steady_trials"] / hours if hours else 0.0
        one = next(other for other in runs if other["pruner"] == run["pruner"] and other["workers"] == min(
            o["workers"] for o in runs if o["pruner"] == run["pruner"]))
        one_rate = one["steady_trials"] / (one["span_s"] / args.sleep_scale / 3600) if one["span_s"] else 0.0
        regret = None if run["best"] is None else max(0.0, (best_known - run["best"]) / (best_known - median))
        run.update(trials_per_sim_hour=per_hour, regret=regret)
        rows.append([run["pruner"], run["workers"], run["trials"], run["epochs"], round(per_hour, 0),
                     round(per_hour / one_rate, 2) if one_rate else None,
                     None if regret is None else round(regret, 3)])
    table = bench_results.table(
        f"LCBench task {task}, TPE, {args.seconds:g} wall seconds per search, epochs sleeping "
        f"{args.sleep_scale:g} x their simulated seconds",
        ["pruner", "workers", "trials ended", "epochs", "trials per simulated hour", "x one worker",
         "normalized regret of the best"], rows,
        notes="Trials per simulated hour count the trials that ended between the moment every worker had "
              "started one and the last trial's end, over that span divided by the sleep scale. Each "
              "search ran for the same wall time, so more workers also "
              "means more epochs spent: regret is compared at equal wall time, not at equal epochs.")
    bench_results.write_result(args.result, title="ASHA with K workers: trials per simulated hour",
                               tables=[table], data={"runs": runs, "task": task,
                                                     "sleep_scale": args.sleep_scale})


if __name__ == "__main__":
    main()
