"""LCBench: which algorithm reaches a good MLP configuration in the fewest epochs, on 20 real tasks.

    .venv/bin/python scripts/bench_efficiency.py --benchmark lcbench [--tasks all|N|ID,ID] [--seeds 1]
        [--trials 50] [--only LABEL,...] [--skip LABEL,...] [--shard I/N] [--out bench-lcbench]
        [--report-only] [--result lcbench]

Every contender of ``lcbench_runs.CONTENDERS`` (hpsearch's engines and algorithms through
``hpsearch.run(..., train=...)``, and the plain Optuna and KerasTuner anchors) searches each development
task of the LCBench surrogate (``tasks-dev.txt``) once per seed with a budget of ``--trials`` full trials
(x 52 epochs). Each run's trace (epochs, simulated seconds and value per ended trial) is appended to
``OUT/traces.jsonl``, so an interrupted benchmark continues, ``--shard 1/2`` and ``--shard 2/2`` run side
by side, and ``--only`` adds contenders later. The report (``lcbench_report``) is written from the traces
to ``scripts/results/<--result>.json`` and its PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]

import lcbench  # noqa: E402
import lcbench_runs  # noqa: E402


def load_traces(path: Path) -> dict[tuple[str, int, str], dict]:
    """The traces run so far: (task, seed, label) -> record (the last record of a key wins)."""
    traces: dict[tuple[str, int, str], dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                traces[(record["task"], record["seed"], record["contender"])] = record
    return traces


def select_tasks(text: str) -> list[str]:
    """``all``, the first N development tasks, or comma-separated task ids."""
    tasks = lcbench.dev_tasks()
    if text == "all":
        return tasks
    if text.isdigit():
        return tasks[: int(text)]
    chosen = text.split(",")
    unknown = [task for task in chosen if task not in tasks]
    if unknown:
        raise SystemExit(f"--tasks: {unknown[0]} is not a development task (tasks-dev.txt)")
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all", help="all, the first N dev tasks, or ids")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--trials", type=int, default=50, help="the budget in full trials (x 52 epochs)")
    parser.add_argument("--epochs", type=int, default=lcbench.EPOCHS, help="epochs of a full trial")
    parser.add_argument("--only", default=None, help="comma-separated contender labels (default: all)")
    parser.add_argument("--skip", default=None, help="comma-separated contender labels to leave out")
    parser.add_argument("--shard", default="1/1", help="I/N: run every N-th run, starting at the I-th")
    parser.add_argument("--out", type=Path, default=Path("bench-lcbench"))
    parser.add_argument("--result", default="lcbench", help="the result file's name (scripts/results/)")
    parser.add_argument("--results-dir", type=Path, default=None, help="where the result file goes")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--benchmark", default="lcbench", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not lcbench.available():
        raise SystemExit(f"the LCBench surrogate is not at {lcbench.data_dir()} (or onnxruntime is missing); "
                         "set HPSEARCH_LCBENCH to its folder")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tasks = select_tasks(args.tasks)
    wanted = set(args.only.split(",")) if args.only else None
    skipped = set(args.skip.split(",")) if args.skip else set()
    labels = {contender.label for contender in lcbench_runs.CONTENDERS}
    for label in (wanted or set()) | skipped:
        if label not in labels:
            raise SystemExit(f"--only/--skip: {label!r} is not a contender; they are: "
                             f"{', '.join(sorted(labels))}")
    if lcbench_runs.REFERENCE in skipped:
        raise SystemExit(f"--skip: {lcbench_runs.REFERENCE!r} is the reference every report needs")
    # Random search always runs: its best is every contender's target.
    contenders = [c for c in lcbench_runs.CONTENDERS if c.label == lcbench_runs.REFERENCE
                  or ((wanted is None or c.label in wanted) and c.label not in skipped)]
    index, count = (int(part) for part in args.shard.split("/"))
    args.out.mkdir(parents=True, exist_ok=True)
    trace_file = args.out / "traces.jsonl"
    done = load_traces(trace_file)
    # Seed by seed, task by task: a benchmark stopped early has every contender on its first runs.
    todo = [(task, seed, contender) for seed in range(args.seeds) for task in tasks
            for contender in contenders]
    todo = [item for number, item in enumerate(todo) if number % count == index - 1]
    started = time.perf_counter()
    for number, (task, seed, contender) in enumerate(todo, 1):
        if args.report_only or (task, seed, contender.label) in done:
            continue
        work = args.out / f"work-{os.getpid()}"  # one per process: shards run side by side
        shutil.rmtree(work, ignore_errors=True)
        began = time.perf_counter()
        points = lcbench_runs.run_contender(contender, task, seed, args.trials, work, args.epochs)
        record = {"task": task, "seed": seed, "contender": contender.label, "trials": args.trials,
                  "epochs": args.epochs, "wall_s": round(time.perf_counter() - began, 2), "points": points}
        with trace_file.open("a") as handle:  # one line per write: two shards may append side by side
            handle.write(json.dumps(record) + "\n")
        print(f"[{number}/{len(todo)}] {task} s{seed} {contender.label}: {record['wall_s']} s "
              f"(total {time.perf_counter() - started:.0f} s)", flush=True)
    if args.report_only or count == 1:
        import lcbench_report

        chosen = {contender.label for contender in contenders} | {lcbench_runs.REFERENCE}
        traces = {key: record for key, record in load_traces(trace_file).items()
                  if key[2] in chosen and key[0] in tasks and key[1] < args.seeds
                  and record["trials"] == args.trials and record["epochs"] == args.epochs}
        # Only tasks every contender has run on every seed are ranked (a benchmark stopped early).
        complete = [task for task in tasks
                    if all((task, seed, label) in traces for seed in range(args.seeds) for label in chosen)]
        if not complete:
            raise SystemExit("no task has a run of every contender yet")
        if len(complete) < len(tasks):
            print(f"reporting the {len(complete)} of {len(tasks)} tasks every contender has run")
        tasks = complete
        command = "python scripts/bench_efficiency.py " + " ".join(sys.argv[1:] if argv is None else argv)
        path = lcbench_report.write_report(traces, tasks, args.seeds, args.trials, args.epochs, args.result,
                                           command=command, out_dir=args.results_dir)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
