"""The LCBench benchmark's report: tables and a plot from the traces ``bench_lcbench`` ran.

- target: random search's best with the whole budget (``lcbench_runs.REFERENCE``), on the same task and
  seed; *epochs to target* is where a contender's best so far first reaches it (the ratio divides by
  random search's own epochs to its best); *simulated seconds* are the surrogate's training seconds.
- normalized regret at a share of the budget: ``(best - found) / (best - median)``, where ``found`` is
  the contender's best so far within that many epochs, ``best`` the highest validation accuracy known on
  the task (any run's, or the best of 20,000 random configurations at 52 epochs) and ``median`` the
  median of those random configurations: 0 is the best known, 1 a typical random configuration (a
  contender with no ended trial yet counts 1, as a random guess).
- mean rank: each task ranks the contenders by their regret (median over seeds; ties share the mean
  rank); the mean over tasks. Each engine's default is its contender with the best mean rank at 25% of
  the budget (:func:`default_choice`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import bench_results
import lcbench
import lcbench_runs
import numpy as np

SHARES = (0.10, 0.25, 0.50, 1.00)
#: The share whose mean rank chooses the defaults: hpsearch's default budget (10 trials) is a fifth of the
#: benchmark's 50 full trials, and 25% is the measured share nearest it.
DECIDING_SHARE = 0.25
SAMPLE = 20_000


def reference_values(task: str, seed: int = 12345) -> tuple[float, float]:
    """(best, median) validation accuracy at 52 epochs of ``SAMPLE`` random configurations of the task."""
    rng = np.random.default_rng(seed)
    space = lcbench.space(task)["params"]
    columns = []
    for name in lcbench.INPUTS:
        spec = space[name]
        low, high = float(spec["low"]), float(spec["high"])
        if spec["log"]:
            column = np.exp(rng.uniform(math.log(low), math.log(high), SAMPLE))
        else:
            column = rng.uniform(low, high, SAMPLE)
        if spec["type"] == "int":
            column = np.clip(np.round(column), low, high)
        columns.append(column)
    session = lcbench.surrogate()
    x_cont = np.column_stack([np.full(SAMPLE, lcbench.EPOCHS), *columns]).astype(np.float32)
    x_cat = np.full((SAMPLE, 1), session.codes[task], dtype=np.int32)
    out = session.session.run(None, {"x_cat": x_cat, "x_cont": x_cont})[0]
    accuracy = out[:, lcbench.OUTPUTS.index("val_accuracy")] / 100.0
    return float(accuracy.max()), float(np.median(accuracy))


def best_within(points: Sequence[Sequence[float]], epochs: float) -> float | None:
    """The best value among trials that ended within ``epochs``."""
    values = [point[2] for point in points if point[0] <= epochs]
    return max(values) if values else None


def first_reaching(points: Sequence[Sequence[float]], target: float) -> tuple[int, float] | None:
    """(epochs, simulated seconds) where the best so far first reaches ``target``."""
    for epochs, seconds, value in points:
        if value >= target - 1e-9:
            return int(epochs), float(seconds)
    return None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Rank 1 for the lowest value; ties share their mean rank."""
    ordered = sorted(values, key=lambda label: values[label])
    ranks: dict[str, float] = {}
    position = 0
    while position < len(ordered):
        end = position
        while end + 1 < len(ordered) and values[ordered[end + 1]] == values[ordered[position]]:
            end += 1
        for label in ordered[position:end + 1]:
            ranks[label] = (position + end) / 2 + 1
        position = end + 1
    return ranks


def summarize(traces: Mapping[tuple[str, int, str], Mapping[str, Any]], tasks: Sequence[str], seeds: int,
              trials: int, epochs: int) -> dict[str, Any]:
    """Per-task and aggregated figures of the traces (see the module docstring)."""
    budget = trials * epochs
    labels = [c.label for c in lcbench_runs.CONTENDERS
              if any(key[2] == c.label for key in traces)]
    per_task: dict[str, dict[str, dict[str, Any]]] = {}
    scales: dict[str, tuple[float, float]] = {}
    for task in tasks:
        best, median = reference_values(task)
        observed = [p[2] for key, record in traces.items() if key[0] == task for p in record["points"]]
        best = max([best, *observed])
        scales[task] = (best, median)
        per_task[task] = {}
        for label in labels:
            runs = [(seed, traces[(task, seed, label)]) for seed in range(seeds)
                    if (task, seed, label) in traces]
            if not runs:
                continue
            row: dict[str, Any] = {"runs": len(runs)}
            hits, regrets = [], {share: [] for share in SHARES}
            for seed, record in runs:
                points = record["points"]
                reference = traces.get((task, seed, lcbench_runs.REFERENCE))
                target = best_within(reference["points"], budget) if reference else None
                hit = first_reaching(points, target) if target is not None else None
                hits.append(hit)
                for share in SHARES:
                    found = best_within(points, share * budget)
                    regret = 1.0 if found is None else max(0.0, (best - found) / max(1e-12, best - median))
                    regrets[share].append(regret)
            reached = [hit for hit in hits if hit is not None]
            row["reached"] = len(reached)
            # A run that never reached the target counts as past the budget in the median.
            row["epochs_to_target"] = _median([hit[0] if hit else math.inf for hit in hits])
            row["seconds_to_target"] = _median([hit[1] if hit else math.inf for hit in hits])
            row["regret"] = {share: _median(regrets[share]) for share in SHARES}
            row["epochs_spent"] = _median([record["points"][-1][0] if record["points"] else 0
                                           for _, record in runs])
            row["wall_s"] = _median([record["wall_s"] for _, record in runs])
            per_task[task][label] = row
        reference_row = per_task[task].get(lcbench_runs.REFERENCE)
        for row in per_task[task].values():
            theirs = reference_row["epochs_to_target"] if reference_row else None
            row["ratio"] = (row["epochs_to_target"] / theirs if theirs and math.isfinite(theirs) else None)
    ranks = {share: {label: [] for label in labels} for share in SHARES}
    for task in tasks:
        present = per_task[task]
        for share in SHARES:
            regrets = {label: row["regret"][share] for label, row in present.items()}
            for label, rank in _ranks(regrets).items():
                ranks[share][label].append(rank)
    aggregate = {}
    for label in labels:
        rows = [per_task[task][label] for task in tasks if label in per_task[task]]
        if not rows:
            continue
        ratios = [row["ratio"] if row["ratio"] is not None else math.inf for row in rows]
        aggregate[label] = {
            "tasks": len(rows),
            "reached": sum(row["reached"] for row in rows), "runs": sum(row["runs"] for row in rows),
            "median_ratio": _median(ratios),
            "median_seconds_to_target": _median([row["seconds_to_target"] for row in rows]),
            "regret": {share: _median([row["regret"][share] for row in rows]) for share in SHARES},
            "mean_rank": {share: (statistics.fmean(ranks[share][label]) if ranks[share][label] else None)
                          for share in SHARES},
            "epochs_spent": _median([row["epochs_spent"] for row in rows]),
            "wall_s": _median([row["wall_s"] for row in rows]),
        }
    return {"per_task": per_task, "aggregate": aggregate, "scales": scales, "budget": budget}


def default_choice(aggregate: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Per engine, hpsearch's contender with the best mean rank at ``DECIDING_SHARE`` of the budget."""
    chosen: dict[str, str] = {}
    for contender in lcbench_runs.CONTENDERS:
        if contender.kind != "hpsearch" or contender.label not in aggregate:
            continue
        row = aggregate[contender.label]
        current = chosen.get(contender.engine)
        if current is None or _rank_key(row) < _rank_key(aggregate[current]):
            chosen[contender.engine] = contender.label
    return chosen


def _rank_key(row: Mapping[str, Any]) -> tuple[float, float, float]:
    """The mean rank at ``DECIDING_SHARE`` of the budget (where a search with hpsearch's default budget
    stands), then the mean rank averaged over the four shares, then the rank at the whole budget."""
    return row["mean_rank"][DECIDING_SHARE], _average_rank(row), row["mean_rank"][1.0]


def _average_rank(row: Mapping[str, Any]) -> float:
    return statistics.fmean(row["mean_rank"][share] for share in SHARES)


def _round(value: float | None, digits: int = 3) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isinf(value):
        return "not reached"
    return round(value, digits)


def plot(traces: Mapping[tuple[str, int, str], Mapping[str, Any]], summary: Mapping[str, Any],
         path: Path) -> None:
    """Median normalized regret (over tasks and seeds) against epochs, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = summary["budget"]
    grid = np.unique(np.geomspace(lcbench.EPOCHS / 4, budget, 60).astype(int))
    figure, axis = plt.subplots(figsize=(9, 5.5))
    for contender in lcbench_runs.CONTENDERS:
        keys = [key for key in traces if key[2] == contender.label and key[0] in summary["scales"]]
        if not keys:
            continue
        curves = []
        for task, _seed, _label in keys:
            best, median = summary["scales"][task]
            row = []
            for epochs in grid:
                found = best_within(traces[(task, _seed, _label)]["points"], epochs)
                row.append(1.0 if found is None else max(0.0, (best - found) / max(1e-12, best - median)))
            curves.append(row)
        style = "--" if contender.kind == "anchor" else "-"
        axis.plot(grid, np.median(np.array(curves), axis=0), style, label=contender.label,
                  drawstyle="steps-post")
    axis.set_xscale("log")
    axis.set_yscale("symlog", linthresh=0.01)
    axis.set_xlabel("epochs trained (52 = one full trial)")
    axis.set_ylabel("median normalized regret (0 = best known)")
    axis.set_title("LCBench surrogate, development tasks")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(traces: Mapping[tuple[str, int, str], Mapping[str, Any]], tasks: Sequence[str], seeds: int,
                 trials: int, epochs: int, name: str, command: str | None = None,
                 out_dir: Path | None = None) -> Path:
    """Summarize the traces and write ``<out_dir>/<name>.json`` and ``<name>.png`` (bench_results)."""
    out_dir = out_dir or bench_results.RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(traces, tasks, seeds, trials, epochs)
    aggregate = summary["aggregate"]
    share_names = [f"{int(share * 100)}%" for share in SHARES]
    ordered = sorted(aggregate, key=lambda label: (_rank_key(aggregate[label]), label))
    overall = bench_results.table(
        f"All contenders over {len(tasks)} tasks x {seeds} seed(s), budget {trials} full trials "
        f"({trials * epochs} epochs)",
        ["contender", "mean rank at 25%", "mean rank (average over budget shares)", "mean rank at 100%",
         "epochs to random's best / random's",
         *[f"regret at {share}" for share in share_names], "reached random's best", "epochs spent",
         "wall s per run"],
        [_overall_row(label, aggregate[label]) for label in ordered],
        notes="Medians over tasks (each task's figure a median over seeds). Regret is normalized: 0 is the "
              "best validation accuracy known on the task, 1 the median random configuration. The epochs "
              "ratio divides the epochs until a contender's best so far reaches random search's final best "
              "by random search's own; 'not reached' when it did not on most tasks.")
    per_task_rows = []
    for task in tasks:
        for label in ordered:
            row = summary["per_task"][task].get(label)
            if row is None:
                continue
            per_task_rows.append([task, label, _round(row["epochs_to_target"], 0), _round(row["ratio"], 2),
                                  _round(row["seconds_to_target"], 0),
                                  *[_round(row["regret"][share]) for share in SHARES]])
    detail = bench_results.table(
        "Per task", ["task", "contender", "epochs to random's best", "/ random's", "simulated s to it",
                     *[f"regret at {share}" for share in share_names]], per_task_rows,
        notes="Medians over seeds. Simulated seconds are the surrogate's training time of the epochs spent.")
    chosen = default_choice(aggregate)
    defaults = bench_results.table(
        "Each engine's best: mean rank at 25% of the budget, the share nearest hpsearch's default budget",
        ["engine", "contender", "mean rank (average over budget shares)",
         *[f"mean rank at {share}" for share in share_names]],
        [[engine, label, _round(_average_rank(aggregate[label]), 2),
          *[_round(aggregate[label]["mean_rank"][share], 2) for share in SHARES]]
         for engine, label in chosen.items()])
    figure = f"{name}.png"
    plot(traces, summary, out_dir / figure)
    best_label = ordered[0] if ordered else "none"
    text = (f"Over {len(tasks)} development tasks, {best_label} has the best mean rank at 25% of the budget "
            "(the share nearest hpsearch's default budget of 10 trials); the second table gives each "
            "engine's best by that rank, the measured choice of its default.")
    data = {"tasks": list(tasks), "seeds": seeds, "trials": trials, "epochs": epochs, "defaults": chosen,
            "scales": summary["scales"],
            "aggregate": {label: {**row, "regret": {str(k): v for k, v in row["regret"].items()},
                                  "mean_rank": {str(k): v for k, v in row["mean_rank"].items()}}
                          for label, row in aggregate.items()}}
    return bench_results.write_result(name, title="LCBench: search efficiency on real learning curves",
                                      tables=[overall, defaults, detail], summary=text, figures=[figure],
                                      data=_finite(data), out_dir=out_dir, command=command)


def _overall_row(label: str, row: Mapping[str, Any]) -> list[Any]:
    return [label, _round(row["mean_rank"][DECIDING_SHARE], 2), _round(_average_rank(row), 2),
            _round(row["mean_rank"][1.0], 2),
            _round(row["median_ratio"], 2), *[_round(row["regret"][share]) for share in SHARES],
            f"{row['reached']}/{row['runs']}", _round(row["epochs_spent"], 0), _round(row["wall_s"], 1)]


def _finite(value: Any) -> Any:
    """JSON has no infinity: a run that never reached its target is written as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
