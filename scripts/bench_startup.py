"""Start-up of a process that trains: importing Keras plain against importing it lean
(``hpsearch.runtime.lean_keras``).

Each round starts two fresh Python processes one after the other, in alternating order: one imports Keras
(and with it TensorFlow) as any program would, one installs ``hpsearch.runtime.lean_keras`` first, as
hpsearch's
workers and fold processes do. Both then train one epoch of a small model on digits, which is what a
first trial adds to the imports. Prints the medians and the spread of wall and CPU seconds for the
import and for import plus first fit, and the lean/plain ratios. Reproduce with
``.venv/bin/python scripts/bench_startup.py --rounds 7``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.bench_results import table, write_result  # noqa: E402

CHILD = r"""
import json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
if sys.argv[1] == "lean":
    from hpsearch.runtime import lean_keras
    lean_keras.install()
import keras
imported = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
from sklearn.datasets import load_digits
x, y = load_digits(return_X_y=True)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x / 16.0, y, epochs=1, batch_size=64, validation_split=0.2, verbose=0)
fitted = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
held = [name for name in ("jax", "matplotlib", "pandas") if sys.modules.get(name) is None]
print(json.dumps({"import": imported, "first_fit": fitted, "not_imported": held}))
"""


def one(kind: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow",
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True, env=env,
                          check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-result", action="store_true", help="print only; write no result file")
    args = parser.parse_args()

    results: dict[str, list[dict]] = {"plain": [], "lean": []}
    for round_ in range(args.rounds):
        order = ("plain", "lean") if round_ % 2 == 0 else ("lean", "plain")
        for kind in order:
            results[kind].append(one(kind))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    print(f"{args.rounds} rounds, seconds, median (min-max):")
    print(f"{'':8} {'import wall':>18} {'import CPU':>18} {'+ first fit wall':>18} {'+ first fit CPU':>18}")
    medians: dict[str, dict[str, float]] = {}
    table_rows: list[list[object]] = []
    for kind, rows in results.items():
        columns = {(stage, clock): [row[stage][clock] for row in rows]
                   for stage in ("import", "first_fit") for clock in ("wall", "cpu")}
        medians[kind] = {f"{stage} {clock}": statistics.median(values)
                         for (stage, clock), values in columns.items()}
        print(f"{kind:8} " + " ".join(f"{summary(values):>18}" for values in columns.values())
              + f"   not imported: {', '.join(rows[-1]['not_imported']) or 'none'}")
        table_rows.append([kind, *(summary(values) for values in columns.values()),
                           ", ".join(rows[-1]["not_imported"]) or "none"])
    ratios = {key: medians["lean"][key] / medians["plain"][key] for key in medians["lean"]}
    print("lean / plain: " + ", ".join(f"{key} {ratio:.2f}" for key, ratio in ratios.items()))
    if args.no_result:
        return
    table_rows.append(["lean / plain (medians)", *ratios.values(), ""])
    path = write_result(
        "startup", title="Start-up of a training process: Keras imported lean or plain",
        summary=(f"A process that imports Keras lean, as hpsearch's workers and fold processes do, takes "
                 f"{ratios['import wall']:.2f} times the wall time of a plain import, and "
                 f"{ratios['first_fit wall']:.2f} times until its first epoch has trained."),
        tables=[table(f"Seconds, median (min-max) of {args.rounds} rounds",
                      ["process", "import wall (s)", "import CPU (s)", "+ first fit wall (s)",
                       "+ first fit CPU (s)", "not imported"], table_rows,
                      notes="Each round starts both processes one after the other, in alternating order; "
                            "the first fit is one epoch of a small dense model on digits.")],
        data={"rounds": args.rounds, "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
