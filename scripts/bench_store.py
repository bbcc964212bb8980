"""What the trial store costs: per trial while a search runs, and per query on a large study.

    .venv/bin/python scripts/bench_store.py [--trials 300] [--epochs 10] [--large 100000]

1. Store cost per trial on SQLite: claim (budget and no-duplicate checks), ``--epochs`` epochs, finish,
   through the same TrialRecorder every engine uses; side by side with one transaction per epoch (how the
   recorder wrote before epochs were batched). Measured with no training in between (all of a trial's
   epochs land in its finish) and with epochs 0.1 s apart (about one batch a second, as in a real run).
2. Query time in-process on a 1k-trial and a ``--large``-trial study: ``hpsearch best`` and
   ``hpsearch trials --limit 10``, median of repeated runs.
3. Optuna's bookkeeping per reported epoch under the default Hyperband pruner (``trial.report`` and
   ``trial.should_prune``), through the storage the optuna engine opens, once with Optuna's own cached
   storage and once with hpsearch's (``hpsearch.engines.optuna.lean_reads``), in alternating rounds.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hpsearch.cli import main as cli_main  # noqa: E402
from hpsearch.storage import open_storage  # noqa: E402
from hpsearch.training.recorder import TrialRecorder  # noqa: E402

from scripts.bench_results import table, write_result  # noqa: E402
from tests.store_fill import fill_study  # noqa: E402

LOGS = {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75}


def store_cost_ms(folder: Path, trials: int, epochs: int, *, batched: bool, epoch_gap_s: float
                  ) -> tuple[float, float]:
    """Milliseconds of store work per trial (time spent inside recorder calls, sleeps excluded): wall time,
    and this process's CPU time, which other programs on a busy machine inflate much less."""
    path = folder / f"cost-{batched}-{epoch_gap_s}.db"
    storage = open_storage(str(path))
    study = storage.create_study("b", engine="optuna", algorithm="tpe", objective="val_loss",
                                 direction="minimize", space={}, dataset={}, settings={}, versions={})
    recorder = TrialRecorder(storage, study)
    spent = cpu = 0.0
    for number in range(trials):
        started, began = time.perf_counter(), time.process_time()
        trial = recorder.start({"n": number}, budget=trials + 1)
        spent += time.perf_counter() - started
        cpu += time.process_time() - began
        for epoch in range(epochs):
            if epoch_gap_s:
                time.sleep(epoch_gap_s)
            started, began = time.perf_counter(), time.process_time()
            if batched:
                recorder.epoch(trial, epoch, LOGS)
            else:
                storage.record_epoch(trial.id, epoch, LOGS)
            spent += time.perf_counter() - started
            cpu += time.process_time() - began
        started, began = time.perf_counter(), time.process_time()
        recorder.complete(trial, 0.6, LOGS)
        spent += time.perf_counter() - started
        cpu += time.process_time() - began
    storage.close()
    return 1000 * spent / trials, 1000 * cpu / trials


def optuna_epoch_ms(folder: Path, trials: int, epochs: int, *, lean: bool, round_: int
                    ) -> tuple[float, float]:
    """Milliseconds per reported epoch (wall, and this process's CPU) of report + should_prune in an Optuna
    study with a Hyperband pruner, through the SQLite storage the optuna engine opens (``lean``: wrapped
    as the engine wraps it; otherwise in Optuna's own cache). Trials draw a rate; their curves rise with
    it."""
    from types import SimpleNamespace

    import optuna
    from hpsearch.engines.optuna.engine import OptunaEngine
    from hpsearch.engines.optuna.lean_reads import LeanReadStorage
    from hpsearch.storage.locator import StoreLocation

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = f"sqlite:///{folder / f'optuna-{lean}-{round_}.db'}"
    store = SimpleNamespace(url=url, location=StoreLocation.parse(url))
    rdb = OptunaEngine()._storage(SimpleNamespace(storage=store))
    study = optuna.create_study(storage=LeanReadStorage(rdb) if lean else rdb, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=round_),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs))
    spent = cpu = 0.0
    reported = 0
    for _ in range(trials):
        trial = study.ask()
        rate = trial.suggest_float("rate", 0.01, 1.0, log=True)
        state, value = optuna.trial.TrialState.COMPLETE, 0.0
        for step in range(epochs):
            value = 1 - math.exp(-rate * (step + 1))
            started, began = time.perf_counter(), time.process_time()
            trial.report(value, step)
            pruned = trial.should_prune()
            spent += time.perf_counter() - started
            cpu += time.process_time() - began
            reported += 1
            if pruned:
                state = optuna.trial.TrialState.PRUNED
                break
        study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return 1000 * spent / reported, 1000 * cpu / reported


def query_ms(args: list[str], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        code = cli_main(args, out=io.StringIO(), err=io.StringIO())
        timings.append(time.perf_counter() - started)
        assert code == 0, args
    return 1000 * statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--optuna-trials", type=int, default=60,
                        help="trials per round of the Optuna measurement (27 epochs each at most)")
    parser.add_argument("--optuna-rounds", type=int, default=3)
    parser.add_argument("--no-result", action="store_true", help="print only; write no result file")
    args = parser.parse_args()
    cost_rows: list[list[float | int]] = []
    query_rows: list[list[float | int]] = []
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-store-") as name:
        folder = Path(name)
        print(f"store cost per trial, SQLite, {args.epochs} epochs, {args.trials} trials:")
        for gap in (0.0, 0.1):
            slow_trials = args.trials if gap == 0 else max(3, args.trials // 30)
            per_epoch = store_cost_ms(folder, slow_trials, args.epochs, batched=False, epoch_gap_s=gap)
            batched = store_cost_ms(folder, slow_trials, args.epochs, batched=True, epoch_gap_s=gap)
            print(f"  epochs {gap:.1f} s apart: one write per epoch {per_epoch[0]:6.2f} ms "
                  f"({per_epoch[1]:.2f} ms CPU), batched {batched[0]:6.2f} ms ({batched[1]:.2f} ms CPU)  "
                  f"(ratio {batched[0] / per_epoch[0]:.2f})")
            cost_rows.append([gap, slow_trials, per_epoch[0], per_epoch[1], batched[0], batched[1],
                              batched[0] / per_epoch[0]])
        print("query time in-process (median):")
        for size in (1_000, args.large):
            path = folder / f"q{size}.db"
            fill_study(path, "q", size)
            best = query_ms(["best", "q", "--storage", str(path)], args.repeats)
            listed = query_ms(["trials", "q", "--limit", "10", "--storage", str(path)], args.repeats)
            print(f"  {size:>7} trials: best {best:6.1f} ms, trials --limit 10 {listed:6.1f} ms")
            query_rows.append([size, best, listed])
        print(f"Optuna's bookkeeping per reported epoch, Hyperband pruner, {args.optuna_trials} trials:")
        measured: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for round_ in range(args.optuna_rounds):
            for lean in (False, True):  # alternating, so drifting load on the machine hits both alike
                measured[lean].append(optuna_epoch_ms(folder, args.optuna_trials, 27, lean=lean,
                                                      round_=round_))
        labels = (("Optuna's cached storage", False), ("hpsearch's lean reads", True))
        optuna_rows = [[label, statistics.median(w for w, _ in measured[lean]),
                        statistics.median(c for _, c in measured[lean])] for label, lean in labels]
        optuna_ratio = optuna_rows[1][1] / optuna_rows[0][1]
        for label, wall, cpu in optuna_rows:
            print(f"  {label:24} {wall:6.2f} ms ({cpu:.2f} ms CPU)")
        print(f"  ratio {optuna_ratio:.2f}")
    if args.no_result:
        return
    path = write_result(
        "store", title="What the trial store costs",
        summary=(f"With epochs {cost_rows[-1][0]:g} s apart, as in a real run, batching a trial's epochs "
                 f"costs {cost_rows[-1][6]:.2f} times the store work of one write per epoch. On a "
                 f"{args.large:,}-trial study `hpsearch best` answers in {query_rows[-1][1]:.0f} ms and "
                 f"`hpsearch trials --limit 10` in {query_rows[-1][2]:.0f} ms, against "
                 f"{query_rows[0][1]:.0f} and {query_rows[0][2]:.0f} ms on 1,000 trials. Under Optuna's "
                 f"Hyperband pruner, an epoch's report and pruning decision cost {optuna_rows[1][1]:.1f} ms "
                 f"through the optuna engine's storage, {optuna_ratio:.2f} times the "
                 f"{optuna_rows[0][1]:.1f} ms through Optuna's own."),
        tables=[
            table(f"Store work per trial on SQLite: claim, {args.epochs} epochs, finish (milliseconds)",
                  ["epochs apart (s)", "trials", "one write per epoch (ms)", "its CPU (ms)", "batched (ms)",
                   "its CPU (ms)", "batched / per epoch"], cost_rows,
                  notes="Time spent inside the recorder's calls only (sleeps between epochs excluded); CPU "
                        "is this process's own, which other load on the machine inflates less than wall "
                        "time."),
            table(f"Query time in-process, median of {args.repeats} runs (milliseconds)",
                  ["trials in the study", "hpsearch best (ms)", "hpsearch trials --limit 10 (ms)"],
                  query_rows),
            table(f"Optuna's bookkeeping per reported epoch, Hyperband pruner (report + should_prune; "
                  f"milliseconds, median of {args.optuna_rounds} alternating rounds of {args.optuna_trials} "
                  f"trials)", ["storage", "per epoch (ms)", "its CPU (ms)"], optuna_rows,
                  notes="Both write every value to the database; hpsearch's keeps what a running trial's "
                        "pruner reads (its system attributes, the study's id) in memory instead of reading "
                        "it back. The pruning decisions are the same (tests/test_optuna_lean_reads.py)."),
        ],
        data={"trials": args.trials, "epochs": args.epochs, "large": args.large, "repeats": args.repeats,
              "optuna_trials": args.optuna_trials, "optuna_rounds": args.optuna_rounds})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
