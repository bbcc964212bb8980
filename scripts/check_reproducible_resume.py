"""Kill a study with ``kill -9`` (once or several times), resume it, and compare its trials with the same
study run without interruption: the check behind "Reproducibility" in docs/resume.md, for any engine
and algorithm.

Both runs use the wine data, seed 7 and the grid space below (``--epochs`` per trial). The killed run is
stopped each time at least K trials have ended and a running trial has an epoch in the store, then
resumed; at the end, the sets of (configuration, value, state) over completed and pruned trials must be
equal. Example (Optuna grid, killed after 3 and after 5 ended trials)::

    .venv/bin/python scripts/check_reproducible_resume.py --kills 3,5 -- --engine optuna --algorithm grid \
        --trials 8

Everything after ``--`` is passed to ``hpsearch run``. Exit code 0 when the two runs agree, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """\
objective: val_loss
params:
  n_neurons: {{type: int, grid: [4, 8, 16, 32]}}
  learning_rate: {{type: float, grid: [0.001, 0.01, 0.03]}}
  dropout: {{type: float, grid: [0.0, 0.2]}}
fixed: {{n_hidden: 1, epochs: {epochs}, batch_size: 16, optimizer: adam}}
"""


def _hpsearch(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpsearch.cli", *args]


def _rows(db: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def _ended(db: Path) -> set[tuple[str, float, str]]:
    rows = _rows(db, "SELECT params, value, state FROM hp_trials WHERE state IN ('COMPLETE', 'PRUNED')")
    return {(json.dumps(json.loads(params), sort_keys=True), value, state) for params, value, state in rows}


def _run_until_kill(command: list[str], folder: Path, ended_at_least: int) -> bool:
    """Run ``command`` and SIGKILL it once enough trials ended and one is mid-trial; False if it ended."""
    db = folder / "study.db"
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL)
    while process.poll() is None:
        try:
            rows = _rows(db, "SELECT state, epochs_run FROM hp_trials")
        except sqlite3.Error:
            rows = []
        ended = sum(state in ("COMPLETE", "PRUNED") for state, _ in rows)
        if ended >= ended_at_least and any(state == "RUNNING" and epochs >= 1 for state, epochs in rows):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.03)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", default="3,5", help="ended trials before each kill, comma-separated")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("run_args", nargs="+", help="hpsearch run options after --")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name in ("uninterrupted", "killed"):
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "space.yaml").write_text(SPACE.format(epochs=args.epochs))
            runs[name] = folder
        common = ["--data", "wine", "--seed", "7", "--study", "s", "--quiet"]

        def run(folder: Path) -> list[str]:
            return _hpsearch("run", "space.yaml", *args.run_args, *common,
                             "--storage", f"sqlite:///{folder / 'study.db'}")

        def resume(folder: Path) -> list[str]:
            return _hpsearch("resume", "s", "--storage", f"sqlite:///{folder / 'study.db'}", "--quiet")

        subprocess.run(run(runs["uninterrupted"]), cwd=runs["uninterrupted"], check=True,
                       stdout=subprocess.DEVNULL)
        killed = runs["killed"]
        for index, ended in enumerate(int(k) for k in args.kills.split(",") if k):
            fired = _run_until_kill(run(killed) if index == 0 else resume(killed), killed, ended)
            outcome = 'done' if fired else 'not done, the study ended first'
            print(f"kill after {ended} ended trials: {outcome}")
        subprocess.run(resume(killed), cwd=killed, check=True, stdout=subprocess.DEVNULL)

        expected, got = _ended(runs["uninterrupted"] / "study.db"), _ended(killed / "study.db")
    print(f"{len(expected & got)} of {len(expected)} trials in common "
          f"({len(got)} in the killed and resumed study)")
    for trial in sorted(expected - got):
        print("  only uninterrupted:", trial)
    for trial in sorted(got - expected):
        print("  only resumed:      ", trial)
    return 0 if expected == got else 1


if __name__ == "__main__":
    sys.exit(main())
