"""Resident memory of the training worker against trial number, with and without recycling.

Runs two searches side by side in one invocation, each a real ``hpsearch run`` with the same small
trials (iris, one hidden layer, 1 epoch, random sampler, no pruning): one whose single worker is never
recycled, one whose worker is replaced every ``--recycle-after`` trials. Every trial records its
worker's peak resident memory; this prints both curves' growth per trial (least-squares slope), the
first and last values, and the highest value seen. Reproduce with
``.venv/bin/python scripts/bench_memory.py --trials 200 --recycle-after 25``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_results import table, write_result  # noqa: E402

SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 32}
  learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 1, batch_size: 32}
"""


def slope(values: list[float]) -> float:
    n = len(values)
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    den = sum((x - mean_x) ** 2 for x in range(n))
    return num / den if den else 0.0


def run(bin_dir: Path, workdir: Path, trials: int, recycle_after: int) -> list[float]:
    db = workdir / f"memory-{recycle_after}.db"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(
        [str(bin_dir / "hpsearch"), "run", str(workdir / "space.yaml"), "--data", "iris", "--algorithm",
         "random", "--pruner", "none", "--trials", str(trials), "--study", "memory", "--storage", str(db),
         "--recycle-after", str(recycle_after), "--max-worker-memory", "100000", "--quiet"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    listed = subprocess.run(
        [str(bin_dir / "hpsearch"), "trials", "memory", "--storage", str(db), "--json"],
        check=True, capture_output=True, text=True, env=env,
    )
    return [trial["peak_memory_mb"] for trial in json.loads(listed.stdout)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--recycle-after", type=int, default=25)
    parser.add_argument("--no-result", action="store_true", help="print only; write no result file")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "space.yaml").write_text(SPACE)
        curves = {
            "no recycling": run(bin_dir, workdir, args.trials, args.trials + 1),
            f"recycle every {args.recycle_after}": run(bin_dir, workdir, args.trials, args.recycle_after),
        }
    print(f"worker resident memory (MiB) over {args.trials} trials")
    print(f"{'':26}{'first':>8}{'last':>8}{'max':>8}{'MiB/trial':>11}")
    rows = []
    for name, values in curves.items():
        print(f"{name:26}{values[0]:>8.0f}{values[-1]:>8.0f}{max(values):>8.0f}{slope(values):>11.2f}")
        rows.append([name, values[0], values[-1], max(values), slope(values)])
    if args.no_result:
        return
    plain, recycled = rows
    path = write_result(
        "memory", title="Resident memory of the training worker, with and without recycling",
        summary=(f"Over {args.trials} trials a worker that is never recycled grows by {plain[4]:.2f} MiB a "
                 f"trial and peaks at {plain[3]:.0f} MiB; replaced every {args.recycle_after} trials it "
                 f"grows by {recycled[4]:.2f} MiB a trial and peaks at {recycled[3]:.0f} MiB."),
        tables=[table(f"Worker peak resident memory over {args.trials} trials (MiB)",
                      ["worker", "first trial (MiB)", "last trial (MiB)", "highest (MiB)",
                       "growth per trial (MiB)"], rows,
                      notes="Growth is the least-squares slope of the peak memory each trial recorded.")],
        data={"trials": args.trials, "recycle_after": args.recycle_after, "curves": curves})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
