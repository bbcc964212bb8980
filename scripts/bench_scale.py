"""Scale simulation: how many trials per second hpsearch's store coordinates for K workers.

    .venv/bin/python scripts/bench_scale.py [--workers 8,32,64] [--backends sqlite,postgresql]
        [--epochs 52] [--epoch-ms 1] [--seconds 8] [--result scale]

K worker processes (forked, each with its own connection) run the store's side of a search as fast as
simulated training lets them: claim a trial (``TrialRecorder.start``: the budget and no-duplicate checks
every engine's trials pass), 52 epochs of ``--epoch-ms`` milliseconds of sleep each, recorded through the
recorder (batched, as in a real run), and finish (``complete``). Two modes:

- ``batched``: the recorder as it is (epochs written with the trial's next flush, at most 1 s apart):
  trials per second through the store, and the share of worker time spent inside store calls (waiting on
  the database and on the other workers' transactions) rather than training;
- ``per-epoch``: every epoch written at once (``EPOCH_FLUSH_S = 0``), what a study of slow epochs (one a
  second or slower) costs the store: epoch writes per second.

The backends are a SQLite file (WAL) and PostgreSQL: ``HPSEARCH_TEST_POSTGRES_URL`` names a server,
otherwise ``scripts/postgres.sh`` starts a throwaway one for the run (as the tests do) and stops it.
Results go to ``scripts/results/<--result>.json`` (``scripts/bench_results.py``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]

import bench_results  # noqa: E402

LOGS = {"loss": 0.5, "val_accuracy": 0.75}
CPU_PARTS = ("claim", "epochs", "finish", "memory sampling")


def worker(url: str, study_name: str, epochs: int, epoch_s: float, per_epoch: bool, start_at: float,
           stop_at: float, results: Any) -> None:
    """One simulated worker: claim, train (sleep) and finish trials until ``stop_at``; report its tally."""
    from hpsearch.storage import open_storage
    from hpsearch.training import recorder as recorder_module

    if per_epoch:
        recorder_module.EPOCH_FLUSH_S = 0.0
    storage = open_storage(url, create=False)
    study = storage.get_study(study_name)
    recorder = recorder_module.TrialRecorder(storage, study)
    trials = writes = 0
    in_store = 0.0
    time.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    pid = os.getpid()
    while time.time() < stop_at:
        tick = time.perf_counter()
        trial = recorder.start({"worker": pid, "n": trials})
        in_store += time.perf_counter() - tick
        for epoch in range(epochs):
            time.sleep(epoch_s)
            tick = time.perf_counter()
            recorder.epoch(trial, epoch, LOGS)
            in_store += time.perf_counter() - tick
        writes += epochs if per_epoch else 0
        tick = time.perf_counter()
        recorder.complete(trial, 0.75, LOGS)
        in_store += time.perf_counter() - tick
        trials += 1
    storage.close()
    results.put({"trials": trials, "writes": writes, "in_store_s": in_store,
                 "total_s": time.perf_counter() - began})


def measure(url: str, workers: int, epochs: int, epoch_s: float, seconds: float, per_epoch: bool,
            number: int) -> dict[str, Any]:
    """Run ``workers`` processes against ``url`` for ``seconds``; their tallies summed."""
    from hpsearch.storage import open_storage

    storage = open_storage(url)
    name = f"scale-{number}-{workers}-{int(per_epoch)}"
    storage.create_study(name, engine="optuna", algorithm="random", objective="val_accuracy",
                         direction="maximize", space={}, dataset={}, settings={}, versions={})
    storage.close()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 2.0 + workers * 0.03  # every worker connected before the clock starts
    stop_at = start_at + seconds
    processes = [context.Process(target=worker, args=(url, name, epochs, epoch_s, per_epoch, start_at,
                                                      stop_at, results)) for _ in range(workers)]
    for process in processes:
        process.start()
    tallies = [results.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    wall = max(tally["total_s"] for tally in tallies)
    trials = sum(tally["trials"] for tally in tallies)
    in_store = sum(tally["in_store_s"] for tally in tallies)
    total = sum(tally["total_s"] for tally in tallies)
    # What the workers would do if the store cost nothing: their time outside store calls (sleeps that
    # overshoot on a busy machine included) spent on trials alone.
    outside = (total - in_store) / workers
    ideal = trials / outside if outside > 0 else None
    return {"workers": workers, "trials": trials, "wall_s": wall, "trials_per_s": trials / wall,
            "ideal_trials_per_s": ideal, "coordination_share": in_store / total,
            "store_ms_per_trial": 1000 * in_store / max(1, trials),
            "epoch_writes_per_s": sum(tally["writes"] for tally in tallies) / wall}


def store_cpu_breakdown(url: str, epochs: int, trials: int = 100) -> dict[str, float]:
    """One process, no sleeps: CPU milliseconds per trial in claim, epochs (and of those, the resident
    memory sampled at every epoch) and finish; what bounds trials per second per core."""
    from hpsearch.storage import open_storage
    from hpsearch.training import recorder as recorder_module

    storage = open_storage(url)
    study = storage.create_study(f"cpu-{time.time_ns()}", engine="optuna", algorithm="random",
                                 objective="val_accuracy", direction="maximize", space={}, dataset={},
                                 settings={}, versions={})
    recorder = recorder_module.TrialRecorder(storage, study)
    spent = {"claim": 0.0, "epochs": 0.0, "finish": 0.0, "memory sampling": 0.0}
    for number in range(trials):
        tick = time.process_time()
        trial = recorder.start({"n": number})
        spent["claim"] += time.process_time() - tick
        tick = time.process_time()
        for epoch in range(epochs):
            recorder.epoch(trial, epoch, LOGS)
        spent["epochs"] += time.process_time() - tick
        tick = time.process_time()
        recorder.complete(trial, 0.75, LOGS)
        spent["finish"] += time.process_time() - tick
    tick = time.process_time()
    for _ in range(trials * epochs):
        recorder_module.resident_memory_mb()
    spent["memory sampling"] = time.process_time() - tick
    storage.close()
    return {key: 1000 * value / trials for key, value in spent.items()}


def postgres_url(folder: Path) -> tuple[str, bool]:
    """The PostgreSQL URL to use and whether this run started the server."""
    given = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")
    if given:
        return given, False
    started = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "start", str(folder)],
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise SystemExit(f"could not start PostgreSQL with scripts/postgres.sh: {started.stderr.strip()}")
    return started.stdout.strip().splitlines()[-1], True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="8,32,64")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--epochs", type=int, default=52)
    parser.add_argument("--epoch-ms", type=float, default=1.0, help="simulated training per epoch")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per configuration")
    parser.add_argument("--modes", default="batched,per-epoch")
    parser.add_argument("--result", default="scale")
    parser.add_argument("--results-dir", type=Path, default=bench_results.RESULTS)
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.workers.split(",")]
    modes = args.modes.split(",")
    rows, raw, cpu_rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="hpsearch-scale-") as folder:
        for backend in args.backends.split(","):
            started = False
            if backend == "sqlite":
                url = f"sqlite:///{folder}/scale.db"
            elif backend == "postgresql":
                # Its own folder in the temp directory: the server's user must reach it.
                pg_folder = Path(tempfile.mkdtemp(prefix="hpsearch-scale-pg-"))
                url, started = postgres_url(pg_folder)
            else:
                raise SystemExit(f"--backends: {backend!r} is not sqlite or postgresql")
            try:
                cpu = store_cpu_breakdown(url, args.epochs)
                cpu_rows.append([backend, *(round(cpu[key], 2) for key in CPU_PARTS),
                                 round(sum(cpu[key] for key in CPU_PARTS[:3]), 2)])
                print(f"{backend:10} store CPU per trial (ms): {cpu}", flush=True)
                for mode in modes:
                    for number, workers in enumerate(counts):
                        result = measure(url, workers, args.epochs, args.epoch_ms / 1000, args.seconds,
                                         mode == "per-epoch", number)
                        result.update(backend=backend, mode=mode)
                        raw.append(result)
                        print(f"{backend:10} {mode:9} K={workers:3}: {result['trials_per_s']:7.1f} trials/s "
                              f"(ideal {result['ideal_trials_per_s']:.0f}), "
                              f"{result['epoch_writes_per_s']:7.0f} epoch writes/s, "
                              f"{100 * result['coordination_share']:5.1f}% of worker time in the store, "
                              f"{result['store_ms_per_trial']:.1f} ms store per trial", flush=True)
                        rows.append([backend, mode, workers, round(result["trials_per_s"], 1),
                                     round(result["ideal_trials_per_s"] or 0, 0),
                                     # batched epochs ride on the finish: no separate writes to count
                                     round(result["epoch_writes_per_s"], 0) if mode == "per-epoch" else None,
                                     round(100 * result["coordination_share"], 1),
                                     round(result["store_ms_per_trial"], 1)])
            finally:
                if started:
                    subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(pg_folder)],
                                   capture_output=True, check=False)
    table = bench_results.table(
        f"K workers, each: claim + {args.epochs} epochs of {args.epoch_ms:g} ms + finish",
        ["store", "epoch writes", "workers", "trials/s", "trials/s if the store cost nothing",
         "epoch writes/s", "% of worker time in store calls", "store ms per trial"], rows,
        notes="'batched': the recorder as it is (a trial's epochs written together, at most 1 s apart); "
              "'per-epoch': each epoch its own write, as for epochs a second or more apart. Processes "
              f"share this machine's {bench_results.machine()['cores']} cores with the database server.")
    cpu_table = bench_results.table(
        f"Client CPU milliseconds per trial, one process, no training ({args.epochs} epochs)",
        ["store", *CPU_PARTS, "total"], cpu_rows,
        notes="'memory sampling' is part of 'epochs': the recorder reads the process's resident memory at "
              "every epoch. The total bounds the trials per second one core of workers can coordinate.")
    bench_results.write_result(args.result, title="Scale simulation: the store under K workers",
                               tables=[table, cpu_table], data={"runs": raw, "epochs": args.epochs,
                                                     "epoch_ms": args.epoch_ms, "seconds": args.seconds},
                               out_dir=args.results_dir)


if __name__ == "__main__":
    main()
