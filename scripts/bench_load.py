"""Optuna on PostgreSQL at load: K workers share one study of many one-epoch trials.

    .venv/bin/python scripts/bench_load.py [--workers 4] [--trials 500] [--storage postgresql://...]

Without --storage (or HPSEARCH_TEST_POSTGRES_URL) a throwaway PostgreSQL server is started on loopback
with scripts/postgres.sh. Runs ``hpsearch run --workers K --trials N`` on tiny one-epoch trials, then
checks the store: exactly N trials, numbers 0..N-1 each once, no configuration twice, none left RUNNING
(ours or Optuna's). Reports trials per second, and the store's own milliseconds per trial on the same
server (claim, one epoch, finish through the recorder every engine uses; one process, then K processes
at once).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_results import table, write_result  # noqa: E402

SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 64}
  learning_rate: {type: float, low: 1.0e-3, high: 5.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 1, batch_size: 64}
"""


def _store_cost(url: str, study: str, trials: int, offset: int) -> float:
    """Seconds the store spends on ``trials`` claim + 1 epoch + finish cycles, through the recorder."""
    from hpsearch.storage import open_storage
    from hpsearch.training.recorder import TrialRecorder

    storage = open_storage(url)
    record = storage.get_study(study)
    recorder = TrialRecorder(storage, record)
    started = time.perf_counter()
    for number in range(trials):
        trial = recorder.start({"n": offset + number})
        recorder.epoch(trial, 0, {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7})
        recorder.complete(trial, 0.7, {"val_accuracy": 0.7})
    spent = time.perf_counter() - started
    storage.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--storage", default=os.environ.get("HPSEARCH_TEST_POSTGRES_URL"))
    parser.add_argument("--no-result", action="store_true", help="print only; write no result file")
    args = parser.parse_args()
    server_dir = None
    url = args.storage
    if not url:
        server_dir = tempfile.mkdtemp(prefix="hpsearch-bench-pg-")
        started = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "start", server_dir],
                                 capture_output=True, text=True, check=True)
        url = started.stdout.strip().splitlines()[-1]
    try:
        figures = run(url, args.workers, args.trials)
    finally:
        if server_dir:
            subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", server_dir],
                           capture_output=True)
    if args.no_result:
        return
    checks = figures["checks"]
    path = write_result(
        "load", title="Optuna on PostgreSQL at load",
        summary=(f"{args.workers} workers sharing one study on PostgreSQL recorded {checks['recorded']} of "
                 f"{args.trials} trials, " + ("each number once, no configuration twice and none left "
                                              "RUNNING" if figures["sound"] else "with the problems the "
                                              "checks table shows")
                 + f"; the store's own work stays at {figures['solo_ms']:.1f} ms a trial in one process and "
                   f"{figures['shared_ms']:.1f} ms with {args.workers} processes at once, small beside a "
                   f"trial's training."),
        tables=[
            table(f"{args.workers} workers x {args.trials} one-epoch trials (iris) on PostgreSQL",
                  ["check", "result"], [[key.replace("_", " "), value] for key, value in checks.items()]),
            table("Throughput and the store's own cost per trial",
                  ["measure", "value"],
                  [["trials per second, worker start-up included", figures["trials_per_s"]],
                   ["wall time of the run (s)", figures["wall_s"]],
                   ["store ms per trial (claim + 1 epoch + finish), one process", figures["solo_ms"]],
                   [f"store ms per trial, {args.workers} processes at once", figures["shared_ms"]],
                   ["trials per second through the store, all processes", figures["store_trials_per_s"]]]),
        ],
        data={"workers": args.workers, "trials": args.trials, **figures})
    print(f"wrote {path}")


def run(url: str, workers: int, trials: int) -> dict:
    import sqlalchemy

    study = f"load-{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-load-") as folder:
        space = Path(folder) / "space.yaml"
        space.write_text(SPACE)
        command = [str(Path(sys.executable).with_name("hpsearch")), "run", str(space), "--data", "iris",
                   "--trials", str(trials), "--workers", str(workers), "--study", study, "--quiet",
                   "--algorithm", "random", "--pruner", "none", "--recycle-after", str(trials)]
        env = {**os.environ, "HPSEARCH_STORAGE": url, "TF_CPP_MIN_LOG_LEVEL": "2"}
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"hpsearch run failed ({done.returncode}): {done.stderr.strip()[-2000:]}")

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT t.number, t.state, t.params, t.duration_s FROM hp_trials t JOIN hp_studies s "
            "ON s.id = t.study_id WHERE s.name = :name ORDER BY t.number"), {"name": study}).all()
        optuna_running = connection.execute(sqlalchemy.text(
            "SELECT COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE s.study_name = :name AND t.state = 'RUNNING'"), {"name": study}).scalar_one()
    engine.dispose()
    numbers = [row[0] for row in rows]
    configs = {json.dumps(row[2], sort_keys=True) for row in rows}
    states: dict[str, int] = {}
    for row in rows:
        states[row[1]] = states.get(row[1], 0) + 1
    print(f"{workers} workers x {trials} one-epoch trials on PostgreSQL, study {study}")
    print(f"  trials recorded: {len(rows)} (expected {trials}); states: {states}")
    print(f"  numbers 0..{trials - 1} each once: {numbers == list(range(trials))}; "
          f"distinct configurations: {len(configs)}; RUNNING left: ours "
          f"{states.get('RUNNING', 0)}, Optuna's {optuna_running}")
    print(f"  wall {wall:.1f} s (worker start-up included): {len(rows) / wall:.2f} trials/s")

    cycles = 200
    solo = _store_cost(url, study, cycles, 10**6)
    print(f"  store per trial (claim + 1 epoch + finish), one process: {1000 * solo / cycles:.2f} ms")
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        spans = pool.starmap(_store_cost, [(url, study, cycles, 10**7 * (k + 1)) for k in range(workers)])
    print(f"  store per trial, {workers} processes at once: {1000 * max(spans) / cycles:.2f} ms each "
          f"({workers * cycles / max(spans):.0f} trials/s through the store)")
    checks = {"recorded": len(rows), "states": ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
              "numbers_each_once": numbers == list(range(trials)), "distinct_configurations": len(configs),
              "running_left_hpsearch": states.get("RUNNING", 0), "running_left_optuna": optuna_running}
    sound = (len(rows) == trials and checks["numbers_each_once"] and len(configs) == len(rows)
             and not checks["running_left_hpsearch"] and not optuna_running)
    return {"checks": checks, "sound": sound, "wall_s": wall, "trials_per_s": len(rows) / wall,
            "solo_ms": 1000 * solo / cycles, "shared_ms": 1000 * max(spans) / cycles,
            "store_trials_per_s": workers * cycles / max(spans)}


if __name__ == "__main__":
    main()
