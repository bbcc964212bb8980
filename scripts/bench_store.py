"""What the trial store costs: per trial while a search runs, and per query on a large study.

    .venv/bin/python scripts/bench_store.py [--trials 300] [--epochs 10] [--large 100000]

1. Store cost per trial on SQLite: claim (budget and no-duplicate checks), ``--epochs`` epochs, finish,
   through the same TrialRecorder every engine uses; side by side with one transaction per epoch (how the
   recorder wrote before epochs were batched). Measured with no training in between (all of a trial's
   epochs land in its finish) and with epochs 0.1 s apart (about one batch a second, as in a real run).
2. Query time in-process on a 1k-trial and a ``--large``-trial study: ``hpsearch best`` and
   ``hpsearch trials --limit 10``, median of repeated runs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hpsearch.cli import main as cli_main  # noqa: E402
from hpsearch.storage import open_storage  # noqa: E402
from hpsearch.training.recorder import TrialRecorder  # noqa: E402

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
    args = parser.parse_args()
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
        print("query time in-process (median):")
        for size in (1_000, args.large):
            path = folder / f"q{size}.db"
            fill_study(path, "q", size)
            best = query_ms(["best", "q", "--storage", str(path)], args.repeats)
            listed = query_ms(["trials", "q", "--limit", "10", "--storage", str(path)], args.repeats)
            print(f"  {size:>7} trials: best {best:6.1f} ms, trials --limit 10 {listed:6.1f} ms")


if __name__ == "__main__":
    main()
